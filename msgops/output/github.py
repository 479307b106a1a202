"""GitHub Actions workflow annotations for what blocks the gate."""

from __future__ import annotations

from collections.abc import Sequence

from msgops.results import Result
from msgops.verdict import Verdict


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def render(results: Sequence[Result], verdict: Verdict) -> str:
    blocking = set(verdict.blocking) | {b.id for b in verdict.not_evaluated}
    lines = [f"::error title={_escape(r.id)}::{_escape(r.status + ': ' + r.message)}"
             for r in results if r.id in blocking]
    lines.append(f"::notice title=msgops verdict::{_escape(verdict.headline)}")
    return "\n".join(lines) + "\n"
