"""The bus carries small event dicts to the hub of every instance, the publishing one included.

`MemoryBus` is for one process. `PostgresBus` is for several processes or machines on one
database: events are sent with NOTIFY on a connection of their own, after the writer's commit
(NOTIFY inside the write transaction serialises commits), batched into as few notifications as fit
in 8000 bytes, at most one round of them every FLUSH_INTERVAL_S; a dedicated LISTEN connection
receives them and reconnects when it is lost. The publishing instance hands its own events to its
hub at once, as MemoryBus does, and skips them when they come back through PostgreSQL: its sockets
do not wait for the NOTIFY round (which, on a loaded database, waits for a backend's turn on a CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import orjson
import psycopg

log = logging.getLogger("service.realtime.bus")

Event = dict[str, Any]
Handler = Callable[[Event], None]  # must not block: the hub only queues work
CHANNEL = "msgops_realtime"
ORIGIN = "origin"  # the publishing instance, in every event it sends through PostgreSQL
MAX_PAYLOAD = 7900  # PostgreSQL's NOTIFY limit is 8000 bytes
FLUSH_INTERVAL_S = 0.01  # at most one NOTIFY round per interval and instance


class Bus(Protocol):
    name: str
    instance_id: str

    async def start(self, handler: Handler, on_reconnect: Callable[[], None] | None = None) -> None: ...

    async def publish(self, event: Event) -> None: ...

    def publish_nowait(self, event: Event) -> None: ...

    async def stop(self) -> None: ...


class MemoryBus:
    """One process: publish hands the event straight to the hub."""

    name = "memory"

    def __init__(self) -> None:
        self.instance_id = uuid.uuid4().hex[:12]
        self._handler: Handler | None = None

    async def start(self, handler: Handler, on_reconnect: Callable[[], None] | None = None) -> None:
        self._handler = handler

    async def publish(self, event: Event) -> None:
        if self._handler is not None:
            self._handler(event)

    def publish_nowait(self, event: Event) -> None:
        """From synchronous code (timers, the hub itself): delivered on the next loop turn."""
        if self._handler is not None:
            asyncio.get_running_loop().call_soon(self._handler, event)

    async def stop(self) -> None:
        self._handler = None


def coalesce(events: list[Event]) -> list[Event]:
    """Several message_created for one room collapse into one with the highest seq: the hub reads
    `seq > last delivered` anyway, so the earlier ones add nothing."""
    out: list[Event] = []
    newest: dict[tuple[str, str], Event] = {}
    for event in events:
        kind = event.get("kind")
        room = event.get("conversation_id") or event.get("community_id")
        if kind in ("message_created", "community_message_created") and isinstance(room, str):
            key = (kind, room)
            seen = newest.get(key)
            if seen is not None:
                seen["seq"] = max(int(seen.get("seq") or 0), int(event.get("seq") or 0))
                continue
            event = dict(event)
            newest[key] = event
        out.append(event)
    return out


def pack(events: list[Event], limit: int = MAX_PAYLOAD) -> list[str]:
    """JSON arrays of events, each at most `limit` bytes; an event too large alone is dropped."""
    payloads: list[str] = []
    current: list[bytes] = []
    size = 2  # the brackets
    for event in events:
        item = orjson.dumps(event)
        if len(item) + 2 > limit:
            log.error("realtime event too large for NOTIFY, dropped", extra={"kind": event.get("kind")})
            continue
        if current and size + len(item) + 1 > limit:
            payloads.append((b"[" + b",".join(current) + b"]").decode())
            current, size = [], 2
        current.append(item)
        size += len(item) + 1
    if current:
        payloads.append((b"[" + b",".join(current) + b"]").decode())
    return payloads


class PostgresBus:
    """Several instances on one database, through LISTEN/NOTIFY."""

    name = "postgres"

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        self.url = url
        self.channel = channel
        self.instance_id = uuid.uuid4().hex[:12]
        self._handler: Handler | None = None
        self._on_reconnect: Callable[[], None] | None = None
        self._pending: list[Event] = []
        self._wake = asyncio.Event()
        self._listening = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._send_conn: psycopg.AsyncConnection[Any] | None = None
        self._closing = False

    async def start(self, handler: Handler, on_reconnect: Callable[[], None] | None = None) -> None:
        self._handler = handler
        self._on_reconnect = on_reconnect
        self._tasks = [asyncio.create_task(self._listen(), name="bus-listen"),
                       asyncio.create_task(self._flush(), name="bus-notify")]
        # Events published before LISTEN is in place would be lost to this instance.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), timeout=10)

    async def publish(self, event: Event) -> None:
        self.publish_nowait(event)

    def publish_nowait(self, event: Event) -> None:
        event[ORIGIN] = self.instance_id
        self._pending.append(event)
        self._wake.set()
        if self._handler is not None:  # this instance's own sockets: on the next loop turn
            asyncio.get_running_loop().call_soon(self._handler, dict(event))  # a copy: the batch is not shared

    async def stop(self) -> None:
        self._closing = True
        self._wake.set()
        # Let the flusher send what is pending, briefly.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained(), timeout=2)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._send_conn is not None:
            with contextlib.suppress(Exception):
                await self._send_conn.close()

    async def _drained(self) -> None:
        while self._pending:
            await asyncio.sleep(0.01)

    # The listening side -----------------------------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.1
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f'listen "{self.channel}"')
                    self._listening.set()
                    if not first and self._on_reconnect is not None:
                        # Notifications sent while we were away are gone: let the hub re-read.
                        self._on_reconnect()
                    first, backoff = False, 0.1
                    async for note in conn.notifies():
                        self._dispatch(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # lost connection, server restart: retry with backoff
                log.warning("realtime LISTEN connection lost; reconnecting",
                            extra={"error": type(exc).__name__, "retry_s": backoff})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _dispatch(self, payload: str) -> None:
        if self._handler is None:
            return
        try:
            events = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("ignored a malformed realtime notification")
            return
        for event in events if isinstance(events, list) else [events]:
            if isinstance(event, dict) and event.get(ORIGIN) != self.instance_id:  # ours were handled at once
                try:
                    self._handler(event)
                except Exception:  # one bad event must not stop the listener
                    log.exception("realtime event handler failed", extra={"kind": event.get("kind")})

    # The notifying side -----------------------------------------------------------------------

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            await self._wake.wait()
            # Under load, one NOTIFY round per FLUSH_INTERVAL_S carries what was published meanwhile
            # (fewer, fuller notifications for PostgreSQL and every listener); when idle, at once.
            wait = last + FLUSH_INTERVAL_S - loop.time()
            if wait > 0 and not self._closing:
                await asyncio.sleep(wait)
            self._wake.clear()
            if not self._pending:
                continue
            last = loop.time()
            batch, self._pending = self._pending, []
            payloads = pack(coalesce(batch))
            try:
                await self._notify(payloads)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Reconnect once; if the database is still away, local sockets still get the events.
                log.warning("realtime NOTIFY failed; retrying", extra={"error": type(exc).__name__})
                self._send_conn = None
                try:
                    await self._notify(payloads)
                except Exception:
                    log.error("realtime NOTIFY failed twice; these events reached this instance's sockets only",
                              extra={"events": len(batch)})
                    self._send_conn = None

    async def _notify(self, payloads: list[str]) -> None:
        if self._send_conn is None or self._send_conn.closed:
            self._send_conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        # One statement, one round trip, however many payloads; the array goes in binary (the text
        # form escapes every quote of the JSON payloads, through a regex).
        await self._send_conn.execute("select pg_notify(%s, p) from unnest(%b::text[]) as p",
                                      (self.channel, payloads))


def workers_from_env() -> int:
    try:
        return int(os.environ.get("MSGOPS_WORKERS", "1"))
    except ValueError:
        return 1


def make_bus(kind: str, database_url: str, database_private: bool = False) -> Bus:
    """`memory`, `postgres`, or `auto`: memory only when the database is private to this one process
    (`msgops serve`'s own embedded server, one worker); PostgreSQL otherwise, because any other
    database may be served by other instances too, and an in-memory bus would silently keep their
    members from receiving what this one stores."""
    kind = kind.lower()
    if kind == "auto":
        kind = "memory" if database_private and workers_from_env() == 1 else "postgres"
    if kind == "memory":
        return MemoryBus()
    if kind == "postgres":
        return PostgresBus(database_url)
    raise ValueError(f"MSGOPS_BUS: unknown bus {kind!r}; use memory, postgres or auto")
