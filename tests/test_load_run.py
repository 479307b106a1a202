"""`msgops load` end to end: real Locust subprocesses against real services on loopback.

The smoke profile passes; an impossible threshold fails with exit 1 and the observed value; a
service slowed by a known delay shows that delay in the percentiles and in delivery latency; frames
dropped and duplicated on purpose are counted exactly, across two Locust worker processes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import typer
import uvicorn
from typer.testing import CliRunner

from msgops import probes
from msgops.cli_load import load
from msgops.config import Target
from msgops.errors import UserError
from msgops.load.measure import WS_CONNECT
from msgops.loadresults import LoadResults, load_results
from msgops.probes import Context
from msgops.results import Outcome
from service.app import create_app
from service.settings import Settings
from tests.support import JWT_SECRET, RunningService, free_port

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SEND = "POST /conversations/{id}/messages"


# A service wrapped in test middleware ------------------------------------------------------------


class SlowSends:
    """Holds every message send for `delay` seconds before the service sees it."""

    def __init__(self, app: ASGIApp, delay: float) -> None:
        self.app, self.delay = app, delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/messages"):
            await asyncio.sleep(self.delay)
        await self.app(scope, receive, send)


class LossyFrames:
    """Drops every `drop_every`-th message_received frame and sends every `dup_every`-th twice."""

    def __init__(self, app: ASGIApp, drop_every: int, dup_every: int) -> None:
        self.app, self.drop_every, self.dup_every = app, drop_every, dup_every
        self.frames = self.dropped = self.duplicated = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return

        async def lossy_send(message: Message) -> None:
            if message["type"] == "websocket.send" and '"type":"message_received"' in (message.get("text") or ""):
                self.frames += 1
                if self.frames % self.drop_every == 0:
                    self.dropped += 1
                    return
                if self.frames % self.dup_every == 0:
                    self.duplicated += 1
                    await send(message)
            await send(message)

        await self.app(scope, receive, lossy_send)


class Refusals:
    """Answers every `every`-th message send and every `every`-th conversation list of the load generator
    with `status` (provisioning, msgops's httpx client, goes through)."""

    def __init__(self, app: ASGIApp, every: int, status: int) -> None:
        self.app, self.every, self.status = app, every, status
        self.seen = {"POST": 0, "GET": 0}
        self.refused = {"POST": 0, "GET": 0}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        path = scope.get("path", "")
        provisioning = dict(scope.get("headers", [])).get(b"user-agent", b"").startswith(b"python-httpx")
        if scope["type"] == "http" and not provisioning and ((method == "GET" and path == "/conversations")
                                        or (method == "POST" and path.endswith("/messages"))):
            self.seen[method] += 1
            if self.seen[method] % self.every == 0:
                self.refused[method] += 1
                await send({"type": "http.response.start", "status": self.status,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"detail": "refused by the test"}'})
                return
        await self.app(scope, receive, send)


class Arrivals:
    """Records when each reader's GET /conversations?limit=20 and each message send reaches the
    service (monotonic seconds), and the client address (the connection) of each message send."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.times: list[float] = []
        self.send_times: list[float] = []
        self.send_connections: list[tuple[str, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/conversations"
                and scope["query_string"] == b"limit=20"):  # a reader's (provisioning lists without a limit)
            self.times.append(time.monotonic())
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/messages"):
            self.send_times.append(time.monotonic())
            self.send_connections.append(tuple(scope["client"]))
        await self.app(scope, receive, send)


def densest_share(times: list[float], period: float, width: float) -> float:
    """The largest share of arrivals whose phase (time modulo `period`) falls within one window of
    `width` seconds: about width/period when users are spread over the period, 1 in lockstep."""
    phases = sorted(t % period for t in times)
    wrapped = phases + [p + period for p in phases]
    best, j = 0, 0
    for i in range(len(phases)):
        while wrapped[j] < wrapped[i] + width:
            j += 1
        best = max(best, j - i)
    return best / len(phases)


def serve(database_url: str, wrap: Callable[[ASGIApp], ASGIApp], **overrides: Any) -> RunningService:
    settings = Settings(**{"database_url": database_url, "jwt_secret": JWT_SECRET, "log_level": "WARNING",
                           "jobs_enabled": False, **overrides})
    port = free_port()
    config = uvicorn.Config(wrap(create_app(settings)), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", ws="websockets-sansio", ws_per_message_deflate=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "test service did not start"
        time.sleep(0.02)
    return RunningService(f"http://127.0.0.1:{port}", database_url, settings, server, thread)


@pytest.fixture
def wrapped_service(new_database: Callable[..., str]) -> Any:
    started: list[RunningService] = []

    def make(wrap: Callable[[ASGIApp], ASGIApp], **overrides: Any) -> RunningService:
        running = serve(new_database(), wrap, **overrides)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


# Running `msgops load` ---------------------------------------------------------------------------


def run_load(tmp_path: Path, api_url: str, *args: str) -> tuple[int, str, Path]:
    app = typer.Typer()
    app.command()(load)
    out = tmp_path / "load.json"
    result = CliRunner().invoke(app, ["--api-url", api_url, "--json", str(out), "--quiet", *args],
                                env={"MSGOPS_JWT_SECRET": JWT_SECRET, "MSGOPS_DATA_DIR": str(tmp_path / "data"),
                                     "MSGOPS_API_URL": None, "DATABASE_URL": None, "COLUMNS": "200"})
    if isinstance(result.exception, UserError):  # what `msgops` main() does with it
        return result.exception.exit_code, f"{result.output}error: {result.exception}", out
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output, out


def profile_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return str(path)


SMALL = """
name: small
requires: {rate_limits: off}
provision: {users: 8, group_size: 4}
spawn_rate: 50
settle: 0.5s
duration: 4s
delivery_timeout: 2s
users: {listener: 8, reader: 1}
pacing: {reader: 0.5s}
open: {messages: 10}
"""


def leftovers(svc: RunningService) -> int:
    return int(svc.sql("select count(*) from public.profiles where email like 'load-%%@load.invalid'")[0][0])


# The tests -------------------------------------------------------------------------------------


def test_smoke_profile_passes_and_load_checks_read_its_results(make_service: Any, tmp_path: Path) -> None:
    svc = make_service()  # seed rate limits on: smoke is sized to pass under them
    code, output, out = run_load(tmp_path, svc.url, "--profile", "smoke")
    assert code == 0, output
    assert "GO — 7 of 7 load thresholds measured" in output
    results = load_results(out)
    assert results.profile == "smoke" and results.target.api_url == svc.url
    m = results.metrics
    for name in ("http.p50_ms", "http.p95_ms", "http.p99_ms", "http.error_rate", "http.rps", "messages_per_s",
                 "ws.connections", "ws.connect_failures", "ws.connect_error_rate", "delivery.p50_ms",
                 "delivery.p95_ms", "delivery.p99_ms", "delivery.loss_rate", "delivery.duplicates", "memory_mb",
                 "users"):
        assert m.get(name) is not None, f"{name} not measured"
    assert m["ws.connections"] == 60 and m["delivery.loss_rate"] == 0 and m["http.error_rate"] == 0
    assert m["messages.accepted"] == 90  # 15/s over the 6 s window, each accepted once
    assert m["delivery.expected"] == 90 * 4  # groups of 4, one socket per member
    assert all(t.passed for t in results.thresholds) and not results.generator.saturated
    assert set(results.endpoints) >= {SEND, "GET /conversations", "POST /broadcasts", WS_CONNECT}
    assert any(row["messages_per_s"] for row in results.timeseries)
    assert leftovers(svc) == 0  # the run's users are erased afterwards

    probe = probes.get("load.threshold")
    assert probe is not None

    async def check() -> Outcome:
        ctx = Context(Target(api_url=svc.url, load_results=out))
        try:
            return await probe.fn(ctx, metric="http.p95_ms", op="<", value=200, profile="smoke")
        finally:
            await ctx.close()

    outcome = asyncio.run(check())
    assert outcome.status == "pass", outcome.message


def test_an_impossible_threshold_fails_with_exit_1_and_the_observed_value(make_service: Any,
                                                                          tmp_path: Path) -> None:
    svc = make_service(rate_limits={})
    profile = profile_file(tmp_path, SMALL + "thresholds: ['http.p95_ms < 0.001', 'http.error_rate < 0.01']\n")
    code, output, out = run_load(tmp_path, svc.url, "--profile", profile, "--html", str(tmp_path / "locust.html"))
    observed = load_results(out).metric("http.p95_ms")
    assert code == 1, output
    assert "<html" in (tmp_path / "locust.html").read_text()[:2000].lower()  # Locust's own report, as asked
    assert observed is not None and observed > 0.001
    assert f"http.p95_ms = {observed:g}, expected < 0.001" in output
    failed = [t for t in load_results(out).thresholds if not t.passed]
    assert [t.metric for t in failed] == ["http.p95_ms"]


def test_a_slow_service_shows_in_percentiles_and_delivery_latency(wrapped_service: Any, tmp_path: Path) -> None:
    delay = 0.08
    svc = wrapped_service(lambda app: SlowSends(app, delay), rate_limits={})
    profile = profile_file(tmp_path, SMALL + "thresholds: ['http.error_rate < 0.01']\n")
    code, output, out = run_load(tmp_path, svc.url, "--profile", profile)
    assert code == 0, output
    results: LoadResults = load_results(out)
    send = results.endpoints[SEND]
    assert send.requests == 40 and send.failures == 0
    assert send.p50_ms is not None and send.p50_ms >= delay * 1000
    # Every delivery happens after the delayed commit, measured from the sender's intended send time.
    delivery_p50 = results.metric("delivery.p50_ms")
    assert delivery_p50 is not None and delivery_p50 >= delay * 1000
    # Open-model sends: the service time alone shows the delay as well.
    service_p95 = results.metric("open.service_p95_ms")
    assert service_p95 is not None and service_p95 >= delay * 1000
    assert results.metric("delivery.lost") == 0 and results.metric("open.dropped") == 0


def test_refused_requests_are_failures_with_their_status_in_both_models(wrapped_service: Any,
                                                                        tmp_path: Path) -> None:
    refusals: list[Refusals] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        refusals.append(Refusals(app, every=4, status=503))
        return refusals[0]

    svc = wrapped_service(wrap, rate_limits={})
    profile = profile_file(tmp_path, SMALL.replace("users: {listener: 8, reader: 1}", "users: {reader: 2}")
                           + "reader_mix: {conversations: 1, history: 0, search: 0}\n")
    code, output, out = run_load(tmp_path, svc.url, "--profile", profile)
    assert code == 2 and out.exists(), output  # no thresholds: nothing was checked
    results: LoadResults = load_results(out)
    refused = refusals[0].refused
    send = results.endpoints[SEND]  # the open model
    assert send.requests == 40 and refused["POST"] == 10
    assert send.failures == 10 and send.statuses == {"201": 30, "503": 10}
    reads = results.endpoints["GET /conversations"]  # closed-model readers
    # A reader's last GET may still be in flight when the run stops its users (seen, not recorded).
    in_flight = refusals[0].seen["GET"] - reads.requests
    assert 0 <= in_flight <= 2 and refused["GET"] >= 2
    assert refused["GET"] - in_flight <= reads.failures <= refused["GET"]
    assert reads.statuses == {"200": reads.requests - reads.failures, "503": reads.failures}
    http_error_rate = results.metric("http.error_rate")
    assert http_error_rate is not None and http_error_rate > 0


def test_dropped_and_duplicated_deliveries_are_counted_exactly_across_workers(wrapped_service: Any,
                                                                               tmp_path: Path) -> None:
    lossy: list[LossyFrames] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        lossy.append(LossyFrames(app, drop_every=5, dup_every=7))
        return lossy[0]

    svc = wrapped_service(wrap, rate_limits={})
    profile = profile_file(tmp_path, SMALL + "thresholds: ['delivery.loss_rate <= 0']\n")
    code, output, out = run_load(tmp_path, svc.url, "--profile", profile, "--processes", "2")
    results = load_results(out)
    frames = lossy[0]
    assert frames.dropped > 0 and frames.duplicated > 0
    assert results.metric("delivery.lost") == frames.dropped
    assert results.metric("delivery.duplicates") == frames.duplicated
    assert results.metric("delivery.expected") == frames.frames
    assert results.metric("delivery.loss_rate") == pytest.approx(frames.dropped / frames.frames, abs=1e-6)
    assert code == 1 and "delivery.loss_rate" in output
    assert len(results.generator.model_dump()["processes"]) >= 2  # both workers reported


WORKER = "import typer; from msgops.cli_load import load; app = typer.Typer(); app.command()(load); app()"


def test_a_master_with_a_worker_started_elsewhere_gets_the_plan_and_the_results(make_service: Any,
                                                                                 tmp_path: Path) -> None:
    svc = make_service(rate_limits={})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSGOPS_")}  # the worker has no plan file
    worker = subprocess.Popen([sys.executable, "-c", WORKER, "--worker", "--master-host", "127.0.0.1",
                               "--master-port", str(port), "--quiet"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        profile = profile_file(tmp_path, SMALL + "thresholds: ['delivery.loss_rate <= 0']\n")
        code, output, out = run_load(tmp_path, svc.url, "--profile", profile, "--master", "--expect-workers", "1",
                                     "--master-bind-port", str(port))
        worker_output, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert code == 0, output
    assert worker.returncode == 0, worker_output
    results = load_results(out)
    assert results.metric("messages.accepted") == 40 and results.metric("delivery.expected") == 40 * 4
    processes = results.generator.model_dump()["processes"]
    assert any(tag.startswith("worker-") for tag in processes) and any(tag.startswith("master-") for tag in processes)


SPREAD = """
name: spread
requires: {rate_limits: off}
provision: {users: 20, group_size: 2}
spawn_rate: 500
settle: 1s
duration: 5s
delivery_timeout: 1s
drain: 1s
users: {reader: 20, sender: 20}
pacing: {reader: 1s, sender: 1s}
reader_mix: {conversations: 1, history: 0, search: 0, communities: 0}
thresholds: ['http.error_rate < 0.01']
"""


def test_closed_model_users_keep_their_random_phase(wrapped_service: Any, tmp_path: Path) -> None:
    """20 readers and 20 senders spawned at once, each acting every second once the send window
    opens: their requests spread over the second instead of arriving in one burst per second (each
    user's random phase is kept, counted from the window's start), and none falls in settle or drain."""
    arrivals: list[Arrivals] = []
    svc = wrapped_service(lambda app: arrivals.append(Arrivals(app)) or arrivals[0], rate_limits={})
    code, output, out = run_load(tmp_path, svc.url, "--profile", profile_file(tmp_path, SPREAD))
    assert code == 0, output
    endpoints = load_results(out).endpoints
    for name, times in (("GET /conversations", arrivals[0].times),
                        ("POST /conversations/{id}/messages", arrivals[0].send_times)):
        # 20 users x 5 s, each acting once per second from its phase: 100 (one less for a user whose
        # phase put its fifth request past the window's end), none in the 1 s of settle or drain.
        assert 80 <= len(times) <= 100, f"{name}: {len(times)} requests in a 5 s window"
        assert endpoints[name].requests == len(times)
        assert max(times) - min(times) < 5.5
        # After each user's first request (its phase), lockstep would show from the second one on.
        later = [t for t in times if t > min(times) + 1.0]
        share = densest_share(later, period=1.0, width=0.2)
        # Uniform phases put about 0.2 of the arrivals in the densest 0.2 s window; 20 users can, by
        # chance, bunch up to half of them there. Lockstep puts 0.8 or more there (measured before the fix).
        assert share < 0.65, f"{name}: {share:.0%} arrive within 0.2 s of each second: users in lockstep"


def test_open_model_sends_take_turns_on_its_connections(wrapped_service: Any, tmp_path: Path) -> None:
    """A fast service answers each send before the next is due: one shared pool would send them all
    on one connection. With `connections: 12`, they take turns on 12 (as k6 keeps one per VU)."""
    arrivals: list[Arrivals] = []
    svc = wrapped_service(lambda app: arrivals.append(Arrivals(app)) or arrivals[0], rate_limits={})
    profile = """
name: conns
requires: {rate_limits: off}
provision: {users: 24, group_size: 2}
spawn_rate: 100
settle: 0.5s
duration: 3s
delivery_timeout: 1s
users: {}
open: {messages: 20, connections: 12}
thresholds: ['http.error_rate < 0.01']
"""
    code, output, _ = run_load(tmp_path, svc.url, "--profile", profile_file(tmp_path, profile))
    assert code == 0, output
    used = arrivals[0].send_connections
    assert len(used) >= 50, f"only {len(used)} sends"
    assert len(set(used)) == 12, f"{len(set(used))} connections carried the sends"


SEEDED = """
name: seeded
requires: {rate_limits: off}
provision: {via: database, users: 12, group_size: 4}
spawn_rate: 100
settle: 0.5s
duration: 4s
delivery_timeout: 2s
users: {listener: 12}
open: {messages: 10}
thresholds: ['delivery.loss_rate <= 0', 'delivery.p95_ms < 5000']
"""


def test_a_websocket_run_over_two_workers_with_users_from_a_seed(make_service: Any, tmp_path: Path) -> None:
    """Users, conversations and tokens derived on each worker from the plan's seed; deliveries counted
    from the workers' ranges of sequence numbers: the same results as per-message records gave."""
    svc = make_service(rate_limits={})
    code, output, out = run_load(tmp_path, svc.url, "--profile", profile_file(tmp_path, SEEDED), "--processes", "2",
                                 "--database-url", svc.database_url)
    assert code == 0, output
    results = load_results(out)
    accepted = results.metric("messages.accepted")
    assert accepted == 40 and results.metric("delivery.expected") == accepted * 4  # every member's socket
    assert results.metric("delivery.lost") == 0 and results.metric("delivery.duplicates") == 0
    assert results.metric("delivery.out_of_order") is not None
    for pct in ("p50", "p95", "p99"):
        assert (results.metric(f"delivery.{pct}_ms") or 0) > 0
    assert results.metric("ws.connections") == 12 and results.metric("ws.connect_failures") == 0
    assert len(results.generator.model_dump()["processes"]) >= 2
    assert leftovers(svc) == 0
