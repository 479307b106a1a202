"""The check engine: run checklist items concurrently, in a bounded way, and return results in
checklist order whatever order they finish in. Fail closed: a check that could not evaluate is
an `error`, never a `pass`."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

from msgops import probes
from msgops.checklist import Item
from msgops.probes import CannotEvaluate, Context, NotRun, Skip
from msgops.results import Outcome, Result
from msgops.waivers import Attestation, Waiver

Progress = Callable[[Result], None]


@dataclass
class RunOptions:
    concurrency: int = 16
    timeout_s: float = 30.0
    retries: int = 0
    waivers: dict[str, Waiver] = field(default_factory=dict)
    attestations: dict[str, Attestation] = field(default_factory=dict)
    today: date = field(default_factory=date.today)
    unreachable: dict[str, str] = field(default_factory=dict)  # probe family -> why its endpoint is down


def base_result(item: Item) -> Result:
    """A result for `item` before it has run (status error until something better is known)."""
    return Result(
        id=item.full_id, checklist=item.checklist_id, section=list(item.section), text=item.text,
        severity=item.severity, status="error", message="", kind=item.check.kind if item.check else None,
        params=dict(item.check.params) if item.check else {}, optional=item.optional, tags=list(item.tags),
        why=item.why, confirm=item.confirm,
    )


async def _evaluate(item: Item, ctx: Context, opts: RunOptions) -> Outcome:
    assert item.check is not None
    if reason := opts.unreachable.get(item.check.family):
        return Outcome("error", reason, {"unreachable": True})
    implementation = probes.get(item.check.kind)
    if implementation is None:
        return Outcome("error", f"no probe implements {item.check.kind!r}; upgrade msgops")
    try:
        return await asyncio.wait_for(implementation.fn(ctx, **item.check.params), timeout=opts.timeout_s)
    except Skip as exc:
        return Outcome("skip", str(exc))
    except NotRun as exc:
        return Outcome("not_run", str(exc))
    except CannotEvaluate as exc:
        return Outcome("error", str(exc)[:500])
    except TimeoutError:
        return Outcome("error", f"timed out after {opts.timeout_s:g}s", {"timeout_s": opts.timeout_s})
    except Exception as exc:  # a broken probe or an unreachable target: reported, never passed
        return Outcome("error", f"{type(exc).__name__}: {exc}".strip()[:500], {"exception": type(exc).__name__})


def _apply_waiver(result: Result, opts: RunOptions) -> None:
    waiver = opts.waivers.get(result.id)
    if waiver is None or result.status not in ("fail", "error"):
        return
    entry = {"justification": waiver.justification, "approver": waiver.approver,
             "expires": waiver.expires.isoformat(), "active": waiver.active(opts.today)}
    result.waiver = entry
    if waiver.active(opts.today):
        result.evidence.setdefault("waived_outcome", result.status)
        result.status = "waived"
        result.message = f"waived until {waiver.expires.isoformat()} by {waiver.approver}: {result.message}"
    else:
        result.message = f"{result.message} (waiver expired {waiver.expires.isoformat()})"


def _check_key(item: Item) -> str:
    """Items whose checks are the same probe with the same parameters share one evaluation."""
    assert item.check is not None
    return item.check.kind + json.dumps(item.check.params, sort_keys=True, default=str)


def _waits_long(item: Item) -> bool:
    implementation = probes.get(item.check.kind) if item.check else None
    return implementation is not None and implementation.waits_long


async def run_items(items: Sequence[Item], ctx: Context, opts: RunOptions,
                    progress: Progress | None = None) -> list[Result]:
    results: list[Result | None] = [None] * len(items)
    gate = asyncio.Semaphore(max(1, opts.concurrency))
    # Seeds repeat themselves ("RLS enabled" appears in four checklists): an identical check runs
    # once per run and every item that names it gets its outcome.
    shared: dict[str, asyncio.Task[tuple[Outcome, int, float]]] = {}

    async def evaluate_once(item: Item) -> tuple[Outcome, int, float]:
        async with gate:
            started, attempts = time.perf_counter(), 0
            while True:
                outcome = await _evaluate(item, ctx, opts)
                attempts += 1
                if outcome.status != "error" or attempts > opts.retries:
                    return outcome, attempts, round((time.perf_counter() - started) * 1000, 1)

    async def one(index: int, item: Item) -> None:
        result = base_result(item)
        if item.manual:
            attestation = opts.attestations.get(item.full_id)
            if attestation:
                result.status, result.message = "attested", f"attested by {attestation.by} ({attestation.role})"
                result.attestation = {"by": attestation.by, "role": attestation.role, "note": attestation.note,
                                      "date": attestation.date.isoformat()}
            else:
                result.status, result.message = "manual", "needs a person: " + (item.confirm or item.text)
        else:
            key = _check_key(item)
            if key not in shared:
                shared[key] = asyncio.ensure_future(evaluate_once(item))
            outcome, result.attempts, result.duration_ms = await shared[key]
            result.status, result.message = outcome.status, outcome.message
            result.evidence = copy.deepcopy(outcome.evidence)
        _apply_waiver(result, opts)
        results[index] = result
        if progress:
            progress(result)

    # Probes that mostly wait (a presence timeout, a 300-statement matrix) start first, so their waiting
    # overlaps everything else; results still come back in checklist order.
    launch = sorted(enumerate(items), key=lambda pair: not _waits_long(pair[1]))
    await asyncio.gather(*(one(i, item) for i, item in launch))
    return [r for r in results if r is not None]
