"""Measurements of a load run that Locust does not make: exact latencies, deliveries, sockets, CPU.

Every Locust process (the local runner, or each worker) keeps a `Measurements` and hands it over
as a *delta* once a second: workers send it to the master with a Locust custom message (so
distributed runs across machines need nothing but Locust's own channel); the master, or the
local runner, merges the deltas into one `Measurements` and writes it as JSON. `msgops load`
then reads that file (msgops.load.summary) to compute metrics. One class on both sides keeps the
format in one place; nothing here imports Locust or gevent.

Latencies are HDR histograms in microseconds with 3 significant digits (at most 0.1 % relative
error, never Locust's two-digit rounding, which stores a true 196 ms as 200); per-second series use
2 digits, enough for charts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 600_000_000  # 10 minutes: anything slower is recorded as 10 minutes
DIGITS = 3
SERIES_DIGITS = 2
SEND = "POST /conversations/{id}/messages"
BROADCAST = "POST /broadcasts"
WS_CONNECT = "WS connect (connect, auth, join)"  # /realtime or Socket.IO: results.target.realtime says which


def new_histogram(digits: int = DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def to_us(ms: float) -> int:
    return min(HIGHEST_US, max(LOWEST_US, round(ms * 1000)))


def encode(hist: HdrHistogram) -> str:
    return hist.encode().decode("ascii") if hist.get_total_count() else ""


def decode_into(target: HdrHistogram, encoded: str) -> None:
    if encoded:
        target.add(HdrHistogram.decode(encoded.encode("ascii")))


def percentile_ms(hist: HdrHistogram, pct: float) -> float | None:
    """The recorded value at `pct` (upper edge of its bucket: never optimistic), in ms."""
    if not hist.get_total_count():
        return None
    return round(hist.get_value_at_percentile(pct) / 1000, 3)


@dataclass
class Endpoint:
    requests: int = 0
    failures: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    hist: HdrHistogram = field(default_factory=new_histogram)


@dataclass
class Second:
    """What completed within one wall-clock second, merged over processes."""

    requests: int = 0
    failures: int = 0
    sends: int = 0  # messages accepted (201)
    deliveries: int = 0
    http: HdrHistogram = field(default_factory=lambda: new_histogram(SERIES_DIGITS))
    delivery: HdrHistogram = field(default_factory=lambda: new_histogram(SERIES_DIGITS))
    users: int | None = None
    machine_cpu: float | None = None


class Measurements:
    """One process's measurements (or the merge of many). `take_delta()` empties it."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.ws_connect_failures = 0
        self.delivery = new_histogram()
        self.open_service = new_histogram()  # open-model sends measured from their actual start
        self.open: dict[str, int] = {"scheduled": 0, "late": 0, "dropped": 0}
        self.seconds: dict[int, Second] = {}
        self.sent: list[list[Any]] = []      # [key, conversation index, t_start, t_done] of accepted sends
        self.opened: list[list[Any]] = []    # [socket key, conversation index, t_joined]
        self.closed: list[list[Any]] = []    # [socket key, t_closed]
        self.received: list[list[Any]] = []  # [message key, socket key]
        self.cpu: dict[str, list[list[float]]] = {}  # process tag -> [[epoch second, percent], ...]
        self.meta: dict[str, Any] = {}       # set by the master: run phases, stop time, users

    # Recording -----------------------------------------------------------------------------------

    def _second(self, t: float) -> Second:
        sec = int(t)
        bucket = self.seconds.get(sec)
        if bucket is None:
            bucket = self.seconds[sec] = Second()
        return bucket

    def request(self, name: str, latency_ms: float, ok: bool, status: int | str | None, t_end: float) -> None:
        """One finished request; `status` is the HTTP status, or what went wrong (e.g. TimeoutError)."""
        ep = self.endpoints.get(name)
        if ep is None:
            ep = self.endpoints[name] = Endpoint()
        ep.requests += 1
        key = str(status or 0)
        ep.statuses[key] = ep.statuses.get(key, 0) + 1
        us = to_us(latency_ms)
        ep.hist.record_value(us)
        if name == WS_CONNECT:
            if not ok:
                ep.failures += 1
                self.ws_connect_failures += 1
            return
        sec = self._second(t_end)
        sec.requests += 1
        sec.http.record_value(us)
        if not ok:
            ep.failures += 1
            sec.failures += 1

    def dropped_send(self, name: str, t: float) -> None:
        """An open-model send that could not start in time: a failed request with no latency."""
        self.open["dropped"] += 1
        ep = self.endpoints.get(name)
        if ep is None:
            ep = self.endpoints[name] = Endpoint()
        ep.requests += 1
        ep.failures += 1
        ep.statuses["dropped"] = ep.statuses.get("dropped", 0) + 1
        sec = self._second(t)
        sec.requests += 1
        sec.failures += 1

    def scheduled(self, late: bool) -> None:
        self.open["scheduled"] += 1
        if late:
            self.open["late"] += 1

    def service_time(self, ms: float) -> None:
        self.open_service.record_value(to_us(ms))

    def message_sent(self, key: str, conversation: int, t_start: float, t_done: float) -> None:
        self.sent.append([key, conversation, round(t_start, 6), round(t_done, 6)])
        self._second(t_done).sends += 1

    def socket_opened(self, sock: str, conversation: int, t: float) -> None:
        self.opened.append([sock, conversation, round(t, 6)])

    def socket_closed(self, sock: str, t: float) -> None:
        self.closed.append([sock, round(t, 6)])

    def message_received(self, key: str, sock: str, latency_ms: float, t: float) -> None:
        self.received.append([key, sock])
        us = to_us(latency_ms)
        self.delivery.record_value(us)
        sec = self._second(t)
        sec.deliveries += 1
        sec.delivery.record_value(us)

    def cpu_sample(self, tag: str, t: float, percent: float) -> None:
        self.cpu.setdefault(tag, []).append([int(t), round(percent, 1)])

    def mark_second(self, t: float, users: int | None = None, machine_cpu: float | None = None) -> None:
        sec = self._second(t)
        if users is not None:
            sec.users = users if sec.users is None else max(sec.users, users)
        if machine_cpu is not None:
            sec.machine_cpu = machine_cpu if sec.machine_cpu is None else max(sec.machine_cpu, machine_cpu)

    # Moving between processes --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoints": {n: {"requests": e.requests, "failures": e.failures, "statuses": e.statuses,
                              "hist": encode(e.hist)} for n, e in self.endpoints.items()},
            "ws_connect_failures": self.ws_connect_failures,
            "delivery": encode(self.delivery),
            "open_service": encode(self.open_service),
            "open": dict(self.open),
            "seconds": {str(s): {"requests": b.requests, "failures": b.failures, "sends": b.sends,
                                 "deliveries": b.deliveries, "http": encode(b.http), "delivery": encode(b.delivery),
                                 "users": b.users, "machine_cpu": b.machine_cpu}
                        for s, b in self.seconds.items()},
            "sent": self.sent, "opened": self.opened, "closed": self.closed, "received": self.received,
            "cpu": self.cpu, "meta": self.meta,
        }

    def take_delta(self) -> dict[str, Any]:
        """Everything recorded since the last call, ready to send; this object starts over."""
        delta = self.to_dict()
        self._reset()
        return delta

    def merge(self, data: dict[str, Any]) -> None:
        for name, e in data.get("endpoints", {}).items():
            ep = self.endpoints.get(name)
            if ep is None:
                ep = self.endpoints[name] = Endpoint()
            ep.requests += int(e["requests"])
            ep.failures += int(e["failures"])
            for status, n in e["statuses"].items():
                ep.statuses[status] = ep.statuses.get(status, 0) + int(n)
            decode_into(ep.hist, e["hist"])
        self.ws_connect_failures += int(data.get("ws_connect_failures", 0))
        decode_into(self.delivery, data.get("delivery", ""))
        decode_into(self.open_service, data.get("open_service", ""))
        for k, v in data.get("open", {}).items():
            self.open[k] = self.open.get(k, 0) + int(v)
        for s, b in data.get("seconds", {}).items():
            sec = self._second(int(s))
            sec.requests += int(b["requests"])
            sec.failures += int(b["failures"])
            sec.sends += int(b["sends"])
            sec.deliveries += int(b["deliveries"])
            decode_into(sec.http, b["http"])
            decode_into(sec.delivery, b["delivery"])
            if b.get("users") is not None or b.get("machine_cpu") is not None:
                self.mark_second(int(s), b.get("users"), b.get("machine_cpu"))
        self.sent.extend(data.get("sent", []))
        self.opened.extend(data.get("opened", []))
        self.closed.extend(data.get("closed", []))
        self.received.extend(data.get("received", []))
        for tag, samples in data.get("cpu", {}).items():
            self.cpu.setdefault(tag, []).extend(samples)
        self.meta.update(data.get("meta", {}))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurements:
        m = cls()
        m.merge(data)
        return m

    @classmethod
    def merged(cls, deltas: Iterable[dict[str, Any]]) -> Measurements:
        m = cls()
        for d in deltas:
            m.merge(d)
        return m
