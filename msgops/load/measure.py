"""Measurements of a load run that Locust does not make: exact latencies, deliveries, sockets, CPU.

Every Locust process (the local runner, or each worker) keeps a `Measurements` and hands it over
as a *delta* once a second: workers send it to the master with a Locust custom message (so
distributed runs across machines need nothing but Locust's own channel); the master, or the
local runner, merges the deltas into one `Measurements` and writes it as JSON. `msgops load`
then reads that file (msgops.load.summary) to compute metrics. One class on both sides keeps the
format in one place; nothing here imports Locust or gevent.

A delta's size does not grow with the number of messages: latencies are histograms, deliveries
ranges of sequence numbers per socket and conversation (msgops.load.accounting). With `raw=True`
(MSGOPS_LOAD_RAW_RECORDS=1) every send, socket and delivery also travels as a record and the
master keeps them all, as msgops load did before it aggregated on the workers: only to measure
what that costs (bench/load_master_memory.py).

Latencies are HDR histograms in microseconds with 3 significant digits (at most 0.1 % relative
error, never Locust's two-digit rounding, which stores a true 196 ms as 200); per-second series use
2 digits, enough for charts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from msgops.load.accounting import Ledger, Senders, Sockets

LOWEST_US = 1
HIGHEST_US = 600_000_000  # 10 minutes: anything slower is recorded as 10 minutes
DIGITS = 3
SERIES_DIGITS = 2
SEND = "POST /conversations/{id}/messages"
BROADCAST = "POST /broadcasts"
WS_CONNECT = "WS connect (connect, auth, join)"  # /realtime or Socket.IO: results.target.realtime says which


def open_model_start(intended: float, started: float) -> float:
    """Where an open-model request's latency (and its message's delivery latency) counts from: its
    intended start, so that a generator or service falling behind shows; its actual start when it went
    out early (see TIMER_SLACK_S in loadtests/msgload/openloop.py), so that no latency is shorter
    than what actually happened."""
    return min(intended, started)


def open_model_latency_ms(exchange_ms: float, intended: float, now: float) -> float:
    """An open-model request's latency, given its exchange (from its actual start) ending `now`."""
    return (now - open_model_start(intended, now - exchange_ms / 1000)) * 1000


def new_histogram(digits: int = DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def to_us(ms: float) -> int:
    return min(HIGHEST_US, max(LOWEST_US, round(ms * 1000)))


def encode(hist: HdrHistogram) -> str:
    return hist.encode().decode("ascii") if hist.get_total_count() else ""


def release(hist: HdrHistogram) -> None:
    """Free a histogram that is done with now. An hdrh histogram and its encoder refer to each other,
    so a dropped one waits for the cyclic collector's full pass, which comes rarely in a long run:
    the master's RSS grew by megabytes a minute of per-second counts arrays waiting for it."""
    hist.encoder.histogram = None


def decode_into(target: HdrHistogram, encoded: str) -> None:
    if encoded:
        other = HdrHistogram.decode(encoded.encode("ascii"))
        target.add(other)
        release(other)


_USUAL = (50.0, 95.0, 99.0)  # what the results ask of most histograms: found in one pass, kept with it


def percentile_ms(hist: HdrHistogram, pct: float) -> float | None:
    """The recorded value at `pct` (upper edge of its bucket: never optimistic), in ms.

    A percentile walks the histogram's buckets (in Python): the usual ones are found together in one
    walk and kept on the histogram until it records more."""
    total = hist.get_total_count()
    if not total:
        return None
    cached: tuple[int, dict[float, int]] | None = getattr(hist, "_msgops_percentiles", None)
    if cached is None or cached[0] != total or pct not in cached[1]:
        cached = (total, hist.get_percentile_to_value_dict([*_USUAL, pct]))
        hist._msgops_percentiles = cached
    return round(cached[1][pct] / 1000, 3)


@dataclass
class Endpoint:
    requests: int = 0
    failures: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    hist: HdrHistogram = field(default_factory=new_histogram)


@dataclass
class Second:
    """What completed within one wall-clock second, merged over processes.

    Its two histograms take ~25 KB each while in use; `pack()` keeps them encoded (~200 bytes) once
    the second is past, so a long run's series does not grow the master by megabytes."""

    requests: int = 0
    failures: int = 0
    sends: int = 0  # messages accepted (201)
    deliveries: int = 0
    users: int | None = None
    machine_cpu: float | None = None
    _hists: dict[str, HdrHistogram] = field(default_factory=dict)
    _packed: dict[str, str] = field(default_factory=dict)

    def _hist(self, name: str) -> HdrHistogram:
        hist = self._hists.get(name)
        if hist is None:
            hist = self._hists[name] = new_histogram(SERIES_DIGITS)
            decode_into(hist, self._packed.pop(name, ""))
        return hist

    @property
    def http(self) -> HdrHistogram:
        return self._hist("http")

    @property
    def delivery(self) -> HdrHistogram:
        return self._hist("delivery")

    def encoded(self, name: str) -> str:
        hist = self._hists.get(name)
        return encode(hist) if hist is not None else self._packed.get(name, "")

    def pack(self) -> None:
        for name, hist in self._hists.items():
            self._packed[name] = encode(hist)
            release(hist)
        self._hists = {}

    def release(self) -> None:
        for hist in self._hists.values():
            release(hist)
        self._hists = {}


RAW_ENV = "MSGOPS_LOAD_RAW_RECORDS"
RAW_KINDS = ("sent", "opened", "closed", "received")


class Measurements:
    """One process's measurements (or the merge of many). `take_delta()` empties it."""

    def __init__(self, tag: str = "local", raw: bool = False, timeout: float = 3.0) -> None:
        self.tag = tag
        self.senders = Senders()   # this process's sends and sockets: kept across deltas (they count
        self.sockets = Sockets()   # sequence numbers), reported as what changed since the last delta
        self.ledger = Ledger(timeout)  # the merge of every process's sends and sockets
        self.delivered: dict[str, Any] | None = None  # the ledger's summary, once the run has ended
        self.raw: dict[str, list[list[Any]]] | None = {k: [] for k in RAW_KINDS} if raw else None
        self._reset()

    def _reset(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.ws_connect_failures = 0
        self.delivery = new_histogram()
        self.open_service = new_histogram()  # open-model sends measured from their actual start
        self.open: dict[str, int] = {"scheduled": 0, "late": 0, "dropped": 0}
        self.seconds: dict[int, Second] = {}
        self._unpacked: set[int] = set()
        self.cpu: dict[str, list[list[float]]] = {}  # process tag -> [[epoch second, percent], ...]
        self.meta: dict[str, Any] = {}       # set by the master: run phases, stop time, users

    # Recording -----------------------------------------------------------------------------------

    def _second(self, t: float) -> Second:
        sec = int(t)
        bucket = self.seconds.get(sec)
        if bucket is None:
            bucket = self.seconds[sec] = Second()
            self._unpacked.add(sec)
        return bucket

    def pack_seconds(self, before: float) -> None:
        """Encode the series histograms of the seconds before `before` (they are done)."""
        for sec in [s for s in self._unpacked if s < before]:
            self.seconds[sec].pack()
            self._unpacked.discard(sec)

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

    def send_started(self, conversation: int, t: float) -> int:
        """A message send begins; its sequence number in the conversation (for its key)."""
        return self.senders.start(conversation, t)

    def send_finished(self, conversation: int, seq: int, accepted: bool, key: str, t_start: float, t_done: float,
                      keep_s: float) -> None:
        """The send ended; `accepted`: the target stored it. `keep_s`: how long to remember it for the
        end of the run (the delivery timeout and some)."""
        self.senders.finish(conversation, seq, accepted, t_done, keep_s)
        if accepted:
            self._second(t_done).sends += 1
            if self.raw is not None:
                self.raw["sent"].append([key, conversation, round(t_start, 6), round(t_done, 6)])

    def socket_opened(self, sock: str, conversation: int, t: float) -> None:
        self.sockets.opened(sock, conversation, t)
        if self.raw is not None:
            self.raw["opened"].append([sock, conversation, round(t, 6)])

    def socket_closed(self, sock: str, t: float) -> None:
        self.sockets.closed(sock, t)
        if self.raw is not None:
            self.raw["closed"].append([sock, round(t, 6)])

    def message_received(self, key: str, sock: str, latency_ms: float, t: float) -> None:
        self.sockets.received(sock, key)
        if self.raw is not None:
            self.raw["received"].append([key, sock])
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
        """The merged measurements (the master's, or a local runner's)."""
        return {
            "endpoints": {n: {"requests": e.requests, "failures": e.failures, "statuses": e.statuses,
                              "hist": encode(e.hist)} for n, e in self.endpoints.items()},
            "ws_connect_failures": self.ws_connect_failures,
            "delivery": encode(self.delivery),
            "open_service": encode(self.open_service),
            "open": dict(self.open),
            "seconds": {str(s): {"requests": b.requests, "failures": b.failures, "sends": b.sends,
                                 "deliveries": b.deliveries, "http": b.encoded("http"),
                                 "delivery": b.encoded("delivery"),
                                 "users": b.users, "machine_cpu": b.machine_cpu}
                        for s, b in self.seconds.items()},
            "cpu": self.cpu, "meta": self.meta, "delivered": self.delivered,
            **({"raw": self.raw} if self.raw is not None else {}),
        }

    def final(self, run_end: float) -> dict[str, Any]:
        """The merged measurements at the end of the run, deliveries decided."""
        self.delivered = self.ledger.summary(run_end)
        return self.to_dict()

    def take_delta(self, now: float | None = None, final: bool = False) -> dict[str, Any]:
        """Everything recorded since the last call, ready to send; this object starts over.
        `final`: the process's last delta (it carries the last sends, to judge the run's end)."""
        delta = self.to_dict()
        delta.update(proc=self.tag, t=time.time() if now is None else now, senders=self.senders.take_report(final),
                     sockets=self.sockets.take_report(), levels=self.sockets.take_levels())
        if self.raw is not None:
            self.raw = {k: [] for k in RAW_KINDS}
        for hist in (self.delivery, self.open_service, *(e.hist for e in self.endpoints.values())):
            release(hist)  # sent: nothing reads them again
        for sec in self.seconds.values():
            sec.release()
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
        if "proc" in data:
            self.ledger.merge(str(data["proc"]), float(data["t"]), data.get("senders", {}), data.get("sockets", {}),
                              data.get("levels", {}))
        if data.get("delivered") is not None:
            self.delivered = data["delivered"]
        if data.get("raw"):
            if self.raw is None:
                self.raw = {k: [] for k in RAW_KINDS}
            for kind, records in data["raw"].items():
                self.raw.setdefault(kind, []).extend(records)
        for tag, samples in data.get("cpu", {}).items():
            self.cpu.setdefault(tag, []).extend(samples)
        self.meta.update(data.get("meta", {}))

    def deliveries(self, run_end: float) -> dict[str, Any]:
        """Deliveries and sockets: as decided at the end of the run, or from the ledger now."""
        return self.delivered if self.delivered is not None else self.ledger.summary(run_end)

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
