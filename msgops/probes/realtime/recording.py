"""A socket that records every event it receives with its arrival time, whatever the protocol.

A probe waits for one event while others arrive, and afterwards inspects everything a socket was sent
(the leak checks need exactly that). Events are frames: dicts whose `type` is the SPEC-MSG-001 name
(`message_received`, `user_typing`, ...), translated by the adapter from the target's own names.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from msgops.probes.context import CannotEvaluate

Frame = dict[str, Any]
Predicate = Callable[[Frame], bool]

OPEN_TIMEOUT = 5.0
REPLY_TIMEOUT = 3.0   # a frame the server should send at once (authenticated, joined, acks)
SETTLE = 0.3          # after the expected frames arrived: how long stray ones get to show up


class RealtimeUnavailable(CannotEvaluate):
    """The realtime endpoint cannot be used at all (missing route, refused handshake, down)."""


class Socket(ABC):
    """One client connection. Adapters implement `_emit` and `_disconnect` and call `_record`/`_ended`."""

    protocol = "?"

    def __init__(self, label: str) -> None:
        self.label = label  # who this socket is in evidence ("member B", "stranger C")
        self.frames: list[Frame] = []
        self.times: list[float] = []
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.closed = False
        self._news = asyncio.Event()

    # --- what adapters implement -----------------------------------------------------------------

    @abstractmethod
    async def _emit(self, frame: Frame) -> bool:
        """Send one client frame; False when the connection is already closed."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """A normal close, as a client signing out sends."""

    def _record(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.times.append(time.perf_counter())
        self._news.set()

    def _ended(self, code: int | None, reason: str) -> None:
        if not self.closed:
            self.closed, self.close_code, self.close_reason = True, code, reason
        self._news.set()

    # --- what probes use -------------------------------------------------------------------------

    async def send(self, **frame: Any) -> bool:
        """False when the server already closed the connection (a refusal some probes expect)."""
        if self.closed:
            return False
        return await self._emit(frame)

    async def wait(self, predicate: Predicate, timeout: float = REPLY_TIMEOUT, after: int = 0) -> Frame | None:
        """The first frame from index `after` on that satisfies `predicate`, or None on timeout/close."""
        deadline = time.perf_counter() + timeout
        while True:
            seen = len(self.frames)
            for frame in self.frames[after:seen]:
                if predicate(frame):
                    return frame
            after = seen
            if self.closed:
                return None
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            self._news.clear()
            if len(self.frames) != seen:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), timeout=left)

    async def wait_closed(self, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while not self.closed and time.perf_counter() < deadline:
            self._news.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), timeout=max(0.0, deadline - time.perf_counter()))
        return self.closed

    def arrival(self, frame: Frame) -> float:
        return self.times[next(i for i, f in enumerate(self.frames) if f is frame)]

    def matching(self, predicate: Predicate, after: int = 0) -> list[Frame]:
        return [f for f in self.frames[after:] if predicate(f)]

    async def join(self, conversation_id: str, since_seq: int | None = None) -> Frame:
        """Join and wait for `joined`; CannotEvaluate (probe error) when a member cannot join."""
        start = len(self.frames)
        frame: dict[str, Any] = {"type": "join_conversation", "conversation_id": conversation_id,
                                 "ref": f"join-{self.label}"}
        if since_seq is not None:
            frame["since_seq"] = since_seq
        await self.send(**frame)
        reply = await self.wait(lambda f: f.get("ref") == frame["ref"] or
                                (f.get("type") == "joined" and f.get("conversation_id") == str(conversation_id)),
                                REPLY_TIMEOUT, after=start)
        if reply is None or reply.get("type") != "joined":
            raise CannotEvaluate(f"{self.label} could not join its own conversation {conversation_id}: "
                                 f"{reply or 'no answer'}")
        return reply

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._disconnect()
