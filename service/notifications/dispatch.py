"""Deliver new notifications: a realtime `notification` event to each recipient's open sockets on
this instance, and web push to recipients with no open socket anywhere.

The database trigger (migrations 013 and 014) decides who is notified; this only delivers. It listens
to the realtime bus's `message_created` and `community_message_created` events (every instance hears
every event), reads the notifications of that room up to that seq, and sends to its own sockets. Web
push is claimed per notification in the database (`pushed_at`), so of several instances exactly one pushes each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import orjson

from service.db import fetch_all
from service.routes.notifications import FEED_SQL
from service.state import AppState

log = logging.getLogger("service.notifications")

_BATCH_DELAY_S = 0.02
_MAX_ROOMS = 100_000
# A created event of each kind of room: its room field, and the notifications' column for that room.
_ROOM_OF_EVENT: dict[str, tuple[str, str]] = {
    "message_created": ("conversation_id", "conversation_id"),
    "community_message_created": ("community_id", "community_id"),
}
Room = tuple[str, str]  # (notifications column, room id)


def _frame(row: dict[str, Any]) -> str:
    body = {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in row.items() if k != "user_id"}
    body["created_at"] = row["created_at"].isoformat()
    body.pop("read_at", None)
    return orjson.dumps({"type": "notification", "notification": body}).decode()


class Notifier:
    def __init__(self, state: AppState) -> None:
        self.state = state
        # The bus coalesces message_created events of a room into the highest seq: deliver every
        # notification of the room up to it that this instance has not delivered yet.
        self.pending: dict[Room, int] = {}
        self.delivered: dict[Room, int] = {}
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def on_event(self, event: dict[str, Any]) -> None:
        kind = _ROOM_OF_EVENT.get(str(event.get("kind")))
        if kind is None:
            return
        field, column = kind
        try:
            room, seq = (column, str(uuid.UUID(str(event[field])))), int(event["seq"])
        except (KeyError, ValueError, TypeError):
            return
        self.pending[room] = max(seq, self.pending.get(room, 0))
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            await asyncio.sleep(_BATCH_DELAY_S)
            self.wake.clear()
            batch, self.pending = self.pending, {}
            try:
                await self.deliver(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notification delivery failed")

    async def deliver(self, batch: dict[Room, int]) -> None:
        if not batch:
            return
        if len(self.delivered) > _MAX_ROOMS:
            self.delivered.clear()
        hub, push = self.state.hub, getattr(self.state, "push", None)
        if push is None and (hub is None or not hub.by_user):
            # No socket on this instance and no web push: nothing to deliver, nothing to read. What
            # was stored meanwhile stays in the feed, and a socket that opens later resumes from it.
            for room, seq in batch.items():
                self.delivered[room] = max(seq, self.delivered.get(room, 0))
            return
        parts: list[str] = []
        params: list[Any] = []
        for column in sorted({c for c, _ in batch}):
            rooms = [room for room in batch if room[0] == column]
            parts.append(FEED_SQL.replace("select n.id,", "select n.user_id, n.id,", 1) + f"""
                join unnest(%s::uuid[], %s::bigint[], %s::bigint[]) as b(c, lo, hi)
                  on b.c = n.{column} and n.seq > b.lo and n.seq <= b.hi
               where n.read_at is null and n.created_at > now() - interval '1 minute'""")
            params += [[r for _, r in rooms], [self.delivered.get(r, 0) for r in rooms], [batch[r] for r in rooms]]
        async with self.state.db.privileged() as conn:
            rows = await fetch_all(conn, "select * from (" + " union all ".join(parts) + ") w order by id",
                                   tuple(params))
        for room, seq in batch.items():
            self.delivered[room] = max(seq, self.delivered.get(room, 0))
        offline: list[dict[str, Any]] = []
        for row in rows:
            sent = hub.send_to_user(row["user_id"], _frame(row), "notification") if hub is not None else 0
            if not sent and (hub is None or hub.directory.status(row["user_id"]) == "offline"):
                offline.append(row)
        if offline and push is not None:
            await push.send(offline)


def start(state: AppState) -> None:
    hub = state.hub
    if hub is None:
        return
    notifier = Notifier(state)
    hub.listeners.append(notifier.on_event)
    notifier.task = asyncio.create_task(notifier.run(), name="notifications")
    state.notifier = notifier


async def stop(state: AppState) -> None:
    notifier: Notifier | None = getattr(state, "notifier", None)
    if notifier is None or notifier.task is None:
        return
    notifier.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await notifier.task
    state.notifier = None
