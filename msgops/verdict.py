"""The one place that turns check results and load runs into a release decision and an exit code.

`msgops check`, `msgops load`, `msgops report` and `msgops gate` all call `evaluate`; nothing else
decides. Fail closed: only evidence counts as checked.

Gated items are the non-optional ones whose severity is in `fail_on` (default critical and high).
In order:

- **NO-GO** (exit 1): a gated item failed, a load threshold was missed, or (with
  `require_attestations`) a gated manual item awaits a person.
- **INCOMPLETE** (exit 2): a gated item errored (the probe broke: unreachable target, timeout); a
  gated item was `not_run` (msgops was not given what it needs) in a run that was not scoped on
  purpose; a load threshold was not measured; the load generator was saturated (it measured
  itself, not the target); or the run evaluated nothing at all.
- **GO with exceptions** (exit 0): nothing gated is wrong, but something was waived, or failed or
  errored below the gate.
- **GO** (exit 0): every gated check that ran passed, and something ran.

Waived items are accepted exceptions, never blockers. A run scoped on purpose (`--tags`, `-c`,
`--only`, or `scope:` in msgops.yaml) may leave gated items `not_run`; the verdict says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from msgops.errors import EXIT_FAILED, EXIT_NOT_EVALUATED, EXIT_OK, UserError
from msgops.loadresults import LoadResults
from msgops.results import STATUSES, Result

Decision = Literal["GO", "NO-GO", "GO with exceptions", "INCOMPLETE"]
DECISIONS: tuple[Decision, ...] = ("GO", "NO-GO", "GO with exceptions", "INCOMPLETE")
DEFAULT_FAIL_ON = frozenset({"critical", "high"})
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
_EVALUATED = ("pass", "fail", "waived")  # the check looked at the target and concluded


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

    def gates(self, result: Result) -> bool:
        return result.severity in self.fail_on and not result.optional

    @property
    def label(self) -> str:
        return ",".join(s for s in SEVERITY_ORDER if s in self.fail_on)


@dataclass
class Blocker:
    """One reason the verdict is not GO: an item, a load threshold or the load generator."""

    id: str
    severity: str
    status: str  # fail | error | not_run | manual | threshold missed | not measured | saturated
    reason: str

    def line(self) -> str:
        return f"{self.id} [{self.severity}] {self.status}: {self.reason}"


@dataclass
class Coverage:
    """How much of what was asked was actually checked."""

    automated: int = 0  # automated items in the run
    evaluated: int = 0  # of those, concluded pass / fail (or waived after concluding)
    not_applicable: int = 0  # skip
    not_run: int = 0
    errored: int = 0
    manual_pending: int = 0
    attested: int = 0
    thresholds: int = 0  # load thresholds judged in this verdict
    thresholds_measured: int = 0

    def sentence(self) -> str:
        checks = "check" if self.automated == 1 else "checks"
        parts = [f"{self.evaluated} of {self.automated} automated {checks} ran"] if self.automated else []
        extra = [f"{n} {what}" for n, what in ((self.not_applicable, "not applicable"), (self.not_run, "not run"),
                                               (self.errored, "errored")) if n]
        if extra:
            parts[0] += f" ({', '.join(extra)})"
        if self.thresholds:
            parts.append(f"{self.thresholds_measured} of {self.thresholds} load threshold"
                         f"{'s' * (self.thresholds != 1)} measured")
        if self.manual_pending:
            parts.append(f"{self.manual_pending} manual item{'s' * (self.manual_pending != 1)} pending")
        if self.attested:
            parts.append(f"{self.attested} attested")
        return "; ".join(parts) or "nothing was checked"


@dataclass
class Verdict:
    decision: Decision
    exit_code: int
    reason: str  # one line: why this decision, naming the first blocker
    counts: dict[str, int] = field(default_factory=dict)
    blocking: list[str] = field(default_factory=list)  # ids of what keeps it from GO
    coverage: Coverage = field(default_factory=Coverage)
    blockers: list[Blocker] = field(default_factory=list)
    not_evaluated: list[Blocker] = field(default_factory=list)  # gated items or thresholds nobody checked
    scope: str | None = None  # how the run was narrowed on purpose, if it was
    gate: str = ",".join(s for s in SEVERITY_ORDER if s in DEFAULT_FAIL_ON)

    @property
    def headline(self) -> str:
        """'GO — 239 of 239 automated checks ran; 161 manual items pending'."""
        scoped = f" (scoped: {self.scope})" if self.scope else ""
        return f"{self.decision} — {self.coverage.sentence()}{scoped}"


def _load_findings(loads: Iterable[LoadResults]) -> tuple[list[Blocker], list[Blocker], int, int]:
    """Missed thresholds (NO-GO), and unmeasured thresholds or saturated generators (not evaluated)."""
    missed: list[Blocker] = []
    unjudged: list[Blocker] = []
    total = measured = 0
    for load in loads:
        where = f"load/{load.profile}"
        if load.generator.saturated:
            why = getattr(load.generator, "reason", None) or "the load generator was saturated"
            unjudged.append(Blocker(f"{where}/generator", "high", "saturated",
                                    f"{why}: the measurements describe the generator, not the target "
                                    "(add workers with --processes N, or lower the rate)"))
        for t in load.thresholds:
            total += 1
            tid = f"{where}/{t.metric}"
            if t.observed is None:
                unjudged.append(Blocker(tid, "high", "not measured",
                                        f"{t.metric} {t.op} {t.value:g} was not measured in this run"))
                continue
            measured += 1
            if t.passed is False:
                missed.append(Blocker(tid, "high", "threshold missed",
                                      f"{t.metric} = {t.observed:g}, expected {t.op} {t.value:g}"))
    if any(b.status == "saturated" for b in unjudged):
        # a saturated generator's numbers are not evidence either way: its misses do not count as misses
        saturated = {b.id.rsplit("/", 1)[0] for b in unjudged if b.status == "saturated"}
        unjudged += [b for b in missed if b.id.rsplit("/", 1)[0] in saturated]
        missed = [b for b in missed if b.id.rsplit("/", 1)[0] not in saturated]
    return missed, unjudged, total, measured


def _blocker(r: Result) -> Blocker:
    return Blocker(r.id, r.severity, r.status, r.message)


def evaluate(results: Sequence[Result], policy: GatePolicy = GatePolicy(), loads: Sequence[LoadResults] = (),
             scope: str | None = None) -> Verdict:
    """The verdict over check results and load runs. `scope` describes a run narrowed on purpose."""
    counts = Counter(r.status for r in results)
    automated = [r for r in results if r.status not in ("manual", "attested")]
    gated = [r for r in results if policy.gates(r)]
    missed, unjudged, thresholds, measured = _load_findings(loads)
    coverage = Coverage(
        automated=len(automated), evaluated=sum(r.status in _EVALUATED for r in automated),
        not_applicable=counts["skip"], not_run=counts["not_run"], errored=counts["error"],
        manual_pending=counts["manual"], attested=counts["attested"], thresholds=thresholds,
        thresholds_measured=measured)

    def verdict(decision: Decision, code: int, reason: str, blockers: list[Blocker],
                not_evaluated: list[Blocker]) -> Verdict:
        return Verdict(decision, code, reason, {s: counts.get(s, 0) for s in STATUSES}, [b.id for b in blockers],
                       coverage, blockers, not_evaluated, scope, policy.label)

    errors = [_blocker(r) for r in gated if r.status == "error"]
    not_run = [_blocker(r) for r in gated if r.status == "not_run"]
    not_evaluated = errors + not_run + unjudged

    failures = [_blocker(r) for r in gated if r.status == "fail"] + missed
    pending = [_blocker(r) for r in gated if r.status == "manual"] if policy.require_attestations else []
    if failures or pending:
        parts = []
        if failures:
            parts.append(f"{len(failures)} gated check(s) failed")
        if pending:
            parts.append(f"{len(pending)} gated manual item(s) await attestation")
        first = (failures + pending)[0]
        return verdict("NO-GO", EXIT_FAILED, f"{' and '.join(parts)} (gate: {policy.label}); first: {first.line()}",
                       failures + pending, not_evaluated)

    incomplete = errors + (not_run if scope is None else []) + unjudged
    if incomplete:
        first = incomplete[0]
        what = []
        if errors:
            what.append(f"{len(errors)} gated check(s) errored")
        if not_run and scope is None:
            what.append(f"{len(not_run)} gated check(s) not run")
        if unjudged:
            what.append(f"{len(unjudged)} load measurement(s) not evaluated")
        return verdict("INCOMPLETE", EXIT_NOT_EVALUATED, f"{' and '.join(what)}; first: {first.line()}",
                       incomplete, not_evaluated)

    if coverage.evaluated == 0 and measured == 0:
        return verdict("INCOMPLETE", EXIT_NOT_EVALUATED,
                       "nothing was evaluated: no check concluded pass or fail"
                       + (f" ({coverage.not_run} not run, {coverage.not_applicable} not applicable)"
                          if automated else ""), [], not_evaluated)

    exceptions = [r for r in results if r.status == "waived" or (r.status in ("fail", "error") and not policy.gates(r))]
    if exceptions:
        waived = sum(r.status == "waived" for r in exceptions)
        below = len(exceptions) - waived
        parts = ([f"{waived} waived"] if waived else []) + ([f"{below} below the gate"] if below else [])
        return verdict("GO with exceptions", EXIT_OK,
                       f"no gated failure (gate: {policy.label}); exceptions: {', '.join(parts)}", [], not_evaluated)
    suffix = f"; {len(not_run)} gated item(s) outside the run's scope were not run" if not_run else ""
    return verdict("GO", EXIT_OK, f"every gated check that ran passed (gate: {policy.label}){suffix}", [],
                   not_evaluated)
