"""Finding and reading the results a report is made of, and hashing them for sign-off."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msgops.errors import UserError
from msgops.loadresults import SCHEMA as LOAD_SCHEMA
from msgops.loadresults import LoadResults, LoadResultsError, parse
from msgops.output import json_report


@dataclass
class Inputs:
    checks: dict[str, Any] | None = None  # a msgops.check-results document
    loads: list[LoadResults] = field(default_factory=list)  # one per load run, oldest first
    loads_raw: list[dict[str, Any]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)

    @property
    def content_hash(self) -> str:
        """SHA-256 over the canonical JSON of every input: what a signature binds to."""
        canonical = json.dumps({"checks": self.checks, "loads": self.loads_raw}, sort_keys=True,
                               separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _candidates(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.glob("*.json") if not p.name.endswith(".signoffs.json")))
        elif path.exists():
            found.append(path)
        else:
            raise UserError(f"results {path} not found; run `msgops check --json {path}` or `msgops gate` first")
    return found


def read(paths: list[Path]) -> Inputs:
    """Read every check or load results file among `paths` (files or directories)."""
    inputs = Inputs()
    for path in _candidates(paths):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema == json_report.SCHEMA:
            if inputs.checks is not None:
                raise UserError(f"{path}: a second check results file; pass one per report")
            inputs.checks = json_report.read(path)
        elif schema == LOAD_SCHEMA:
            if data in inputs.loads_raw:
                continue  # load.json is also written as load-<profile>.json: the same run once
            try:
                inputs.loads.append(parse(data, str(path)))
            except LoadResultsError as exc:
                raise UserError(str(exc)) from None
            inputs.loads_raw.append(data)
        else:
            continue  # other JSON (e.g. a report's own JSON) is not an input
        inputs.paths.append(path.resolve())
    order = sorted(range(len(inputs.loads)), key=lambda i: inputs.loads[i].finished_at)
    inputs.loads = [inputs.loads[i] for i in order]
    inputs.loads_raw = [inputs.loads_raw[i] for i in order]
    if inputs.checks is None and not inputs.loads:
        raise UserError(f"no msgops results among {', '.join(str(p) for p in paths)}; "
                        "run `msgops check --json FILE` or `msgops load --json FILE` first")
    return inputs
