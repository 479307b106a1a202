"""The sign-off ledger: who approved which results, and whether those results have changed since.

Each signature binds to the content hash of the results it was given. Entries are hash-chained
(each names the hash of the one before), so a ledger edited by hand is detectable too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from msgops.errors import UserError
from msgops.report.model import SIGNOFF_ROLES

DECISIONS = ("go", "no-go")


@dataclass(frozen=True)
class Signature:
    role: str
    name: str
    decision: str
    note: str
    signed_at: str
    content_hash: str
    prev: str
    entry_hash: str

    def stale(self, current_hash: str) -> bool:
        return self.content_hash != current_hash


def ledger_path(report: Path) -> Path:
    return report.with_name(report.stem + ".signoffs.json")


def _entry_hash(fields: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def read(path: Path) -> list[Signature]:
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text())
        signatures = [Signature(**e) for e in entries]
    except (json.JSONDecodeError, TypeError) as exc:
        raise UserError(f"{path}: not a msgops sign-off ledger ({exc}); restore it from version control") from None
    prev = ""
    for s in signatures:
        fields = {k: v for k, v in asdict(s).items() if k != "entry_hash"}
        if s.prev != prev or _entry_hash(fields) != s.entry_hash:
            raise UserError(f"{path}: the ledger was edited by hand at the signature of {s.name} ({s.role}); "
                            "restore it from version control")
        prev = s.entry_hash
    return signatures


def canonical_role(role: str) -> str:
    for known in SIGNOFF_ROLES:
        if known.lower() == role.strip().lower():
            return known
    raise UserError(f"--role {role!r} is not a sign-off role (one of: {', '.join(SIGNOFF_ROLES)})")


def append(path: Path, role: str, name: str, decision: str, note: str, content_hash: str) -> Signature:
    if decision not in DECISIONS:
        raise UserError(f"--decision must be go or no-go, got {decision!r}")
    if not name.strip():
        raise UserError("--name must not be empty")
    signatures = read(path)
    fields = {"role": canonical_role(role), "name": name.strip(), "decision": decision, "note": note,
              "signed_at": datetime.now(UTC).isoformat(timespec="seconds"), "content_hash": content_hash,
              "prev": signatures[-1].entry_hash if signatures else ""}
    signature = Signature(**fields, entry_hash=_entry_hash(fields))
    path.write_text(json.dumps([asdict(s) for s in [*signatures, signature]], indent=2) + "\n")
    return signature
