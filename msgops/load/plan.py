"""The run plan: everything the locustfile needs, written by `msgops load` before Locust starts.

The users as a seed and a layout (msgops.load.identities: every process derives the same ids and
mints its own share's tokens), the conversations when the target chose their ids, the workload
(classes, pacing, open-model rates) and the run's phases: a few kilobytes whatever the number of
users. Locust processes on this machine read it from the file named by MSGOPS_LOAD_PLAN; workers
on other machines ask the master for it (a Locust custom message), so only the master needs the
file.

Phases, relative to each process's test start: users spawn and settle for `send_after_s`, then
messages are sent for `send_for_s`, then `drain_s` lets the last deliveries arrive.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgops.load.identities import Layout

if TYPE_CHECKING:  # the Locust processes read a plan, never a profile
    from msgops.load.profile import Profile

PLAN_ENV = "MSGOPS_LOAD_PLAN"
SEED_SEND_LIMIT = (10, 60)      # messages per user per window (seconds), the seed default
SEED_HOURLY_LIMIT = 100
BROADCAST_QUOTA = 10            # an organizer's during_show broadcasts between resets


@dataclass
class Plan:
    run_id: str
    api_url: str
    out_dir: str
    generators: int                     # processes that generate load (open-model sends are split across them)
    layout: Layout                      # the users, from a seed
    signing: dict[str, Any]             # how to mint their tokens (msgops.load.identities.LoadSigner), no key
    conversations: list[str] = field(default_factory=list)  # conversation ids, when the target chose them
    communities: list[str] = field(default_factory=list)    # community ids, likewise
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)  # action -> its prepared request
    users: dict[str, int] = field(default_factory=dict)
    pacing: dict[str, float] = field(default_factory=dict)
    reader_mix: dict[str, int] = field(default_factory=dict)
    open: dict[str, float] = field(default_factory=dict)
    send_after_s: float = 1.0
    send_for_s: float = 10.0
    drain_s: float = 3.0
    delivery_timeout_s: float = 3.0
    http_timeout_s: float = 30.0
    realtime_protocol: str = "reference"  # reference (a WebSocket at /realtime) | socketio
    realtime_path: str = "/realtime"
    realtime_namespace: str = "/messaging"  # Socket.IO only
    # Socket.IO only, from msgops.yaml realtime: the connect payload ("{token}": the user's token),
    # msgops's event names -> the target's, msgops's payload field names -> the target's
    realtime_auth: dict[str, Any] = field(default_factory=lambda: {"token": "{token}"})
    realtime_events: dict[str, str] = field(default_factory=dict)
    realtime_fields: dict[str, str] = field(default_factory=dict)
    live: bool = True  # write live.json once a second, for the progress display

    @property
    def ws_url(self) -> str:
        base = self.api_url.rstrip("/")
        return base.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/realtime"

    @property
    def run_s(self) -> float:
        return self.send_after_s + self.send_for_s + self.drain_s

    def conversation_id(self, c: int) -> str:
        return self.conversations[c] if self.conversations else self.layout.conversation_id(c)

    def community_id(self, k: int) -> str:
        return self.communities[k] if self.communities else self.layout.community_id(k)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        values = dict(data)
        values["layout"] = Layout(**data["layout"])
        return cls(**values)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Plan:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def organizers_needed(profile: Profile) -> int:
    wanted = profile.provision.organizers
    if wanted != "auto":
        return wanted
    planned = profile.planned_broadcasts
    return math.ceil(planned * 1.2 / BROADCAST_QUOTA) if planned else 0


def seed_limit_problem(profile: Profile) -> str | None:
    """Why this profile would be throttled by the seed rate limits, or None if it fits them."""
    senders = profile.provision.users
    if senders <= 0 or not profile.planned_sends:
        return None
    per_user = profile.planned_sends / senders
    hits, window = SEED_SEND_LIMIT
    per_window = per_user * min(1.0, window / profile.duration)
    if per_window > hits * 0.9 or per_user > SEED_HOURLY_LIMIT * 0.9:
        needed = math.ceil(profile.planned_sends / min(hits * 0.9 * max(1.0, profile.duration / window),
                                                       SEED_HOURLY_LIMIT * 0.9))
        return (f"{profile.planned_sends:.0f} planned sends over {senders} users exceed the seed limit of "
                f"{hits} messages/{window}s per user: provision at least {needed} users, or set "
                "`requires: {rate_limits: off}` and run the target with MSGOPS_RATE_LIMITS=off")
    return None
