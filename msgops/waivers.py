"""Waivers (a failure accepted, with a justification, an approver and an enforced expiry) and
attestations (a person confirms a manual item)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from msgops.errors import UserError


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


def _read_list(path: Path, what: str) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{what} file {path} not found; fix the path or remove the option") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: invalid YAML in {what} file ({getattr(exc, 'problem', exc)})") from None
    entries = data.get(what) if isinstance(data, dict) else data
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UserError(f"{path}: expected a list of {what} (mappings with id, ...)")
    return entries


def _date(value: Any, path: Path, entry_id: str, field: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise UserError(f"{path}: {entry_id}: {field} must be a date like 2026-12-31, got {value!r}") from None


def _require(entry: dict[str, Any], fields: tuple[str, ...], path: Path) -> None:
    missing = [f for f in fields if not entry.get(f)]
    if missing:
        raise UserError(f"{path}: entry {entry.get('id', '?')!r} is missing {', '.join(missing)}")


def load_waivers(path: Path) -> dict[str, Waiver]:
    waivers = {}
    for e in _read_list(path, "waivers"):
        _require(e, ("id", "justification", "approver", "expires"), path)
        waivers[str(e["id"])] = Waiver(str(e["id"]), str(e["justification"]), str(e["approver"]),
                                       _date(e["expires"], path, e["id"], "expires"))
    return waivers


def load_attestations(path: Path) -> dict[str, Attestation]:
    attestations = {}
    for e in _read_list(path, "attestations"):
        _require(e, ("id", "by", "role", "date"), path)
        attestations[str(e["id"])] = Attestation(str(e["id"]), str(e["by"]), str(e["role"]), str(e.get("note", "")),
                                                 _date(e["date"], path, e["id"], "date"))
    return attestations
