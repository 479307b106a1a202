"""Waivers (a failure accepted, with a justification, an approver and an enforced expiry) and
attestations (a person confirms a manual item).

Both files are YAML: a list of entries, or a mapping with one key (`waivers:` / `attestations:`)
holding that list. Every problem of a file is reported at once, by entry index and key
(`waivers.yaml: waivers[2].expires: must be a date like 2026-12-31 (got 'someday')`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, ValidationError

from msgops.errors import UserError
from msgops.validation import InputError, Problem, problems, read_yaml


@dataclass(frozen=True)
class Waiver:
    id: str
    justification: str
    approver: str
    expires: date

    def active(self, today: date) -> bool:
        return today <= self.expires


@dataclass(frozen=True)
class Attestation:
    id: str
    by: str
    role: str
    note: str
    date: date


def _date(value: Any) -> Any:
    if isinstance(value, datetime):
        raise ValueError("must be a date like 2026-12-31 (no time of day)")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError("must be a date like 2026-12-31")


Day = Annotated[date, BeforeValidator(_date)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class WaiverEntry(_Entry):
    id: Text
    justification: Text
    approver: Text
    expires: Day


class AttestationEntry(_Entry):
    id: Text
    by: Text
    role: Text
    note: str = ""
    date: Day


def _entries(path: Path, what: str) -> tuple[list[Any], tuple[str | int, ...]]:
    """The raw entries of the file, and the key path they sit under (for messages)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} file {path} not found; fix the path or remove the option") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the {what} file ({exc})") from None
    data, _ = read_yaml(text, str(path))
    if data is None:
        return [], (what,)
    if isinstance(data, dict):
        unknown = sorted(str(k) for k in data if k != what)
        if unknown:
            raise InputError(str(path), [Problem((k,), f"unknown key; a {what} file holds a `{what}:` list")
                                         for k in unknown])
        data = data.get(what) or []
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a list of {what} (mappings with id, ...), got {type(data).__name__}")
    return data, (what,)


def _parse(path: Path, what: str, model: type[_Entry], today: date | None = None) -> list[Any]:
    raw, prefix = _entries(path, what)
    found: list[Problem] = []
    parsed: list[Any] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw):
        loc = (*prefix, index)
        if not isinstance(entry, dict):
            found.append(Problem(loc, f"must be a mapping with keys {', '.join(model.model_fields)}"))
            continue
        try:
            item = model.model_validate({str(k): v for k, v in entry.items()})
        except ValidationError as exc:
            found += problems(exc, model, loc)
            continue
        item_id = str(item.id)  # type: ignore[attr-defined]
        if item_id in seen:
            found.append(Problem((*loc, "id"), f"{item_id!r} is already {what}[{seen[item_id]}]"))
        seen.setdefault(item_id, index)
        if today is not None and isinstance(item, AttestationEntry) and item.date > today + timedelta(days=1):
            found.append(Problem((*loc, "date"), f"must not be in the future (got {item.date.isoformat()})"))
        parsed.append(item)
    if found:
        raise InputError(str(path), found)
    return parsed


def load_waivers(path: Path) -> dict[str, Waiver]:
    return {e.id: Waiver(e.id, e.justification, e.approver, e.expires) for e in _parse(path, "waivers", WaiverEntry)}


def load_attestations(path: Path, today: date | None = None) -> dict[str, Attestation]:
    entries = _parse(path, "attestations", AttestationEntry, today or date.today())
    return {e.id: Attestation(e.id, e.by, e.role, e.note, e.date) for e in entries}


def unknown_ids(entries: Mapping[str, Any] | Iterable[Any], known_ids: Iterable[str]) -> list[str]:
    """Ids of waivers/attestations (a mapping keyed by id, or entries with `.id`) that name no known item."""
    known = set(known_ids)
    ids = entries.keys() if isinstance(entries, Mapping) else (getattr(e, "id", e) for e in entries)
    return sorted(str(i) for i in ids if str(i) not in known)
