"""Check results: what every reporter reads. Reporters never run checks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# pass · fail · error (the probe broke: cannot connect, timed out) · skip (not applicable to this target,
# with the reason) · not_run (msgops was not given what the check needs: no API URL, no database, no way
# to get test users) · manual (needs a person) · attested · waived. Only pass is ever good news.
Status = Literal["pass", "fail", "error", "skip", "not_run", "manual", "attested", "waived"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "error", "skip", "not_run", "manual", "attested", "waived")
RESULTS_SCHEMA_VERSION = 1


@dataclass
class Outcome:
    """What a probe observed: a status, a one-line message and structured evidence."""

    status: Status
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def passed(message: str, **evidence: Any) -> Outcome:
    return Outcome("pass", message, evidence)


def failed(message: str, **evidence: Any) -> Outcome:
    return Outcome("fail", message, evidence)


def skipped(message: str, **evidence: Any) -> Outcome:
    return Outcome("skip", message, evidence)


def not_run(message: str, **evidence: Any) -> Outcome:
    return Outcome("not_run", message, evidence)


@dataclass
class Result:
    id: str  # "<checklist>/<item>"
    checklist: str
    section: list[str]
    text: str
    severity: str
    status: Status
    message: str
    kind: str | None = None  # probe kind, None for manual items
    params: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    duration_ms: float = 0.0
    attempts: int = 0
    optional: bool = False
    tags: list[str] = field(default_factory=list)
    why: str | None = None
    confirm: str | None = None
    waiver: dict[str, Any] | None = None
    attestation: dict[str, Any] | None = None

    @property
    def fingerprint(self) -> str:
        """Stable across runs: the item and what it checks, not what it found."""
        basis = json.dumps([self.id, self.kind, self.params], sort_keys=True, default=str)
        return hashlib.sha256(basis.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fingerprint"] = self.fingerprint
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
