"""Run a check in two processes: the HTTP probes in a worker, every other family here.

One asyncio process is a single core of Python, and the HTTP probes (hundreds of requests) keep
it busy while the database and realtime probes mostly wait. Splitting by family lets the two
halves use two cores; results are merged back into checklist order, and a worker that dies turns
its items into errors, never passes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
from collections.abc import Callable
from typing import Any

from msgops.checklist import Item, load_checklists
from msgops.config import Target
from msgops.engine import Progress, RunOptions, base_result, run_items
from msgops.probes import Context
from msgops.results import Result

WORKER_FAMILIES = frozenset({"http"})


def _in_worker(item: Item) -> bool:
    return item.check is not None and item.check.family in WORKER_FAMILIES


def _worker(target: Target, item_ids: list[str], opts: RunOptions, out: Any) -> None:
    """Runs in the worker process: load the same checklists, run the named items, report back."""
    try:
        by_id = {i.full_id: i for c in load_checklists() for i in c.items}
        items = [by_id[i] for i in item_ids]

        async def run() -> list[Result]:
            ctx = Context(target)
            try:
                return await run_items(items, ctx, opts, lambda r: out.put(("progress", r.to_dict())))
            finally:
                await ctx.close()

        out.put(("done", [r.to_dict() for r in asyncio.run(run())]))
    except BaseException as exc:  # reported to the parent, which fails the items closed
        out.put(("crashed", f"{type(exc).__name__}: {exc}"))


async def run_sharded(target: Target, items: list[Item], opts: RunOptions, progress: Progress | None,
                      run_here: Callable[[list[Item], Progress | None], Any]) -> list[Result]:
    """`run_here(items, progress)` runs this process's share; the worker runs the HTTP probes."""
    remote = [i for i in items if _in_worker(i)]
    local = [i for i in items if not _in_worker(i)]
    if not remote or not local:
        return list(await run_here(items, progress))
    spawn = multiprocessing.get_context("spawn")  # no fork of a running event loop
    out = spawn.Queue()
    worker = spawn.Process(target=_worker, args=(target, [i.full_id for i in remote], opts, out), daemon=True)
    worker.start()

    async def collect() -> list[Result]:
        while True:
            try:
                kind, payload = await asyncio.to_thread(out.get, True, 0.5)
            except queue.Empty:
                if not worker.is_alive():
                    return _crashed(remote, f"the check worker exited with code {worker.exitcode}")
                continue
            if kind == "progress":
                if progress:
                    progress(Result.from_dict(payload))
            elif kind == "done":
                return [Result.from_dict(r) for r in payload]
            else:
                return _crashed(remote, str(payload))

    here, there = await asyncio.gather(run_here(local, progress), collect())
    worker.join(timeout=10)
    merged = {r.id: r for r in [*here, *there]}
    return [merged[i.full_id] for i in items]


def _crashed(items: list[Item], why: str) -> list[Result]:
    results = []
    for item in items:
        result = base_result(item)
        result.status, result.message = "error", why
        results.append(result)
    return results
