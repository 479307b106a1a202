"""The messaging workload for Locust. Run it through `msgops load`, which provisions users and
conversations, writes the run plan this file reads (MSGOPS_LOAD_PLAN), and evaluates the results.

Users (closed model; how many of each comes from the profile, as fixed counts):
  Sender       sends a message (POST /conversations/{id}/messages with a client_msg_id) every pacing.sender
  Reader       lists conversations, pages history, searches (pacing.reader, mix reader_mix)
  Listener     holds a WebSocket joined to its conversation; a greenlet receives and times deliveries
  Broadcaster  sends a broadcast as an organizer every pacing.broadcaster
  Uploader     uploads a ~10 MB file into its conversation every pacing.uploader
The HTTP users act in the send window only (settle and drain are for sockets and deliveries), each
from its own random phase. The open model (profile `open:`) sends at a target rate from every
generator process, whatever the users do; see msgload/openloop.py.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import gevent
from locust import User, constant, task
from locust.env import Environment
from msgload import actions, wiring  # noqa: F401  (wiring registers the event listeners)
from msgload.http import Client
from msgload.realtime import RealtimeSocket
from msgload.runstate import RUN

_PLAN = RUN.plan  # None on a worker on another machine: the master dispatches users by class name


def _count(name: str) -> int:
    return int(_PLAN.users.get(name, 0)) if _PLAN is not None else 0


def _local_count(name: str) -> int:
    """About how many users of this kind each generator process runs."""
    generators = max(1, _PLAN.generators) if _PLAN is not None else 1
    return max(1, -(-_count(name) // generators))


def _pacing(name: str) -> float:
    return float(_PLAN.pacing.get(name, 1.0)) if _PLAN is not None else 1.0


def paced(period: float) -> Callable[[Any], float]:
    """One task every `period` seconds, on a schedule that starts with the user's first task.

    Locust's constant_pacing starts its clock when the user object is built, before on_start: a
    random phase slept in on_start only shortens the first wait by as much, and every user spawned
    together ends up acting in lockstep. Here the schedule is the first task's start (`due`, set at
    the end of on_start) plus whole periods; a task that overruns its period starts the next at once
    and moves the schedule, without a catch-up burst."""

    def wait(user: Any) -> float:
        now = time.perf_counter()
        user.due = max(now, user.due + period)
        return float(user.due - now)

    return wait


class _Http(User):
    """A user with its own keep-alive connections (msgload.http: reported as FastHttpUser's would be)."""

    abstract = True
    host = _PLAN.api_url if _PLAN is not None else None
    network_timeout = _PLAN.http_timeout_s if _PLAN is not None else 30.0
    connection_timeout = network_timeout
    concurrency = 10  # connections one user may hold, as FastHttpUser's

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.client = Client(self.host or environment.host or "", environment.events.request,
                             concurrency=self.concurrency, network_timeout=self.network_timeout,
                             connection_timeout=self.connection_timeout)

    def on_start(self) -> None:
        self.slot = RUN.next_slot(type(self).__name__)
        # Users act in the send window, what the run measures, each from a random phase of its
        # pacing after the window opens: users who started together (or waited for the window
        # together) would otherwise act in lockstep forever (pacing keeps their phase) and measure
        # their own bursts.
        RUN.wait_for_window()
        gevent.sleep(random.uniform(0, _pacing(type(self).__name__.lower())))
        self.due = time.perf_counter()  # the first task starts now; `paced` counts from here

    def window_closed(self) -> bool:
        """True once the send window is over; the user then stays idle until the run ends."""
        if RUN.wait_for_window():
            return False
        gevent.sleep(3600)
        return True


class Sender(_Http):
    fixed_count = _count("sender")
    wait_time = paced(_pacing("sender"))

    @task
    def send(self) -> None:
        if self.window_closed():
            return
        senders = RUN.senders()
        actions.send_message(self.client, senders[self.slot % len(senders)], self.slot)
        # Next time, the user as many places on as this process has senders: all its users take
        # turns, which keeps each under a per-user rate limit.
        self.slot += _local_count("sender")


class Reader(_Http):
    fixed_count = _count("reader")
    wait_time = paced(_pacing("reader"))

    @task
    def read(self) -> None:
        if self.window_closed():
            return
        senders = RUN.senders()
        actions.read(self.client, senders[self.slot % len(senders)])


class Broadcaster(_Http):
    fixed_count = _count("broadcaster")
    wait_time = paced(_pacing("broadcaster"))

    @task
    def broadcast(self) -> None:
        if self.window_closed():
            return
        organizers = RUN.organizers()
        actions.send_broadcast(self.client, organizers[self.slot % len(organizers)], self.slot)
        self.slot += _local_count("broadcaster")


class Uploader(_Http):
    fixed_count = _count("uploader")
    wait_time = paced(_pacing("uploader"))

    @task
    def upload(self) -> None:
        if self.window_closed():
            return
        senders = RUN.senders()
        actions.upload(self.client, senders[self.slot % len(senders)])


class Listener(User):
    fixed_count = _count("listener")
    wait_time = constant(1)

    def on_start(self) -> None:
        senders = RUN.senders()
        self.socket = RealtimeSocket(self.environment, senders[RUN.next_slot("listener") % len(senders)])
        self.failures = 0
        self._connect()

    def _connect(self) -> None:
        if self.socket.open():
            self.failures = 0
            return
        # Back off like a real client (1, 2, 4 ... 30 s, with jitter) instead of hammering a busy server.
        self.failures += 1
        gevent.sleep(min(30.0, 2.0 ** (self.failures - 1)) * random.uniform(0.5, 1.0))

    @task
    def keep_open(self) -> None:
        """Reopen a socket that failed or was closed (each attempt is a new socket)."""
        if not self.socket.alive and not RUN.stopping:
            self._connect()

    def on_stop(self) -> None:
        self.socket.close()


class Idle(User):
    """Present only when a profile has no users at all (pure open model): Locust needs one class."""

    fixed_count = 1
    wait_time = constant(3600)

    @task
    def idle(self) -> None:
        pass


# Classes the profile does not use are left out of the run.
def _select_classes() -> None:
    if _PLAN is None:
        return
    for cls in (Sender, Reader, Broadcaster, Listener, Uploader):
        cls.abstract = _count(cls.__name__.lower()) == 0
    Idle.abstract = sum(_count(c) for c in ("sender", "reader", "listener", "broadcaster", "uploader")) > 0


_select_classes()
