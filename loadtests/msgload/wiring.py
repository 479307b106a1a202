"""Wiring into Locust's events: record, ship deltas to the master, end the run, write the results.

Roles: a *local* runner does everything itself; a *worker* generates load and sends its
measurements to the master once a second (custom message `msgops_delta`), plus a final delta when
it stops, sent before Locust's own `client_stopped` on the same connection, so the master has it by
the time `runner.stop()` returns; the *master* merges, writes `live.json` every second (for the
progress display) and `final.json` once all workers have stopped.

The run's end is ours, not `--run-time`'s: after the plan's phases the master (or local runner)
stops the users, waits for the final deltas, writes the results, then quits Locust.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent
import psutil
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from msgload import openloop
from msgload.runstate import RUN
from msgops.load.measure import WS_CONNECT, Measurements, new_histogram, open_model_latency_ms, percentile_ms
from msgops.load.plan import Plan

log = logging.getLogger("msgops.load")
DELTA, PLAN_REQUEST, PLAN = "msgops_delta", "msgops_plan_request", "msgops_plan"
TOKENS_REQUEST, TOKENS = "msgops_tokens_request", "msgops_tokens"

_aggregate = Measurements()          # master / local: the whole run
_greenlets: list[gevent.Greenlet[Any, Any]] = []
_streams: list[gevent.Greenlet[Any, Any]] = []


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _write_live(path: Path, data: dict[str, Any]) -> None:
    try:
        _write(path, data)
    except OSError as exc:  # a missed progress update is fine; the run goes on (final.json is what counts)
        log.warning("could not write %s: %s", path, exc)


def _out_dir() -> Path:
    return Path(RUN.require_plan().out_dir)


# Every process ----------------------------------------------------------------------------------


def _on_request(request_type: str, name: str, response_time: float, response: Any = None,
                context: dict[str, Any] | None = None, exception: BaseException | None = None,
                **_: Any) -> None:
    if not RUN.counted():
        return
    now = time.time()
    intended = (context or {}).get("msgops_intended")
    if request_type == "WS":
        outcome = 101 if exception is None else type(exception).__name__
        RUN.recorder.request(WS_CONNECT, response_time, exception is None, outcome, now)
        return
    status = int(getattr(response, "status_code", 0) or 0)
    latency = response_time
    if intended is not None:
        latency = open_model_latency_ms(response_time, float(intended), now)
        RUN.recorder.service_time(response_time)
    RUN.recorder.request(f"{request_type} {name}", latency, exception is None, status, now)


def _sample_cpu(into: Measurements | None) -> None:
    """This process's CPU once a second (psutil: percent of one core); the master adds the machine's."""
    me = psutil.Process()
    me.cpu_percent(None)
    psutil.cpu_percent(None)
    while True:
        gevent.sleep(1.0)
        now = time.time()
        target = into if into is not None else RUN.recorder
        try:
            target.cpu_sample(f"{RUN.role}-{RUN.tag}", now, me.cpu_percent(None))
            if into is not None:
                into.mark_second(now, machine_cpu=psutil.cpu_percent(None))
        except (psutil.Error, OSError):  # e.g. out of file descriptors for /proc: skip this sample
            continue


# Master and local ------------------------------------------------------------------------------


def _live(environment: Environment) -> None:
    plan = RUN.require_plan()
    path = _out_dir() / "live.json"
    while True:
        gevent.sleep(1.0)
        now = time.time()
        runner = environment.runner
        if RUN.role == "local":
            _aggregate.merge(RUN.recorder.take_delta(now))
        users = runner.user_count if runner is not None else 0
        _aggregate.mark_second(now, users=users)
        _aggregate.pack_seconds(now - 30)  # late deltas may still add to the last seconds
        if not plan.live:  # no progress display (msgops load --quiet): nobody reads live.json
            continue
        last = _aggregate.seconds.get(int(now) - 1)
        http = [e for n, e in _aggregate.endpoints.items() if n != WS_CONNECT]
        requests = sum(e.requests for e in http)
        failures = sum(e.failures for e in http)
        overall = None
        if http:
            overall = new_histogram()
            for e in http:
                overall.add(e.hist)
        cpu = max((s[-1][1] for s in _aggregate.cpu.values() if s), default=None)
        _write_live(path, {
            "elapsed_s": round(now - (RUN.t0 or now), 1), "run_s": plan.run_s, "users": users,
            "rps": last.requests if last else 0, "requests": requests,
            "error_rate": failures / requests if requests else 0.0,
            "p95_ms": percentile_ms(overall, 95) if overall is not None else None,
            "delivery_p95_ms": percentile_ms(_aggregate.delivery, 95),
            "ws_open": _aggregate.ledger.opened - _aggregate.ledger.closed,
            "sends": _aggregate.ledger.accepted, "generator_cpu": cpu,
        })


def _finish(environment: Environment) -> None:
    """End the run after its phases: stop users (waiting for workers), write final.json, quit."""
    plan = RUN.require_plan()
    gevent.sleep(plan.run_s)
    # Send windows that opened late (sockets still connecting) get their full drain too.
    ends = [w[1] for k, w in _aggregate.meta.items() if k.startswith("window:")]
    if RUN.role == "local":
        ends += [w[1] for k, w in RUN.recorder.meta.items() if k.startswith("window:")]
    if ends:
        gevent.sleep(min(max(0.0, max(ends) + plan.drain_s - time.time()), 120.0))
    runner = environment.runner
    assert runner is not None
    stopped_at = time.time()
    runner.stop()  # a master waits here until every worker has stopped (and sent its final delta)
    _write_final(stopped_at)
    runner.quit()


def _write_final(stopped_at: float) -> None:
    plan = RUN.require_plan()
    if RUN.role == "local":
        _aggregate.merge(RUN.recorder.take_delta(final=True))
    _aggregate.meta.update({"t0": RUN.t0, "stopped_at": stopped_at, "send_after_s": plan.send_after_s,
                            "send_for_s": plan.send_for_s, "drain_s": plan.drain_s,
                            "delivery_timeout_s": plan.delivery_timeout_s, "generators": plan.generators})
    _write(_out_dir() / "final.json", _aggregate.final(stopped_at))


def _on_delta(environment: Environment, msg: Any, **_: Any) -> None:
    _aggregate.merge(msg.data)


def _on_plan_request(environment: Environment, msg: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.send_message(PLAN, RUN.require_plan().to_dict(), client_id=msg.node_id)


def _on_tokens_request(environment: Environment, msg: Any, **_: Any) -> None:
    """A worker without the signing key: the tokens of the users it acts as, and no others."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        plan = RUN.require_plan()
        share = plan.layout.partition(int(msg.data["index"]), plan.generators)
        runner.send_message(TOKENS, {str(n): RUN.identity(n).token for n in share}, client_id=msg.node_id)


# Worker ----------------------------------------------------------------------------------------


def _on_plan(environment: Environment, msg: Any, **_: Any) -> None:
    RUN.set_plan(Plan.from_dict(msg.data))


def _on_tokens(environment: Environment, msg: Any, **_: Any) -> None:
    RUN.set_tokens({int(n): token for n, token in msg.data.items()})


def _report(environment: Environment) -> None:
    while True:
        gevent.sleep(1.0)
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            runner.send_message(DELTA, RUN.recorder.take_delta())


# Events ----------------------------------------------------------------------------------------


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    RUN.new_process()
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        RUN.role = "master"
        runner.register_message(DELTA, _on_delta)
        runner.register_message(PLAN_REQUEST, _on_plan_request)
        runner.register_message(TOKENS_REQUEST, _on_tokens_request)
        _aggregate.ledger.timeout = RUN.require_plan(timeout=0).delivery_timeout_s
        _greenlets.append(gevent.spawn(_sample_cpu, _aggregate))
        return
    environment.events.request.add_listener(_on_request)
    if isinstance(runner, WorkerRunner):
        RUN.role = "worker"
        runner.register_message(PLAN, _on_plan)
        runner.register_message(TOKENS, _on_tokens)
        if RUN.plan is None:  # a worker on another machine: the master has the plan
            runner.send_message(PLAN_REQUEST, {})
        _greenlets.append(gevent.spawn(_sample_cpu, None))
    else:
        RUN.role = "local"
        _aggregate.ledger.timeout = RUN.require_plan(timeout=0).delivery_timeout_s
        _greenlets.append(gevent.spawn(_sample_cpu, _aggregate))


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    RUN.start_test()
    runner = environment.runner

    def listeners_ready() -> bool:
        return (runner is not None and runner.state != "spawning"
                and RUN.open_sockets >= runner.user_classes_count.get("Listener", 0))

    RUN.listeners_ready = listeners_ready
    if isinstance(runner, WorkerRunner):
        RUN.index = max(0, runner.worker_index)
        RUN.require_plan()
        if not RUN.can_sign:
            runner.send_message(TOKENS_REQUEST, {"index": RUN.index})
    if RUN.role in ("local", "master"):
        _greenlets.append(gevent.spawn(_live, environment))
        _greenlets.append(gevent.spawn(_finish, environment))
    if RUN.role == "worker":
        _greenlets.append(gevent.spawn(_report, environment))
    if RUN.role in ("local", "worker"):
        RUN.require_plan()
        RUN.prepare_signer()
        _streams.extend(openloop.start(environment))


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_: Any) -> None:
    RUN.stopping = True
    for greenlet in _streams:
        greenlet.kill(block=False)
    _streams.clear()
    openloop.abandon_inflight()


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.send_message(DELTA, RUN.recorder.take_delta(final=True))  # before Locust's client_stopped
