"""From the merged measurements of a run to the results document (msgops.loadresults).

Metrics are computed here, once, from exact data: percentiles from the merged HDR histograms,
rates over the send window the plan defined, deliveries and open sockets from the per-socket
accounting (msgops.load.accounting), and generator health from every Locust process's own CPU
samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hdrh.histogram import HdrHistogram

from msgops.load import accounting
from msgops.load.measure import BROADCAST, SEND, WS_CONNECT, Endpoint, Measurements, new_histogram, percentile_ms
from msgops.load.operations import Prepared
from msgops.load.profile import Profile
from msgops.loadresults import SCHEMA, VERSION, LoadResults, TargetInfo, Threshold, compare, parse

SATURATED_CPU = 90.0  # percent of one core: Locust's own warning level


@dataclass(frozen=True)
class Health:
    cpu_percent_max: float | None
    cpu_percent_mean: float | None
    machine_cpu_percent_max: float | None
    saturated: bool
    reason: str | None
    processes: dict[str, dict[str, float]]


def generator_health(m: Measurements, start: float, end: float) -> Health:
    """Saturated: some Locust process spent at least 3 seconds (and 10 % of the run) at >= 90 % CPU,
    or the open model fell behind its schedule with room to spare (the generator, not the service,
    was late)."""
    per: dict[str, dict[str, float]] = {}
    reason = None
    for tag, samples in m.cpu.items():
        window = [pct for sec, pct in samples if start + 1 <= sec <= end]  # skip start-up (imports, forks)
        if not window:
            continue
        hot = sum(1 for pct in window if pct >= SATURATED_CPU)
        per[tag] = {"max": max(window), "mean": round(sum(window) / len(window), 1), "seconds_over_90": hot}
        if hot >= max(3, 0.1 * len(window)) and reason is None:
            reason = (f"Locust process {tag} was at >= {SATURATED_CPU:g}% CPU for {hot} of {len(window)} s: "
                      "add generator processes (--processes N) or lower the load")
    scheduled, late = m.open.get("scheduled", 0), m.open.get("late", 0)
    if reason is None and scheduled >= 20 and late / scheduled > 0.05:
        service_p50 = percentile_ms(m.open_service, 50)
        if service_p50 is not None and service_p50 < 100:  # the service answered fast, yet sends started late
            reason = (f"{late} of {scheduled} open-model sends started late while the service answered in "
                      f"{service_p50:g} ms (p50): the generator could not keep the schedule")
    machine = [s.machine_cpu for sec, s in m.seconds.items() if s.machine_cpu is not None and start + 1 <= sec <= end]
    maxes = [p["max"] for p in per.values()]
    means = [p["mean"] for p in per.values()]
    return Health(max(maxes) if maxes else None, max(means) if means else None,
                  max(machine) if machine else None, reason is not None, reason, per)


def _http(m: Measurements) -> dict[str, Endpoint]:
    return {n: e for n, e in m.endpoints.items() if n != WS_CONNECT}


def _merged(endpoints: dict[str, Endpoint]) -> HdrHistogram:
    overall = new_histogram()
    for e in endpoints.values():
        overall.add(e.hist)
    return overall


def _rate(n: float, seconds: float) -> float | None:
    return round(n / seconds, 3) if seconds > 0 else None


@dataclass
class RunInfo:
    profile: Profile
    api_url: str
    environment: str | None
    version: str | None
    started_at: datetime
    finished_at: datetime
    memory_mb: float | None
    users_planned: int
    realtime: str | None = None  # the protocol the listeners used
    operations: dict[str, Prepared] = field(default_factory=dict)  # the workload's requests (plan.operations)

    def endpoint(self, action: str, reference: str) -> str:
        op = self.operations.get(action)
        return op.endpoint if op is not None else reference


def _accepted(e: Endpoint, op: Prepared | None) -> int:
    if op is None:
        return e.statuses.get("201", 0)
    return sum(n for code, n in e.statuses.items() if code.isdigit() and op.accepted(int(code)))


def build(m: Measurements, info: RunInfo) -> LoadResults:
    meta = m.meta
    t0 = float(meta.get("t0") or info.started_at.timestamp())
    stopped = float(meta.get("stopped_at") or info.finished_at.timestamp())
    windows = [w for k, w in meta.items() if k.startswith("window:")]
    send_start = min((float(w[0]) for w in windows), default=t0 + float(meta.get("send_after_s",
                                                                                 info.profile.send_after_s)))
    send_for = float(meta.get("send_for_s", info.profile.duration))
    timeout = float(meta.get("delivery_timeout_s", info.profile.delivery_timeout))
    run_s = max(0.0, stopped - t0)

    send, broadcast = info.endpoint("send", SEND), info.endpoint("broadcast", BROADCAST)
    operation_of = {op.endpoint: op.operation for op in info.operations.values()}
    http = _http(m)
    overall = _merged(http)
    requests = sum(e.requests for e in http.values())
    failures = sum(e.failures for e in http.values())
    statuses: dict[str, int] = {}
    for e in http.values():
        for code, n in e.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    ws = m.endpoints.get(WS_CONNECT)
    attempts = ws.requests if ws else 0
    if not m.delivered:
        m.ledger.timeout = timeout
    delivered = m.deliveries(stopped)
    deliveries = accounting.Deliveries(**delivered["deliveries"])
    peak = int(delivered["peak_open"])
    open_by_second = {int(k): int(v) for k, v in delivered["open_by_second"].items()}
    listening = bool(delivered["opened"]) or attempts > 0
    accepted = deliveries.messages
    users_seen = [s.users for s in m.seconds.values() if s.users is not None]
    health = generator_health(m, t0, stopped)

    metrics: dict[str, float | None] = {
        "http.p50_ms": percentile_ms(overall, 50), "http.p95_ms": percentile_ms(overall, 95),
        "http.p99_ms": percentile_ms(overall, 99),
        "http.error_rate": round(failures / requests, 6) if requests else None,
        "http.rps": _rate(requests, run_s),
        "http.requests": requests, "http.failures": failures, "http.rate_limited": statuses.get("429", 0),
        "messages_per_s": _rate(accepted, send_for) if (send in m.endpoints) else None,
        "messages.accepted": accepted if send in m.endpoints else None,
        "broadcasts.accepted": (_accepted(m.endpoints[broadcast], info.operations.get("broadcast"))
                                if broadcast in m.endpoints else None),
        "ws.connections": peak if listening else None,
        "ws.connect_failures": m.ws_connect_failures if listening else None,
        "ws.connect_error_rate": round(m.ws_connect_failures / attempts, 6) if attempts else None,
        "ws.connect_p95_ms": percentile_ms(ws.hist, 95) if ws else None,
        "delivery.p50_ms": percentile_ms(m.delivery, 50), "delivery.p95_ms": percentile_ms(m.delivery, 95),
        "delivery.p99_ms": percentile_ms(m.delivery, 99),
        "delivery.loss_rate": (round(deliveries.loss_rate, 6) if deliveries.loss_rate is not None else None),
        "delivery.expected": deliveries.expected if listening else None,
        "delivery.lost": deliveries.lost if listening else None,
        "delivery.duplicates": deliveries.duplicates if listening else None,
        "delivery.out_of_order": deliveries.out_of_order if listening else None,
        "open.scheduled": m.open.get("scheduled") or None, "open.late": m.open.get("late") if m.open.get("scheduled")
        else None, "open.dropped": m.open.get("dropped") if m.open.get("scheduled") else None,
        "open.service_p95_ms": percentile_ms(m.open_service, 95),
        "memory_mb": info.memory_mb,
        "users": max(users_seen) if users_seen else info.users_planned,
        "generator.cpu_percent_max": health.cpu_percent_max,
    }

    endpoints = {name: {"requests": e.requests, "failures": e.failures, "p50_ms": percentile_ms(e.hist, 50),
                        "p95_ms": percentile_ms(e.hist, 95), "p99_ms": percentile_ms(e.hist, 99),
                        "rps": _rate(e.requests, run_s), "statuses": dict(sorted(e.statuses.items())),
                        **({"operation": operation_of[name]} if name in operation_of else {})}
                 for name, e in sorted(m.endpoints.items())}

    thresholds = []
    for t in info.profile.thresholds:
        observed = metrics.get(t.metric)
        thresholds.append(Threshold(metric=t.metric, op=t.op, value=t.value, observed=observed,
                                    passed=None if observed is None else compare(observed, t.op, t.value)))

    doc: dict[str, Any] = {
        "schema": SCHEMA, "version": VERSION, "profile": info.profile.name,
        "target": TargetInfo(api_url=info.api_url, environment=info.environment,
                             version=info.version, realtime=info.realtime).model_dump(exclude_none=True),
        "started_at": info.started_at.isoformat(), "finished_at": info.finished_at.isoformat(),
        "duration_s": round(run_s, 3), "metrics": metrics,
        "thresholds": [t.model_dump() for t in thresholds],
        "generator": {"cpu_percent_max": health.cpu_percent_max, "saturated": health.saturated,
                      "cpu_percent_mean": health.cpu_percent_mean,
                      "machine_cpu_percent_max": health.machine_cpu_percent_max,
                      "processes": health.processes, "reason": health.reason},
        "endpoints": endpoints,
        "timeseries": _series(m, t0, stopped, open_by_second if listening else None),
        "deliveries": deliveries.__dict__ if listening else None,
        "events": {  # realtime events, as the listening sockets saw them
            "message_received": {"count": deliveries.received, "p50_ms": percentile_ms(m.delivery, 50),
                                 "p95_ms": percentile_ms(m.delivery, 95), "p99_ms": percentile_ms(m.delivery, 99)},
            "ws_connect": {"attempts": attempts, "failures": m.ws_connect_failures,
                           "p50_ms": percentile_ms(ws.hist, 50) if ws else None,
                           "p95_ms": percentile_ms(ws.hist, 95) if ws else None},
            "ws_closed_early": int(delivered["closed"]),
        } if listening else None,
        "phases": {"send_start_s": round(send_start - t0, 3), "send_for_s": send_for,
                   "delivery_timeout_s": timeout, "stopped_s": round(run_s, 3)},
        "seed": info.profile.seed, "description": info.profile.description,
    }
    return parse(doc, "msgops load")


def _series(m: Measurements, t0: float, end: float, open_by_second: dict[int, int] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    level = 0
    users: int | None = None
    cpu_by_second: dict[int, float] = {}
    for samples in m.cpu.values():
        for sec, pct in samples:
            cpu_by_second[int(sec)] = max(cpu_by_second.get(int(sec), 0.0), pct)
    for sec in range(int(t0), int(end) + 1):
        s = m.seconds.get(sec)
        if open_by_second is not None and sec in open_by_second:
            level = open_by_second[sec]
        row: dict[str, Any] = {"t_s": sec - int(t0)}
        users = s.users if s and s.users is not None else users  # the master samples once a second
        row["users"] = users
        row["rps"] = s.requests if s else 0
        row["p95_ms"] = percentile_ms(s.http, 95) if s else None
        row["error_rate"] = round(s.failures / s.requests, 6) if s and s.requests else 0.0
        row["messages_per_s"] = s.sends if s else 0
        row["deliveries_per_s"] = s.deliveries if s else 0
        row["delivery_p95_ms"] = percentile_ms(s.delivery, 95) if s else None
        row["ws_connections"] = level if open_by_second is not None else None
        row["generator_cpu"] = cpu_by_second.get(sec)
        row["machine_cpu"] = s.machine_cpu if s else None
        out.append(row)
    return out


def now() -> datetime:
    return datetime.now(UTC)
