"""A load run in the terminal: its thresholds, endpoints, deliveries and generator health.

The decision itself (and the exit code) comes from msgops.verdict, like every other command's:
a missed threshold is NO-GO (1); an unmeasured threshold or a saturated generator is INCOMPLETE (2).
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from msgops.loadresults import LoadResults
from msgops.verdict import Verdict


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.3f}".rstrip("0").rstrip(".") + unit


def render(console: Console, results: LoadResults, verdict: Verdict, notes: list[str]) -> None:
    m = results.metrics
    table = Table(title=f"load thresholds: {results.profile}", title_justify="left")
    table.add_column("metric")
    table.add_column("threshold", justify="right")
    table.add_column("observed", justify="right")
    table.add_column("result")
    for t in results.thresholds:
        mark = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[yellow]not measured[/]"}[t.passed]
        table.add_row(t.metric, f"{t.op} {t.value:g}", _fmt(t.observed), mark)
    if results.thresholds:
        console.print(table)
    ep = Table(title="endpoints", title_justify="left")
    for col in ("endpoint", "requests", "failures", "p50 ms", "p95 ms", "p99 ms"):
        ep.add_column(col, justify="left" if col == "endpoint" else "right")
    for name, e in results.endpoints.items():
        ep.add_row(name, str(e.requests), str(e.failures), _fmt(e.p50_ms), _fmt(e.p95_ms), _fmt(e.p99_ms))
    if results.endpoints:
        console.print(ep)
    line = [f"{_fmt(m.get('http.requests'))} requests", f"error rate {_fmt(m.get('http.error_rate'))}",
            f"{_fmt(m.get('messages_per_s'))} messages/s"]
    if m.get("ws.connections") is not None:
        line.append(f"ws peak {_fmt(m.get('ws.connections'))} ({_fmt(m.get('ws.connect_failures'))} connect failures)")
    if m.get("delivery.expected") is not None:
        line.append(f"deliveries: {_fmt(m.get('delivery.expected'))} expected, {_fmt(m.get('delivery.lost'))} lost, "
                    f"{_fmt(m.get('delivery.duplicates'))} duplicated; p95 {_fmt(m.get('delivery.p95_ms'), ' ms')}")
    if m.get("open.scheduled"):
        line.append(f"open model: {_fmt(m.get('open.scheduled'))} scheduled, {_fmt(m.get('open.late'))} late, "
                    f"{_fmt(m.get('open.dropped'))} dropped")
    gen = results.generator
    line.append(f"generator CPU max {_fmt(gen.cpu_percent_max, '%')}"
                + (f", machine {_fmt(getattr(gen, 'machine_cpu_percent_max', None), '%')}"))
    if m.get("memory_mb") is not None:
        line.append(f"service memory {_fmt(m.get('memory_mb'), ' MB')}")
    for part in line:
        console.print(f"  {part}", highlight=False)
    for note in notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    color = {"GO": "green", "NO-GO": "red"}.get(verdict.decision, "yellow")
    console.print(f"[bold {color}]{verdict.headline}[/]", highlight=False)
    if verdict.decision != "GO":
        console.print(f"  {verdict.reason} (exit {verdict.exit_code})", highlight=False)
