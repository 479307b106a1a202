"""Readable terminal output: a summary table per checklist section, evidence for what failed."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from msgops.results import Result
from msgops.verdict import Verdict

STYLE = {"pass": "green", "fail": "bold red", "error": "bold magenta", "skip": "dim", "manual": "yellow",
         "attested": "cyan", "waived": "blue"}
_COLUMNS = ("pass", "fail", "error", "skip", "manual", "attested", "waived")
_VERDICT_STYLE = {"GO": "bold white on green", "NO-GO": "bold white on red",
                  "GO with exceptions": "bold black on yellow"}


def summary_table(results: Sequence[Result]) -> Table:
    table = Table(title="msgops check", title_justify="left", show_lines=False)
    table.add_column("checklist / section")
    for col in _COLUMNS:
        table.add_column(col, justify="right", style=STYLE[col])
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(" / ".join([r.checklist, *r.section[:2]]), []).append(r)
    for name, members in groups.items():
        counts = [sum(r.status == c for r in members) for c in _COLUMNS]
        table.add_row(name, *[str(n) if n else "" for n in counts])
    totals = [sum(r.status == c for r in results) for c in _COLUMNS]
    table.add_row(Text("total", style="bold"), *[Text(str(n), style="bold") for n in totals], end_section=True)
    return table


def evidence_text(result: Result, limit: int = 1500) -> str:
    text = json.dumps(result.evidence, indent=2, default=str)
    return text if len(text) <= limit else text[:limit] + "\n  … (full evidence in --json output)"


def _print_shared_error(console: Console, message: str, members: Sequence[Result]) -> None:
    """One block for many items that errored the same way (an unreachable database, a missing secret)."""
    ids = ", ".join(r.id for r in members[:8]) + (f", … ({len(members) - 8} more)" if len(members) > 8 else "")
    console.print(Text.assemble(("ERROR ", STYLE["error"]), (f"{len(members)} items could not be evaluated", "bold")))
    console.print(Text(f"       {message}"))
    console.print(Text(f"       {ids}", style="dim"))


def print_run(console: Console, results: Sequence[Result], verdict: Verdict, verbose: bool = False) -> None:
    console.print(summary_table(results))
    shown = [r for r in results if r.status in ("fail", "error") or (verbose and r.status != "pass")]
    same_error: dict[str, list[Result]] = {}
    for r in shown:
        if r.status == "error":
            same_error.setdefault(r.message, []).append(r)
    for r in shown:
        members = same_error.get(r.message, []) if r.status == "error" else []
        if len(members) > 2:
            if r is members[0]:
                _print_shared_error(console, r.message, members)
            continue
        console.print(Text.assemble((f"{r.status.upper():6}", STYLE[r.status]), f" [{r.severity}] ", (r.id, "bold"),
                                    f"  {r.text}"))
        console.print(Text(f"       {r.message}"))
        if r.evidence and r.status in ("fail", "error"):
            console.print(Text("       " + evidence_text(r).replace("\n", "\n       "), style="dim"))
    console.print()
    console.print(Text(f" {verdict.decision} ", style=_VERDICT_STYLE.get(verdict.decision, "bold")),
                  Text(f" {verdict.reason} (exit {verdict.exit_code})"))
