"""What one Locust process knows about the run: the plan, its recorder, its role and the clock.

The plan comes from the file named by MSGOPS_LOAD_PLAN (this machine) or, on a worker elsewhere,
from the master (see wiring). Message keys, sockets and content stamps are made here so that the
sender and every receiver agree on them.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from itertools import count
from pathlib import Path

import gevent
import gevent.event
import gevent.lock

from msgops.load.accounting import message_key
from msgops.load.identities import KEY_ENV, Identity, LoadSigner
from msgops.load.measure import RAW_ENV, Measurements
from msgops.load.operations import Prepared
from msgops.load.plan import PLAN_ENV, Plan

LISTENER_WAIT_S = 30.0  # the longest the send window waits, past its planned start, for sockets to open
MARK = "msgops-load"  # first word of every load message: "msgops-load <key> <epoch stamp> <word>"
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")


class Run:
    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.plan_ready = gevent.event.Event()
        self.role = "local"                # local | master | worker
        self.index = 0                     # this generator among plan.generators
        self.t0: float | None = None       # this process's test start
        self.stopping = False
        self.abandoned: set[int] = set()   # greenlets whose request was already counted as failed
        self.open_sockets = 0              # this process's joined WebSockets
        self.listeners_ready: Callable[[], bool] = lambda: True
        self.tokens: dict[int, str] = {}   # tokens received from the master (a process that cannot sign)
        self.tokens_ready = gevent.event.Event()
        self._signer: LoadSigner | None = None
        self._identities: dict[int, Identity] = {}
        self._operations: dict[str, Prepared] | None = None
        self._window: tuple[float, float] | None = None
        self._window_lock = gevent.lock.Semaphore()
        self.new_process()
        path = os.environ.get(PLAN_ENV)
        if path and Path(path).is_file():
            self.set_plan(Plan.read(Path(path)))

    def new_process(self) -> None:
        """Fresh names for this process: Locust's --processes forks after this module is imported."""
        self.tag = uuid.uuid4().hex[:8]    # names this process's keys and sockets
        self._sockets = count()
        self._slots: dict[str, count[int]] = {}
        self.recorder = Measurements(tag=self.tag, raw=os.environ.get(RAW_ENV) == "1")

    def counted(self) -> bool:
        """False in a request the end of the run has already counted as failed (see openloop)."""
        return id(gevent.getcurrent()) not in self.abandoned

    def set_plan(self, plan: Plan) -> None:
        self.plan = plan
        self._operations = None
        self.plan_ready.set()

    @property
    def can_sign(self) -> bool:
        return bool(os.environ.get(KEY_ENV))

    def prepare_signer(self) -> None:
        """Build the signer and sign once now (that imports the signing code), not in the middle of the
        first requests."""
        if self._signer is None and self.can_sign:
            self._signer = LoadSigner.from_plan(self.require_plan().signing, os.environ[KEY_ENV])
            self._signer.token("00000000-0000-4000-8000-000000000000")

    def _sign(self, sub: str) -> str:
        self.prepare_signer()
        assert self._signer is not None
        return self._signer.token(sub)

    def set_tokens(self, tokens: dict[int, str]) -> None:
        self.tokens.update(tokens)
        self.tokens_ready.set()

    def require_plan(self, timeout: float = 60) -> Plan:
        if not self.plan_ready.wait(timeout) or self.plan is None:
            raise RuntimeError("no run plan: start Locust through `msgops load` (MSGOPS_LOAD_PLAN)")
        return self.plan

    # Time windows --------------------------------------------------------------------------------

    def start_test(self) -> None:
        self.t0 = time.time()
        self.stopping = False
        self._window = None

    def window(self) -> tuple[float, float]:
        """Epoch seconds of this process's send window: it opens at the planned time, or once this
        process's listening sockets are all open if they take longer (connections then do not
        compete with the first sends), and lasts `send_for_s`."""
        if self._window is not None:  # set once per run: every request of every user asks
            return self._window
        with self._window_lock:
            if self._window is None:
                plan = self.require_plan()
                planned = (self.t0 or time.time()) + plan.send_after_s
                gevent.sleep(max(0.0, planned - time.time()))
                while not self.stopping and not self.listeners_ready() and time.time() < planned + LISTENER_WAIT_S:
                    gevent.sleep(0.25)
                start = max(planned, time.time())
                self._window = (start, start + plan.send_for_s)
                self.recorder.meta[f"window:{self.tag}"] = list(self._window)
            return self._window

    def wait_for_window(self) -> bool:
        """Sleep until the send window opens; False once it has closed."""
        start, end = self.window()
        now = time.time()
        if now < start:
            gevent.sleep(start - now)
        return time.time() < end and not self.stopping

    # Names ---------------------------------------------------------------------------------------

    def message_key(self, conversation: int, seq: int) -> str:
        return message_key(self.tag, conversation, seq)

    def next_socket(self) -> str:
        return f"{self.tag}.s{next(self._sockets)}"

    def next_slot(self, kind: str) -> int:
        """0, 1, 2 ... for this process's users of `kind`: spreads them over the users it acts as."""
        return next(self._slots.setdefault(kind, count()))

    def operations(self) -> dict[str, Prepared]:
        """The workload's requests, prepared once from the plan (msgops.load.operations)."""
        if self._operations is None:
            self._operations = {a: Prepared.from_dict(d) for a, d in self.require_plan().operations.items()}
        return self._operations

    # Users -----------------------------------------------------------------------------------------

    def senders(self) -> range:
        """The users in conversations this process acts as (its share: msgops.load.identities)."""
        plan = self.require_plan()
        return plan.layout.senders(self.index, plan.generators)

    def organizers(self) -> range:
        plan = self.require_plan()
        return plan.layout.organizer_share(self.index, plan.generators)

    def identity(self, n: int) -> Identity:
        """User n with its token: minted here, or (without a key) as the master sent it."""
        ident = self._identities.get(n)
        if ident is None:
            layout = self.require_plan().layout
            if self.can_sign:
                token = self._sign(layout.user_id(n))
            else:
                if not self.tokens_ready.wait(60):
                    raise RuntimeError("no tokens from the master: this process has no signing key")
                token = self.tokens[n]
            ident = self._identities[n] = layout.identity(n, token)
        return ident


def content(key: str, stamp: float, n: int) -> str:
    return f"{MARK} {key} {stamp:.6f} {WORDS[n % len(WORDS)]}"


def parse_content(text: str | None) -> tuple[str, float] | None:
    """(key, stamp) of a load message; None for anything else."""
    if not text or not text.startswith(MARK):
        return None
    parts = text.split(" ", 3)
    if len(parts) < 3:
        return None
    try:
        return parts[1], float(parts[2])
    except ValueError:
        return None


RUN = Run()
