"""From results to a release decision and an exit code.

What the gate counts: a `fail` of a non-optional item whose severity is in `fail_on` (default
critical and high) is NO-GO, exit 1. An `error` of such an item (the check could not evaluate) is
NO-GO, exit 2. With `require_attestations`, a pending manual item of a gated severity is NO-GO,
exit 1. Anything else that is not a clean pass (waived, failures of ungated severities) is
"GO with exceptions", exit 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from msgops.errors import EXIT_FAILED, EXIT_NOT_EVALUATED, EXIT_OK, UserError
from msgops.results import STATUSES, Result

DEFAULT_FAIL_ON = frozenset({"critical", "high"})
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")


def parse_fail_on(value: str | None) -> frozenset[str]:
    if not value:
        return DEFAULT_FAIL_ON
    if value.strip().lower() == "all":
        return frozenset(SEVERITY_ORDER)
    wanted = frozenset(v.strip().lower() for v in value.split(",") if v.strip())
    unknown = sorted(wanted - set(SEVERITY_ORDER))
    if unknown:
        raise UserError(f"--fail-on: unknown severity {', '.join(unknown)} (use {', '.join(SEVERITY_ORDER)} or all)")
    return wanted


@dataclass(frozen=True)
class GatePolicy:
    fail_on: frozenset[str] = DEFAULT_FAIL_ON
    require_attestations: bool = False


@dataclass
class Verdict:
    decision: str  # GO | NO-GO | GO with exceptions
    exit_code: int
    reason: str
    counts: dict[str, int] = field(default_factory=dict)
    blocking: list[str] = field(default_factory=list)


def _gated(results: Iterable[Result], policy: GatePolicy) -> list[Result]:
    return [r for r in results if r.severity in policy.fail_on and not r.optional]


def evaluate(results: Sequence[Result], policy: GatePolicy) -> Verdict:
    counts = Counter(r.status for r in results)
    all_counts: dict[str, int] = {s: counts.get(s, 0) for s in STATUSES}
    gated = _gated(results, policy)
    failures = [r for r in gated if r.status == "fail"]
    pending = [r for r in gated if r.status == "manual"] if policy.require_attestations else []
    errors = [r for r in gated if r.status == "error"]
    severities = ",".join(s for s in SEVERITY_ORDER if s in policy.fail_on)
    if failures or pending:
        blocking = failures + pending
        parts = []
        if failures:
            parts.append(f"{len(failures)} gated check(s) failed")
        if pending:
            parts.append(f"{len(pending)} manual item(s) await attestation")
        reason = f"{' and '.join(parts)} (gate: {severities}), first: {blocking[0].id}"
        return Verdict("NO-GO", EXIT_FAILED, reason, all_counts, [r.id for r in blocking])
    if errors:
        reason = f"{len(errors)} gated check(s) could not be evaluated, first: {errors[0].id}: {errors[0].message}"
        return Verdict("NO-GO", EXIT_NOT_EVALUATED, reason, all_counts, [r.id for r in errors])
    exceptions = [r for r in results if r.status in ("fail", "error", "waived")]
    if exceptions:
        return Verdict("GO with exceptions", EXIT_OK,
                       f"no gated failure; {len(exceptions)} exception(s): waived or below the gate ({severities})",
                       all_counts, [])
    return Verdict("GO", EXIT_OK, f"every gated check passed (gate: {severities})", all_counts, [])
