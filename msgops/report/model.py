"""The report's content, computed once from the inputs; templates only lay it out."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from msgops import __version__
from msgops.loadresults import LoadResults
from msgops.report.inputs import Inputs
from msgops.results import STATUSES, Result
from msgops.verdict import SEVERITY_ORDER, Blocker, GatePolicy, Verdict, evaluate

# Sign-off roles named by the seed checklists (000 "Final Sign-Off", 004 "Sign-Off").
SIGNOFF_ROLES = ("Database Admin", "Backend Lead", "Frontend Lead", "Security Lead", "Product Manager", "QA Lead",
                 "DevOps", "Developer", "Product Owner")
_STATUS_RANK = {"fail": 0, "error": 1, "not_run": 2, "manual": 3, "waived": 4, "skip": 5, "attested": 6, "pass": 7}
_ATTENTION_MANUAL = ("critical", "high")  # pending manual items of these severities are listed up front
_REGRESSION_RATIO = 1.10  # a latency 10% worse than last time (and at least 5 ms) is a regression


@dataclass
class Section:
    path: list[str]
    attention: list[Result]  # failures first, then errors, not run, waived, skipped, attested
    passed: list[Result]
    manual: list[Result] = field(default_factory=list)  # pending a person, most severe first


@dataclass
class AttentionItem:
    """One line of the report's attention panel: what it is, how bad, and why in one line."""

    id: str
    severity: str
    status: str
    reason: str
    text: str = ""  # the item's seed wording, when it is a checklist item
    anchor: bool = False  # the report has an element with this id to jump to


@dataclass
class Attention:
    blockers: list[AttentionItem] = field(default_factory=list)  # what keeps the verdict from GO
    not_evaluated: list[AttentionItem] = field(default_factory=list)  # gated, nobody checked (not blockers)
    manual: list[AttentionItem] = field(default_factory=list)  # pending manual items of high severity
    exceptions: list[AttentionItem] = field(default_factory=list)  # waived, or failed/errored below the gate

    @property
    def empty(self) -> bool:
        return not (self.blockers or self.not_evaluated or self.manual or self.exceptions)


@dataclass
class ChecklistView:
    id: str
    title: str
    seed: str | None
    sha256: str
    sections: list[Section]
    counts: dict[str, int]


@dataclass
class Change:
    id: str
    text: str
    before: str
    after: str


@dataclass
class Regression:
    metric: str
    before: float
    after: float


@dataclass
class ReportModel:
    generated_at: str
    tool_version: str
    git_sha: str | None
    target: dict[str, Any]
    verdict: Verdict
    content_hash: str
    checklists: list[ChecklistView] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    loads: list[dict[str, Any]] = field(default_factory=list)
    waived: list[Result] = field(default_factory=list)
    attested: list[Result] = field(default_factory=list)
    pending_manual: list[Result] = field(default_factory=list)
    new_failures: list[Change] = field(default_factory=list)
    fixed: list[Change] = field(default_factory=list)
    regressions: list[Regression] = field(default_factory=list)
    has_previous: bool = False
    run: dict[str, Any] = field(default_factory=dict)
    attention: Attention = field(default_factory=Attention)
    statuses: tuple[str, ...] = STATUSES


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _results(inputs: Inputs) -> list[Result]:
    return [Result.from_dict(r) for r in (inputs.checks or {}).get("results", [])]


def _policy(inputs: Inputs) -> GatePolicy:
    policy = (inputs.checks or {}).get("policy", {})
    return GatePolicy(frozenset(policy.get("fail_on", ("critical", "high"))),
                      bool(policy.get("require_attestations", False)))


def combined_verdict(inputs: Inputs) -> Verdict:
    """The verdict over the check results and every load run among the inputs (msgops.verdict decides)."""
    scope = (inputs.checks or {}).get("policy", {}).get("scope")
    return evaluate(_results(inputs), _policy(inputs), inputs.loads, scope)


def _sections(results: list[Result]) -> list[Section]:
    grouped: dict[tuple[str, ...], list[Result]] = {}
    for r in results:
        grouped.setdefault(tuple(r.section), []).append(r)
    sections = []
    for path, members in grouped.items():
        def rank(r: Result) -> tuple[int, int]:
            return _STATUS_RANK.get(r.status, 9), _severity_rank(r.severity)

        attention = sorted((r for r in members if r.status not in ("pass", "manual")), key=rank)
        manual = sorted((r for r in members if r.status == "manual"), key=rank)
        sections.append(Section(list(path), attention, [r for r in members if r.status == "pass"], manual))
    return sections


def _severity_rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


def _attention(verdict: Verdict, results: list[Result], loads: list[LoadResults], policy: GatePolicy) -> Attention:
    by_id = {r.id: r for r in results}
    anchors = set(by_id) | {f"load/{load.profile}/{t.metric}" for load in loads for t in load.thresholds} | {
        f"load/{load.profile}/generator" for load in loads}

    def item(b: Blocker) -> AttentionItem:
        found = by_id.get(b.id)
        return AttentionItem(b.id, b.severity, b.status, b.reason, found.text if found else "", b.id in anchors)

    blocking = {b.id for b in verdict.blockers}
    manual = sorted((r for r in results if r.status == "manual" and r.severity in _ATTENTION_MANUAL),
                    key=lambda r: _severity_rank(r.severity))
    return Attention(
        blockers=[item(b) for b in verdict.blockers],
        not_evaluated=[item(b) for b in verdict.not_evaluated if b.id not in blocking],
        manual=[AttentionItem(r.id, r.severity, r.status, r.confirm or r.message, r.text, True) for r in manual],
        exceptions=[AttentionItem(r.id, r.severity, r.status, _exception_reason(r), r.text, True) for r in results
                    if r.status == "waived" or (r.status in ("fail", "error") and not policy.gates(r))],
    )


def _exception_reason(r: Result) -> str:
    if r.status == "waived" and r.waiver:
        return (f"waived by {r.waiver.get('approver', '?')} until {r.waiver.get('expires', '?')}: "
                f"{r.waiver.get('justification', '')}")
    return r.message + ("" if r.status == "waived" else " (below the gate)")


def _count(results: list[Result]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def _changes(current: list[Result], previous: list[Result]) -> tuple[list[Change], list[Change]]:
    before = {r.id: r.status for r in previous}
    bad = ("fail", "error")
    new_failures = [Change(r.id, r.text, before.get(r.id, "absent"), r.status) for r in current
                    if r.status in bad and before.get(r.id) not in bad]
    fixed = [Change(r.id, r.text, before[r.id], r.status) for r in current
             if r.status == "pass" and before.get(r.id) in bad]
    return new_failures, fixed


def _regressions(current: Inputs, previous: Inputs) -> list[Regression]:
    before_by_profile = {r.profile: r for r in previous.loads}
    found = []
    for load in current.loads:
        prior = before_by_profile.get(load.profile)
        if prior is not None:
            found.extend(_metric_regressions(load, prior))
    return found


def _metric_regressions(current: LoadResults, previous: LoadResults) -> list[Regression]:
    found = []
    for name, after in current.metrics.items():
        before = previous.metrics.get(name)
        if not name.endswith("_ms") or after is None or before is None:
            continue
        if after > before * _REGRESSION_RATIO and after - before >= 5:
            found.append(Regression(f"{current.profile}: {name}", before, after))
    return found


# Which load thresholds each chart can show: chart title -> {threshold metric: factor to the chart's unit}.
_CHART_THRESHOLDS: dict[str, dict[str, float]] = {
    "Throughput": {"http.rps": 1.0, "messages_per_s": 1.0},
    "Latency": {"http.p95_ms": 1.0, "http.p99_ms": 1.0},
    "Delivery latency": {"delivery.p95_ms": 1.0},
    "Connections and users": {"ws.connections": 1.0, "users": 1.0},
    "Error rate": {"http.error_rate": 100.0},
}


def _load_view(load: LoadResults) -> dict[str, Any]:
    from msgops.report import charts

    series = load.timeseries

    def limits(title: str) -> list[tuple[str, float]]:
        wanted = _CHART_THRESHOLDS.get(title, {})
        return [(f"{t.metric} {t.op} {t.value:g}", t.value * wanted[t.metric]) for t in load.thresholds
                if t.metric in wanted]

    def points(key: str) -> list[tuple[float, float]]:
        return [(float(p["t_s"]), float(p[key])) for p in series if p.get(key) is not None and "t_s" in p]

    chart_specs = [
        ("Throughput", "req/s", [("requests/s", points("rps")), ("messages/s", points("messages_per_s"))]),
        ("Latency", "ms", [("p95", points("p95_ms")), ("p99", points("p99_ms"))]),
        ("Delivery latency", "ms", [("delivery p95", points("delivery_p95_ms"))]),
        ("Connections and users", "", [("WebSockets", points("ws_connections")), ("users", points("users"))]),
        ("Error rate", "%", [("errors", [(t, v * 100) for t, v in points("error_rate")])]),
    ]
    charts_svg = [charts.line_chart(title, unit, [(n, p) for n, p in lines if p], limits(title))
                  for title, unit, lines in chart_specs if any(p for _, p in lines)]
    return {
        "profile": load.profile,
        "started_at": load.started_at.isoformat(),
        "duration_s": load.duration_s,
        "metrics": {k: v for k, v in load.metrics.items() if v is not None},
        "thresholds": [t.model_dump() for t in load.thresholds],
        "generator": load.generator.model_dump(),
        "endpoints": {k: v.model_dump() for k, v in load.endpoints.items()},
        "charts": charts_svg,
        "target": load.target.model_dump(),
    }


def build(inputs: Inputs, previous: Inputs | None = None) -> ReportModel:
    results = _results(inputs)
    checks = inputs.checks or {}
    by_checklist: dict[str, list[Result]] = {}
    for r in results:
        by_checklist.setdefault(r.checklist, []).append(r)
    meta = {c["id"]: c for c in checks.get("checklists", [])}
    views = [ChecklistView(cid, meta.get(cid, {}).get("title", cid), meta.get(cid, {}).get("seed"),
                           meta.get(cid, {}).get("sha256", ""), _sections(members), _count(members))
             for cid, members in by_checklist.items()]
    model = ReportModel(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        tool_version=__version__,
        git_sha=git_sha(),
        target=checks.get("target") or (inputs.loads[-1].target.model_dump() if inputs.loads else {}),
        verdict=combined_verdict(inputs),
        content_hash=inputs.content_hash,
        checklists=views,
        counts=_count(results),
        loads=[_load_view(load) for load in inputs.loads],
        waived=[r for r in results if r.status == "waived"],
        attested=[r for r in results if r.status == "attested"],
        pending_manual=[r for r in results if r.status == "manual"],
        run=checks.get("run", {}),
    )
    model.attention = _attention(model.verdict, results, inputs.loads, _policy(inputs))
    if previous is not None:
        model.has_previous = True
        model.new_failures, model.fixed = _changes(results, _results(previous))
        model.regressions = _regressions(inputs, previous)
    return model
