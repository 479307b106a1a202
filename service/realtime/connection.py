"""One authenticated socket: its bounded outbox, its writer, and how it is closed.

Fan-out only appends to the outbox (never awaits), so one slow client cannot slow anyone else;
a client that falls more than `limit` frames behind is disconnected with 4008. The writer task
exists only while there is something to write, which keeps idle sockets small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from service import metrics
from service.auth import Claims
from service.realtime.protocol import CLOSE_SLOW_CONSUMER

if TYPE_CHECKING:
    from service.realtime.hub import Subscription
    from service.realtime.membership import RoomKey

log = logging.getLogger("service.realtime")

_event_counters: dict[str, Any] = {}


def count_event(kind: str) -> None:
    counter = _event_counters.get(kind)
    if counter is None:
        counter = _event_counters[kind] = metrics.ws_events.labels(kind)
    counter.inc()


class TokenBucket:
    """Inbound frames per second with bursts up to twice the rate."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * 2)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Connection:
    # Slots and a lazily created outbox: at 10,000 idle sockets every few hundred bytes count.
    __slots__ = ("_in_receive", "_limit", "_outbox", "_reader", "_writer", "bucket", "claims", "close_code",
                 "close_reason", "closing", "expiry", "id", "signed_off", "subs", "user_id", "ws")

    def __init__(self, websocket: WebSocket, claims: Claims, outbox_limit: int, frames_per_second: float) -> None:
        self.ws = websocket
        self.claims = claims
        self.user_id: uuid.UUID = claims.user_id
        self.id = uuid.uuid4().hex[:12]
        self.subs: dict[RoomKey, Subscription] = {}
        self.bucket = TokenBucket(frames_per_second)
        self.closing = False
        self.close_code = 1000
        self.close_reason = ""
        self.signed_off = False  # the client closed with 1000: it is leaving, not reconnecting
        self.expiry: asyncio.TimerHandle | None = None
        self._outbox: deque[tuple[str, str]] | None = None
        self._limit = outbox_limit
        self._writer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[Any] | None = None
        self._in_receive = False

    # Sending --------------------------------------------------------------------------------

    def send(self, text: str, kind: str) -> None:
        """Queue one encoded frame; never waits. Overflow disconnects this client only."""
        if self.closing:
            return
        if self._outbox is None:
            self._outbox = deque()
        elif len(self._outbox) >= self._limit:
            log.warning("slow consumer disconnected", extra={"user_id": str(self.user_id), "conn": self.id,
                                                             "queued": len(self._outbox)})
            self.request_close(CLOSE_SLOW_CONSUMER, "slow consumer: too many undelivered events")
            return
        self._outbox.append((text, kind))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())

    @property
    def queued(self) -> int:
        return len(self._outbox) if self._outbox is not None else 0

    async def _drain(self) -> None:
        outbox = self._outbox
        try:
            while outbox and not (self.closing and self.close_code == CLOSE_SLOW_CONSUMER):
                text, kind = outbox.popleft()
                await self.ws.send_text(text)
                count_event(kind)
        except Exception:  # the peer went away; the reader sees the disconnect and cleans up
            outbox.clear()  # type: ignore[union-attr]
            self.request_close(1006, "send failed")
        finally:
            self._writer = None
            if self._outbox is not None and not self._outbox:
                self._outbox = None

    # Receiving ------------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any] | None:
        """The next ASGI message, or None once a close was requested (from anywhere)."""
        if self.closing:
            return None
        self._reader = asyncio.current_task()
        self._in_receive = True
        try:
            return dict(await self.ws.receive())
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.closing and task is not None and task.uncancel() == 0:
                return None  # our own interruption: the socket is being closed
            raise
        finally:
            self._in_receive = False

    # Closing --------------------------------------------------------------------------------

    def request_close(self, code: int, reason: str) -> None:
        """Close from anywhere (token expiry, overflow, shutdown): interrupt the reader if it is
        waiting, never in the middle of handling a frame."""
        if self.closing:
            return
        self.closing = True
        self.close_code, self.close_reason = code, reason
        if self.expiry is not None:
            self.expiry.cancel()
        if code == CLOSE_SLOW_CONSUMER:
            self._outbox = None
            if self._writer is not None:
                self._writer.cancel()
        if self._in_receive and self._reader is not None:
            self._reader.cancel()

    async def finish(self) -> None:
        """Flush briefly, then send the close frame. A peer that does not read cannot hold us."""
        if self._writer is not None and self.close_code != CLOSE_SLOW_CONSUMER:
            with contextlib.suppress(Exception, asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._writer), timeout=1.0)
        if self._writer is not None:
            self._writer.cancel()
        if self.close_code == 1006:
            return
        # service.serving's protocol writes a close past flow control at once; under another server a
        # slow consumer's close waits for it to read, but a peer that never reads cannot hold us.
        wait = 10.0 if self.close_code == CLOSE_SLOW_CONSUMER else 1.0
        with contextlib.suppress(Exception, TimeoutError):
            await asyncio.wait_for(self.ws.close(self.close_code, self.close_reason[:120]), timeout=wait)
