"""The load results document: written by `msgops load`, read by `load.threshold` checks and reports.

One JSON file per run (default `msgops-out/load.json`), versioned so that readers can refuse what
they do not understand instead of misreading it::

    {
      "schema": "msgops.load-results",          # always this string
      "version": 1,                             # bumped on incompatible changes
      "profile": "smoke",                       # the load profile that ran (loadtests/profiles)
      "target": {"api_url": "https://api.example.com", "environment": "staging",
                 "git_sha": "abc1234", "version": "0.4.0"},      # all optional
      "started_at": "2026-11-20T10:00:00Z",     # ISO 8601 with a timezone
      "finished_at": "2026-11-20T10:05:00Z",
      "duration_s": 300.0,
      "metrics": {                              # name -> number (null = not measured in this run)
        "http.p50_ms": 12.1, "http.p95_ms": 48.0, "http.p99_ms": 95.3,   # exact (HDR) percentiles
        "http.error_rate": 0.0004,              # failed / total requests, 0..1
        "http.rps": 850.2,                      # requests per second over the run
        "messages_per_s": 120.5,                # messages accepted by the API per second
        "ws.connections": 1000,                 # peak concurrently open WebSockets
        "ws.connect_failures": 3,               # connection attempts that failed
        "ws.connect_error_rate": 0.003,         # failed / attempted connections, 0..1
        "delivery.p50_ms": 40.0, "delivery.p95_ms": 180.0, "delivery.p99_ms": 400.0,
                                                # send (intended time) -> recipient socket
        "delivery.loss_rate": 0.0,              # expected deliveries never received, 0..1
        "delivery.duplicates": 0,               # deliveries received more than once
        "memory_mb": 310.0,                     # peak resident memory of the service
        "users": 1000                           # peak simulated users
      },                                        # further metrics are allowed (names are free)
      "thresholds": [                           # the profile's own gates, as evaluated by `msgops load`
        {"metric": "http.p95_ms", "op": "<", "value": 200, "observed": 48.0, "passed": true}
      ],
      "generator": {"cpu_percent_max": 62.0,    # the load generator's own busiest CPU
                    "saturated": false},        # true: the generator, not the target, was the limit
      "endpoints": {"POST /conversations/{id}/messages":
                    {"requests": 36000, "failures": 2, "p50_ms": 14.0, "p95_ms": 51.0,
                     "p99_ms": 99.0, "rps": 120.0, "operation": "send_message"}},
      "timeseries": [{"t_s": 10.0, "users": 100, "rps": 80.0, "p95_ms": 40.0,
                      "error_rate": 0.0, "ws_connections": 100}]
    }

Readers: `load_results(path)` returns a typed `LoadResults`; a missing file raises
`LoadResultsMissing` (callers skip: there is nothing to judge yet) and anything unreadable raises
`LoadResultsError` naming the file and the problem (callers report an error: never a pass).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA = "msgops.load-results"
VERSION = 1
DEFAULT_PATH = Path("msgops-out") / "load.json"

# The metrics `msgops load` writes; a results file may carry more.
KNOWN_METRICS: tuple[str, ...] = (
    "http.p50_ms", "http.p95_ms", "http.p99_ms", "http.error_rate", "http.rps", "messages_per_s",
    "ws.connections", "ws.connect_failures", "ws.connect_error_rate", "delivery.p50_ms", "delivery.p95_ms",
    "delivery.p99_ms", "delivery.loss_rate", "delivery.duplicates", "memory_mb", "users",
)

Op = Literal["<", "<=", ">", ">="]


class LoadResultsMissing(FileNotFoundError):
    """No results file: no load run has been recorded yet."""


class LoadResultsError(ValueError):
    """A results file exists but cannot be used; the message names the file and the problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)  # newer writers may add fields


class TargetInfo(_Model):
    api_url: str | None = None
    environment: str | None = None
    git_sha: str | None = None
    version: str | None = None
    realtime: str | None = None  # the protocol the listeners used: "reference (/realtime)" or Socket.IO's


class Threshold(_Model):
    metric: str
    op: Op
    value: float
    observed: float | None = None
    passed: bool | None = None


class Generator(_Model):
    cpu_percent_max: float | None = None
    saturated: bool = False


class EndpointStats(_Model):
    requests: int = Field(ge=0)
    failures: int = Field(default=0, ge=0)
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    rps: float | None = None
    operation: str | None = None  # the API map's operation behind this endpoint (send_message, ...)


class LoadResults(_Model):
    schema_: Literal["msgops.load-results"] = Field(alias="schema")
    version: int
    profile: str = Field(min_length=1)
    target: TargetInfo = Field(default_factory=TargetInfo)
    started_at: datetime
    finished_at: datetime
    duration_s: float = Field(ge=0)
    metrics: dict[str, float | None]
    thresholds: list[Threshold] = Field(default_factory=list)
    generator: Generator = Field(default_factory=Generator)
    endpoints: dict[str, EndpointStats] = Field(default_factory=dict)
    timeseries: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("version")
    @classmethod
    def _supported(cls, v: int) -> int:
        if v != VERSION:
            raise ValueError(f"version {v} is not supported (this msgops reads version {VERSION}); "
                             "upgrade msgops or re-run `msgops load`")
        return v

    @field_validator("started_at", "finished_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:  # naive times are ambiguous across machines
            raise ValueError("must carry a timezone (e.g. 2026-11-20T10:05:00Z)")
        return v

    @field_validator("metrics")
    @classmethod
    def _finite(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        for name, value in v.items():
            if value is not None and not math.isfinite(value):
                raise ValueError(f"metric {name!r} is {value}, not a finite number")
        return v

    def metric(self, name: str) -> float | None:
        """The observed value, or None when this run did not measure it."""
        return self.metrics.get(name)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "document"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse(data: Any, source: str = "<data>") -> LoadResults:
    """Validate a decoded document; LoadResultsError names `source` and the first problem."""
    if not isinstance(data, dict):
        raise LoadResultsError(f"{source}: expected a JSON object, got {type(data).__name__}")
    if data.get("schema") != SCHEMA:
        raise LoadResultsError(f"{source}: not a msgops load results file (schema is {data.get('schema')!r}, "
                               f"expected {SCHEMA!r})")
    try:
        return LoadResults.model_validate(data)
    except ValidationError as exc:
        raise LoadResultsError(f"{source}: {_problem(exc)}") from None


def load_results(path: Path) -> LoadResults:
    """Read and validate a results file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LoadResultsMissing(str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadResultsError(f"{path}: cannot read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadResultsError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
    return parse(data, str(path))


def write_results(results: LoadResults, path: Path) -> None:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(results.to_json() + "\n", encoding="utf-8")
    tmp.replace(path)


def compare(observed: float, op: Op, value: float) -> bool:
    return {"<": observed < value, "<=": observed <= value, ">": observed > value, ">=": observed >= value}[op]
