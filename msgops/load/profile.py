"""Load profiles: YAML files saying how much load, of what mix, for how long, and what must hold.

A profile is read top to bottom like a goss file; `loadtests/profiles/smoke.yaml` is the commented
example. Errors name the file, the line and the key (`profiles/x.yaml:12: pacing.reader: ...`), every
problem of the file at once, and exit 3.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from msgops.errors import UserError
from msgops.loadresults import Op
from msgops.validation import one_line, problems, read_yaml

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_THRESHOLD = re.compile(r"^\s*([a-z][a-z0-9_.]*)\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$")
CLASSES = ("sender", "reader", "listener", "broadcaster", "uploader")


class ProfileError(UserError):
    """An invalid profile: one line, `file:line: key: problem` (or `file: N problems: ...`), exit code 3."""


def parse_duration(value: Any) -> float:
    """Seconds from 90, 1.5, "500ms", "10s", "2m" or "1h"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s, 2m or 500ms")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; use e.g. 10s, 2m or 500ms")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be a non-negative number of seconds")
    return seconds


Seconds = Annotated[float, BeforeValidator(parse_duration)]


class Threshold(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    metric: str = Field(min_length=1)
    op: Op
    value: float

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            match = _THRESHOLD.match(data)
            if not match:
                raise ValueError(f"{data!r} is not a threshold; write `metric op value`, e.g. `http.p95_ms < 200` "
                                 "(ops: < <= > >=)")
            return {"metric": match.group(1), "op": match.group(2), "value": float(match.group(3))}
        return data

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _off(value: Any) -> Any:
    return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false


class Requires(_Part):
    # seed: sized to pass under the seed limits (10 messages/min per user); off: the target must
    # run with MSGOPS_RATE_LIMITS=off, and 429s are reported as that misconfiguration.
    rate_limits: Annotated[Literal["seed", "off"], BeforeValidator(_off)] = "seed"


class Provision(_Part):
    via: Literal["api", "database"] = "api"
    users: int = Field(default=10, ge=2, le=200_000)
    group_size: int = Field(default=2, ge=2, le=257)  # the API adds at most 256 others
    organizers: int | Literal["auto"] = "auto"
    communities: int = Field(default=0, ge=0, le=10_000)


class Users(_Part):
    sender: int = Field(default=0, ge=0)
    reader: int = Field(default=0, ge=0)
    listener: int = Field(default=0, ge=0)
    broadcaster: int = Field(default=0, ge=0)
    uploader: int = Field(default=0, ge=0)  # uploads a file of upload_bytes every pacing.uploader

    @property
    def total(self) -> int:
        return self.sender + self.reader + self.listener + self.broadcaster + self.uploader


class Pacing(_Part):
    sender: Seconds = 1.0
    reader: Seconds = 1.0
    broadcaster: Seconds = 1.0
    uploader: Seconds = 1.0


class ReaderMix(_Part):
    conversations: int = Field(default=1, ge=0)
    history: int = Field(default=2, ge=0)
    search: int = Field(default=1, ge=0)
    communities: int = Field(default=0, ge=0)


class OpenModel(_Part):
    messages: float = Field(default=0, ge=0, description="messages per second, across all generators")
    broadcasts: float = Field(default=0, ge=0, description="broadcasts per second")
    max_inflight: int = Field(default=200, ge=1, le=100_000)
    connections: int = Field(default=100, ge=1, le=10_000,
                             description="keep-alive connections the requests take turns on, across all "
                                         "generators (like one per k6 VU): a multi-process service shares "
                                         "the load by connections, so a handful would leave that to chance")
    late_after: Seconds = 0.05
    drop_after: Seconds = 5.0


class Profile(_Part):
    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    seed: str | None = None
    requires: Requires = Field(default_factory=Requires)
    provision: Provision = Field(default_factory=Provision)
    spawn_rate: float = Field(default=50, gt=0)
    settle: Seconds = 1.0          # after the last user started, before sending
    duration: Seconds              # the send window
    delivery_timeout: Seconds = 3.0  # wait this long after a send before a missing delivery may count as lost
    drain: Seconds | None = None   # after the send window (default: delivery_timeout + 1 s)
    http_timeout: Seconds = 30.0
    users: Users = Field(default_factory=Users)
    pacing: Pacing = Field(default_factory=Pacing)
    reader_mix: ReaderMix = Field(default_factory=ReaderMix)
    open: OpenModel = Field(default_factory=OpenModel)
    thresholds: list[Threshold] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if self.duration <= 0:
            raise ValueError("duration must be more than 0s")
        if self.users.total == 0 and self.open.messages == 0 and self.open.broadcasts == 0:
            raise ValueError("no load: give users (sender/reader/listener/broadcaster/uploader) or open.messages")
        if self.users.sender and self.pacing.sender <= 0:
            raise ValueError("pacing.sender must be more than 0s when there are senders")
        if self.reader_mix.communities and not self.provision.communities:
            raise ValueError("reader_mix.communities needs provision.communities")
        return self

    # Derived numbers -----------------------------------------------------------------------------

    @property
    def drain_s(self) -> float:
        return self.drain if self.drain is not None else self.delivery_timeout + 1.0

    @property
    def ramp_s(self) -> float:
        return self.users.total / self.spawn_rate

    @property
    def send_after_s(self) -> float:
        return self.ramp_s + self.settle

    @property
    def run_s(self) -> float:
        return self.send_after_s + self.duration + self.drain_s

    @property
    def planned_sends(self) -> float:
        closed = self.users.sender * self.duration / self.pacing.sender if self.users.sender else 0.0
        return closed + self.open.messages * self.duration

    @property
    def planned_broadcasts(self) -> float:
        closed = self.users.broadcaster * self.duration / self.pacing.broadcaster if self.users.broadcaster else 0.0
        return closed + self.open.broadcasts * self.duration

    def with_overrides(self, users: int | None = None, connections: int | None = None, rate: float | None = None,
                       duration: float | None = None) -> Profile:
        """The CLI's --users (scales every class, keeping the mix), --connections, --rate, --duration."""
        data = self.model_dump()
        if users is not None:
            scale = users / max(1, self.users.total)
            data["users"] = {k: (max(1, round(v * scale)) if v else 0) for k, v in data["users"].items()}
        if connections is not None:
            data["users"]["listener"] = connections
        if rate is not None:
            data["open"]["messages"] = rate
        if duration is not None:
            data["duration"] = duration
        listeners = data["users"]["listener"]
        if listeners > data["provision"]["users"]:
            # One socket per user keeps deliveries spread like real traffic.
            data["provision"]["users"] = listeners
        return Profile.model_validate(data)


# Loading with line numbers ----------------------------------------------------------------------


def parse_profile(text: str, display: str, default_name: str = "profile") -> Profile:
    """A profile from YAML text; every problem at once, each with its key path and line."""
    try:
        data, lines = read_yaml(text, display)
    except UserError as exc:
        raise ProfileError(str(exc)) from None
    if not isinstance(data, dict):
        raise ProfileError(f"{display}:1: expected a mapping (name, duration, users, thresholds, ...)")
    data.setdefault("name", default_name)
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(one_line(display, problems(exc, Profile), lines)) from None


def profiles_dir() -> Path:
    from msgops.paths import loadtests_dir

    return loadtests_dir() / "profiles"


def available() -> list[str]:
    try:
        return sorted(p.stem for p in profiles_dir().glob("*.yaml"))
    except FileNotFoundError:
        return []


def resolve_path(name_or_file: str) -> Path:
    """A path to a YAML file, or the name of a built-in profile."""
    candidate = Path(name_or_file)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise ProfileError(f"profile file {candidate} not found")
        return candidate
    builtin = profiles_dir() / f"{name_or_file}.yaml"
    if not builtin.is_file():
        raise ProfileError(f"no profile {name_or_file!r}; built-in profiles: {', '.join(available()) or 'none'} "
                           "(or pass a YAML file)")
    return builtin


def load_profile(name_or_file: str) -> Profile:
    path = resolve_path(name_or_file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read ({exc})") from None
    return parse_profile(text, str(path), default_name=path.stem)
