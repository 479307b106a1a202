"""Load probes: judge the results of a load run (`msgops load`) against a checklist's thresholds.

The run itself happens elsewhere (it takes minutes); a check only reads the results document
described in msgops.loadresults. Results that cannot speak for this target are skipped with the
reason (none yet, another profile, another target, too old), and a measurement taken by a
saturated load generator is an error: it measured the generator, not the service.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from msgops.loadresults import (
    DEFAULT_PATH,
    LoadResultsError,
    LoadResultsMissing,
    Op,
    compare,
    load_results,
)
from msgops.probes import Name, probe
from msgops.probes.context import Context, NotRun
from msgops.results import Outcome, failed, passed

MAX_AGE = timedelta(days=30)  # older results describe a service that has since changed
_OPS: tuple[Op, ...] = ("<", "<=", ">", ">=")


def results_path(ctx: Context, profile: str | None = None) -> Path:
    """The latest results (load.json), or that profile's own (load-<profile>.json) beside them.

    `msgops load` writes both, so checks of several profiles can each find their run."""
    latest = ctx.target.load_results or (Path.cwd() / DEFAULT_PATH)
    if profile:
        own = latest.with_name(f"load-{profile}.json")
        if own.exists():
            return own
    return latest


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


@probe(
    "load.threshold",
    what="Reads the latest load results and compares one metric (e.g. http.p95_ms) with a threshold.",
    why="Latency, error rate and capacity targets only mean something when measured under load; "
        "a release gate on them keeps regressions out of production.",
    example="`http.p95_ms < 200` with an observed p95 of 340 ms under the `smoke` profile fails.",
    fix="Find the slow endpoint in the results' `endpoints` section (or the failing metric's time series), "
        "fix it, then re-run `msgops load --profile <profile>` and the check.",
)
async def threshold(ctx: Context, metric: Name, op: Op, value: float, profile: Name | None = None) -> Outcome:
    if op not in _OPS:
        raise ValueError(f"unknown operator {op!r}; use one of {', '.join(_OPS)}")
    path = results_path(ctx, profile)
    hint = f"`msgops load --profile {profile}`" if profile else "`msgops load`"
    try:
        results = load_results(path)
    except LoadResultsMissing:
        raise NotRun(f"no load results at {path}: run {hint}") from None
    except LoadResultsError as exc:  # unreadable results are an error, never a pass
        return Outcome("error", str(exc), {"file": str(path)})
    if profile and results.profile != profile:
        raise NotRun(f"the load results at {path} are for profile {results.profile!r}, this check needs "
                   f"{profile!r}: run {hint}")
    ran_against = results.target.api_url
    if ran_against and ctx.target.api_url and not _same_url(ran_against, ctx.target.api_url):
        raise NotRun(f"the load results at {path} were measured against {ran_against}, not this target "
                   f"({ctx.target.api_url}): run {hint} against it")
    age = datetime.now(UTC) - results.finished_at
    if age > MAX_AGE:
        raise NotRun(f"the load results at {path} are {age.days} days old (finished {results.finished_at.isoformat()}; "
                   f"at most {MAX_AGE.days} days count): run {hint} again")
    observed = results.metric(metric)
    if observed is None:
        measured = ", ".join(sorted(k for k, v in results.metrics.items() if v is not None)) or "none"
        raise NotRun(f"the load results at {path} have no {metric!r} (measured: {measured}); "
                   f"use a profile that measures it")
    evidence: dict[str, Any] = {
        "metric": metric, "op": op, "threshold": value, "observed": observed, "profile": results.profile,
        "finished_at": results.finished_at.isoformat(), "file": str(path),
    }
    if results.generator.saturated:
        evidence["generator_cpu_percent_max"] = results.generator.cpu_percent_max
        return Outcome("error", "load generator saturated; the measurement is not trustworthy "
                                "(add workers: `msgops load --processes N`, or lower the profile's rate)", evidence)
    if compare(observed, cast(Op, op), value):
        return passed(f"{metric} = {observed:g} {op} {value:g} ({results.profile})", **evidence)
    return failed(f"{metric} = {observed:g}, expected {op} {value:g} ({results.profile})", **evidence)
