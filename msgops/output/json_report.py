"""The versioned JSON results document: what `msgops report` and CI systems read.

Its JSON Schema ships as msgops/schemas/check-results.schema.json (`msgops.schemas.load("check-results")`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from msgops import __version__
from msgops.checklist import Checklist
from msgops.errors import UserError
from msgops.results import RESULTS_SCHEMA_VERSION, Result
from msgops.verdict import GatePolicy, Verdict

SCHEMA = "msgops.check-results"


def build(results: Sequence[Result], checklists: Sequence[Checklist], target: dict[str, Any], policy: GatePolicy,
          verdict: Verdict, started: datetime, finished: datetime, *, scope: str | None = None,
          preflight: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": RESULTS_SCHEMA_VERSION,
        "tool": {"name": "msgops", "version": __version__},
        "run": {"started_at": started.isoformat(), "finished_at": finished.isoformat(),
                "duration_ms": round((finished - started).total_seconds() * 1000, 1)},
        "target": target,
        "checklists": [{"id": c.id, "title": c.title, "seed": c.seed, "sha256": c.sha256, "items": len(c.items)}
                       for c in checklists],
        "policy": {"fail_on": sorted(policy.fail_on), "require_attestations": policy.require_attestations,
                   "scope": scope if scope is not None else verdict.scope},
        "preflight": preflight,
        "verdict": verdict_dict(verdict),
        "results": [r.to_dict() for r in results],
    }


def verdict_dict(verdict: Verdict) -> dict[str, Any]:
    """The verdict as published (schemas/check-results.schema.json): its fields and its headline."""
    return {**asdict(verdict), "headline": verdict.headline}


def write(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"results file {path} not found; run `msgops check --json {path}` first") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise UserError(f"{path}: not a msgops check results file (schema {SCHEMA!r} expected)")
    if document.get("version") != RESULTS_SCHEMA_VERSION:
        raise UserError(f"{path}: results version {document.get('version')} is not supported by msgops {__version__}")
    return document


def now() -> datetime:
    return datetime.now(UTC)
