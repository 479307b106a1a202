"""The live display of a run: elapsed of planned, users, RPS, p95, errors, delivery p95, sockets, CPU."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


def _ms(value: Any) -> str:
    return f"{value:.1f} ms" if isinstance(value, int | float) else "-"


def describe(live: dict[str, Any]) -> str:
    parts = [f"users {live.get('users', 0)}", f"{live.get('rps', 0)} req/s", f"p95 {_ms(live.get('p95_ms'))}",
             f"errors {100 * float(live.get('error_rate') or 0):.2f}%"]
    if live.get("ws_open"):
        parts.append(f"ws {live['ws_open']}")
    if live.get("delivery_p95_ms") is not None:
        parts.append(f"delivery p95 {_ms(live.get('delivery_p95_ms'))}")
    if live.get("generator_cpu") is not None:
        parts.append(f"gen CPU {live['generator_cpu']:.0f}%")
    return " | ".join(parts)


class LiveProgress:
    """A rich progress bar over the planned run time; `update(live)` with the locustfile's live.json."""

    def __init__(self, console: Console, title: str, run_s: float, enabled: bool = True) -> None:
        self.run_s = run_s
        self.enabled = enabled
        self._bar = Progress(TextColumn(f"[bold]{title}"), BarColumn(), TextColumn("{task.fields[clock]}"),
                             TimeElapsedColumn(), TextColumn("{task.description}"), console=console,
                             transient=False, disable=not enabled)
        self._task: TaskID | None = None

    def __enter__(self) -> LiveProgress:
        self._bar.__enter__()
        self._task = self._bar.add_task("starting Locust", total=self.run_s, clock="")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bar.__exit__(exc_type, exc, tb)

    def update(self, live: dict[str, Any] | None) -> None:
        if self._task is None or live is None:
            return
        elapsed = float(live.get("elapsed_s") or 0)
        self._bar.update(self._task, completed=min(elapsed, self.run_s), description=describe(live),
                         clock=f"{elapsed:.0f}/{self.run_s:.0f}s")
