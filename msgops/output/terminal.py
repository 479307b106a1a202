"""Readable terminal output, down to an 80-column CI log: a compact count table per checklist section,
the items that need a look (grouped when many share one cause), then the verdict, why, and its blockers."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from msgops.report.inline_md import to_plain
from msgops.results import STATUSES, Result
from msgops.verdict import Blocker, Verdict

STYLE = {"pass": "green", "fail": "bold red", "error": "bold magenta", "skip": "dim", "not_run": "bold yellow",
         "manual": "yellow", "attested": "cyan", "waived": "blue"}
HEADS = {"pass": "pass", "fail": "fail", "error": "err", "skip": "skip", "not_run": "n/run", "manual": "man",
         "attested": "att", "waived": "wvd"}  # short heads keep the table inside 80 columns
LABEL = {"not_run": "NOT RUN"}
_VERDICT_STYLE = {"GO": "bold white on green", "NO-GO": "bold white on red",
                  "GO with exceptions": "bold black on yellow", "INCOMPLETE": "bold white on magenta"}
_BLOCKER_STYLE = {"fail": "bold red", "threshold missed": "bold red", "error": "bold magenta"}
_GROUP_OVER = 2  # more items than this failing for one shared reason print as one block
_LABEL_WIDTH = 8  # 'critical', 'NOT RUN'


def summary_table(results: Sequence[Result], width: int = 80) -> Table:
    """Counts per checklist section within `width` columns: checklist ids as headings, section names cut
    to fit, short heads."""
    totals = [sum(r.status == s for r in results) for s in STATUSES]
    numbers = sum(max(len(HEADS[s]) + 1, len(str(n))) + 1 for s, n in zip(STATUSES, totals, strict=True))
    table = Table(title="msgops check", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  padding=(0, 0), show_edge=False)
    table.add_column("checklist / section", overflow="ellipsis", no_wrap=True,
                     max_width=max(width - numbers, 12))
    for status in STATUSES:
        table.add_column(HEADS[status], justify="right", style=STYLE[status], no_wrap=True,
                         min_width=len(HEADS[status]) + 1)
    groups: dict[str, dict[str, list[Result]]] = {}
    for r in results:
        groups.setdefault(r.checklist, {}).setdefault(" / ".join(r.section[:2]) or "(general)", []).append(r)
    for checklist, sections in groups.items():
        table.add_row(Text(checklist, style="bold"), *["" for _ in STATUSES])
        for name, members in sections.items():
            counts = [sum(r.status == s for r in members) for s in STATUSES]
            table.add_row(Text("  " + name), *[str(n) if n else "" for n in counts])
    table.add_row(Text("total", style="bold"), *[Text(str(n), style="bold") for n in totals], end_section=True)
    return table


def evidence_text(result: Result, limit: int = 1500) -> str:
    text = json.dumps(result.evidence, indent=2, default=str)
    return text if len(text) <= limit else text[:limit] + "\n  … (full evidence in --json output)"


def _row(label: Text, body: Group | Text) -> Table:
    """A status label with the body beside it: wrapped lines stay indented under the body."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=_LABEL_WIDTH, no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    grid.add_row(label, body)
    return grid


def _label(status: str) -> Text:
    return Text(LABEL.get(status, status.upper()), style=STYLE.get(status, "bold"))


def _print_item(console: Console, r: Result) -> None:
    lines = [Text.assemble(f"[{r.severity}] ", (r.id, "bold"), f"  {to_plain(r.text)}"), Text(to_plain(r.message))]
    if r.evidence and r.status in ("fail", "error"):
        lines.append(Text(evidence_text(r), style="dim"))
    console.print(_row(_label(r.status), Group(*lines)))


def _print_shared(console: Console, status: str, message: str, members: Sequence[Result]) -> None:
    """One block for many items stopped by the same cause (an unreachable database, no API URL)."""
    ids = ", ".join(r.id for r in members[:8]) + (f", … ({len(members) - 8} more)" if len(members) > 8 else "")
    what = "were not run" if status == "not_run" else "could not be evaluated"
    console.print(_row(_label(status), Group(Text(f"{len(members)} items {what}", style="bold"),
                                             Text(to_plain(message)), Text(ids, style="dim"))))


def _print_blockers(console: Console, title: str, blockers: Sequence[Blocker], limit: int) -> None:
    if not blockers:
        return
    console.print(Text(f"{title} ({len(blockers)}):", style="bold"))
    for b in blockers[:limit]:
        console.print(_row(Text(b.severity, style="bold" if b.severity in ("critical", "high") else ""),
                           Group(Text.assemble((b.status, _BLOCKER_STYLE.get(b.status, "bold yellow")), "  ",
                                               (b.id, "bold")),
                                 Text(to_plain(b.reason)))))
    if len(blockers) > limit:
        more = f"… and {len(blockers) - limit} more (all of them in the --json results and the report)"
        console.print(Text(" " * (_LABEL_WIDTH + 1) + more, style="dim"))


def print_verdict(console: Console, verdict: Verdict, max_blockers: int = 10) -> None:
    """The headline (decision and coverage), the one-line reason, and what keeps it from GO."""
    headline = verdict.coverage.sentence() + (f" (scoped: {verdict.scope})" if verdict.scope else "")
    console.print(Text.assemble((f" {verdict.decision} ", _VERDICT_STYLE.get(verdict.decision, "bold")), " ",
                                headline))
    console.print(Text(f"{to_plain(verdict.reason)} (exit {verdict.exit_code})"))
    _print_blockers(console, "Keeping this from GO", verdict.blockers, max_blockers)
    blocking = {b.id for b in verdict.blockers}
    unchecked = [b for b in verdict.not_evaluated if b.id not in blocking]
    title = "Outside the run's scope, not evaluated" if verdict.scope else "Gated but not evaluated"
    _print_blockers(console, title, unchecked, max_blockers)


def print_run(console: Console, results: Sequence[Result], verdict: Verdict, verbose: bool = False, *,
              max_blockers: int = 10) -> None:
    console.print(summary_table(results, console.width))
    if any(r.status == "not_run" for r in results):
        console.print(Text("n/run = not run: msgops was not given what the check needs (see below)", style="dim"))
    shown = [r for r in results if r.status in ("fail", "error", "not_run") or (verbose and r.status != "pass")]
    shared: dict[tuple[str, str], list[Result]] = {}
    for r in shown:
        if r.status in ("error", "not_run"):
            shared.setdefault((r.status, r.message), []).append(r)
    for r in shown:
        members = shared.get((r.status, r.message), [])
        if len(members) > _GROUP_OVER:
            if r is members[0]:
                _print_shared(console, r.status, r.message, members)
            continue
        _print_item(console, r)
    console.print()
    print_verdict(console, verdict, max_blockers)
