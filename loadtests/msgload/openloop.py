"""The open model: requests arrive at a target rate whatever the service's latency.

Send n is due at `window start + n / rate`. Generator process k of G takes every n with
n % G == k, so together they keep one schedule. Each send runs in its own greenlet (at most
`max_inflight` at once); its latency is measured from the *intended* start, so a slow service
cannot slow the arrivals and hide its queueing (no coordinated omission). A send that starts more
than `late_after` behind schedule is counted late; one that cannot start within `drop_after` is
dropped and counted as a failed request. Send k of a process goes to its user (k * stride) % n
(msgops.load.identities.send_stride): every user sends once per n sends, and consecutive sends go
to different conversations.

Requests take turns on `connections` keep-alive connections (split across the generators), as k6's
VUs each keep their own: one shared pool would reuse the few connections that happen to be free,
and a service with several worker processes shares its load by connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.pool import Pool
from locust.env import Environment

from msgload import actions
from msgload.http import Client
from msgload.runstate import RUN
from msgops.load.identities import send_stride

Action = Callable[[Client, int, int, float], None]
_pools: list[Pool] = []
_inflight: dict[int, tuple[str, float]] = {}  # id(greenlet) -> (endpoint, intended start)
# gevent's loop waits in whole milliseconds, rounded up: a send slept until its intended start woke
# 0.6 ms late at the median (1.1 ms at p95), and that lateness counted as the service's latency.
# Waking one timer step early, the rounding never makes a send late (lateness p95 +0.08 ms, median
# 0.4 ms early: the schedule keeps its rate, shifted by less than a millisecond); what lateness is
# left is real, a generator short of CPU. A send that starts early is timed from its actual start
# (wiring: the latency is never below the exchange's).
TIMER_SLACK_S = 0.001


def _tracked(action: Action, name: str, client: Client, identity: int, n: int, intended: float) -> None:
    me = id(gevent.getcurrent())
    _inflight[me] = (name, intended)
    try:
        action(client, identity, n, intended)
    finally:
        _inflight.pop(me, None)


def abandon_inflight() -> None:
    """At the end of the run: a send still waiting for its answer failed; its wait so far is its latency.
    Killing is deferred by gevent, so one may still complete: RUN.abandoned keeps it from counting twice."""
    pending = list(_inflight.values())
    RUN.abandoned.update(_inflight)
    _inflight.clear()
    for pool in _pools:
        pool.kill(block=False)
    now = time.time()
    for name, intended in pending:
        RUN.recorder.request(name, (now - intended) * 1000, False, "unfinished", now)


def _stream(clients: list[Client], pool: Pool, rate: float, action: Action, identities: range,
            name: str) -> None:
    plan = RUN.require_plan()
    generators = max(1, plan.generators)
    users = len(identities)
    stride = send_stride(users)

    def user(k: int) -> int:  # this stream's k-th send: consecutive sends to different conversations
        return identities[k * stride % users]

    # Tokens are minted on first use: mint those this stream will use before its window opens, so
    # that the schedule never waits for a signature.
    for k in range(min(users, int(rate * plan.send_for_s / generators) + 1)):
        RUN.identity(user(k))
        if k % 100 == 99:
            gevent.sleep(0)
    start, end = RUN.window()
    late_after = float(plan.open.get("late_after", 0.05))
    drop_after = float(plan.open.get("drop_after", 5.0))
    n = RUN.index
    while not RUN.stopping:
        intended = start + n / rate
        if intended >= end:
            return
        delay = intended - time.time() - TIMER_SLACK_S
        if delay > 0:
            gevent.sleep(delay)
        if pool.full():
            pool.wait_available(timeout=max(0.0, intended + drop_after - time.time()))
        lateness = time.time() - intended
        if pool.full() or lateness > drop_after:
            RUN.recorder.scheduled(late=True)
            RUN.recorder.dropped_send(name, time.time())
        else:
            RUN.recorder.scheduled(late=lateness > late_after)
            client = clients[(n // generators) % len(clients)]
            pool.spawn(_tracked, action, name, client, user(n // generators), n, intended)
        n += generators


def start(environment: Environment) -> list[gevent.Greenlet[Any, Any]]:
    """The open-model streams of this generator process (none if the profile has no rates)."""
    plan = RUN.require_plan()
    rates = {"messages": float(plan.open.get("messages", 0)), "broadcasts": float(plan.open.get("broadcasts", 0))}
    if not any(rates.values()):
        return []
    inflight = int(plan.open.get("max_inflight", 200))
    generators = max(1, plan.generators)
    connections = max(1, -(-int(plan.open.get("connections", 100)) // generators))
    # Each session keeps one connection while its requests answer within their turn; it opens
    # another (lazily) only when one is still waiting, so no request queues behind another.
    clients = [Client(plan.api_url, environment.events.request, concurrency=inflight,
                      network_timeout=plan.http_timeout_s, connection_timeout=plan.http_timeout_s)
               for _ in range(connections)]
    greenlets = []
    for rate, action, identities, kind in (
            (rates["messages"], actions.send_message, RUN.senders(), "send"),
            (rates["broadcasts"], actions.send_broadcast, RUN.organizers(), "broadcast")):
        if rate and identities:
            name = RUN.operations()[kind].endpoint
            pool = Pool(inflight)
            _pools.append(pool)
            greenlets.append(gevent.spawn(_stream, clients, pool, rate, action, identities, name))
    return greenlets
