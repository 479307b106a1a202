"""Reading what to deliver: one set-based read for all the rooms that changed.

Notifications carry ids and seq only; the rows come from the database, read by the hub's own
connection as `service_role`, for the subscribers the hub already authorized when they joined
(as themselves, under RLS). Within a room, seq order is commit order (seq is assigned under the
room's row lock), so `seq > cursor` never skips a message that commits later.

After the rows, one probe asks which subscribers are still members. It runs as a later statement,
so it sees every removal committed before any row the first statement saw: a member removed
before a message was sent never receives it, whichever instance published what first. It is one
indexed lookup per subscriber per batch, not a policy evaluation per event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row

from service.db import Conn


class ReaderDb:
    """The hub's own connection: autocommit, `service_role` for its lifetime, never pooled and never
    used for a user's request. Keeping it out of the pool spares each delivery batch a BEGIN,
    set_config and COMMIT, and keeps deliveries from queueing behind API requests for a connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Conn | None = None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        async with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = await AsyncConnection[DictRow].connect(self.url, autocommit=True,
                                                                    row_factory=dict_row)
                await self._conn.execute("set role service_role")
            try:
                yield self._conn
            except BaseException:
                # A failed or cancelled read may leave the connection mid-protocol: start afresh.
                conn, self._conn = self._conn, None
                await conn.close()
                raise

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None


@dataclass(frozen=True)
class RoomKind:
    name: str            # "conversation" | "community": also the JSON field prefix
    rooms: str           # table holding last_seq
    messages: str        # table of messages
    room_column: str     # the messages' foreign key to the room
    members: str         # membership table
    parent: str          # parent_id expression (communities have no threads)

    @property
    def id_field(self) -> str:
        return f"{self.name}_id"


CONVERSATION = RoomKind("conversation", "public.conversations", "public.messages", "conversation_id",
                        "public.conversation_members", "x.parent_id")
COMMUNITY = RoomKind("community", "public.communities", "public.community_messages", "community_id",
                     "public.community_members", "null::uuid")
KINDS = {k.name: k for k in (CONVERSATION, COMMUNITY)}

_COLUMNS = "x.id, x.sender_id, x.seq, x.content, x.is_deleted, {parent} as parent_id, x.client_msg_id, " \
           "x.created_at, x.edited_at"


@dataclass
class Batch:
    last_seq: dict[uuid.UUID, int] = field(default_factory=dict)     # rooms that still exist
    rows: dict[uuid.UUID, list[dict[str, Any]]] = field(default_factory=dict)  # new messages, by seq
    updated: list[dict[str, Any]] = field(default_factory=list)      # edited/deleted messages
    present: set[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=set)  # (room, user) still members


async def read_batch(conn: Conn, kind: RoomKind, after: dict[uuid.UUID, int], updated: set[uuid.UUID],
                     pairs: list[tuple[uuid.UUID, uuid.UUID]], limit: int) -> Batch:
    """New rows, updated rows and still-members, in one pipelined round trip; the membership probe
    runs last so that it is the latest snapshot."""
    batch = Batch()
    cols = _COLUMNS.format(parent=kind.parent)
    rooms = list(after)
    async with conn.pipeline():
        new_rows = await conn.execute(f"""
            select r.room_id, c.last_seq, {cols}
              from unnest(%s::uuid[], %s::bigint[]) as r(room_id, after)
              join {kind.rooms} c on c.id = r.room_id
              left join lateral (
                select * from {kind.messages} m
                 where m.{kind.room_column} = r.room_id and m.seq > r.after
                 order by m.seq limit %s) x on true
             order by r.room_id, x.seq""", (rooms, [after[r] for r in rooms], limit)) if rooms else None
        changed = await conn.execute(f"""
            select x.{kind.room_column} as room_id, {cols} from {kind.messages} x where x.id = any(%s)""",
            (list(updated),)) if updated else None
        present = await conn.execute(f"""
            select p.room_id, p.user_id from unnest(%s::uuid[], %s::uuid[]) as p(room_id, user_id)
             where exists (select 1 from {kind.members} mm
                            where mm.{kind.room_column} = p.room_id and mm.user_id = p.user_id)""",
            ([p[0] for p in pairs], [p[1] for p in pairs])) if pairs else None
    if new_rows is not None:
        for row in await new_rows.fetchall():
            room = row.pop("room_id")
            batch.last_seq[room] = int(row.pop("last_seq"))
            if row["id"] is not None:
                batch.rows.setdefault(room, []).append(row)
    if changed is not None:
        batch.updated = await changed.fetchall()
    if present is not None:
        batch.present = {(r["room_id"], r["user_id"]) for r in await present.fetchall()}
    return batch


async def co_members(conn: Conn, users: list[uuid.UUID]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(subject, watcher) pairs: the people who share a conversation with each subject."""
    cur = await conn.execute("""
        select distinct a.user_id as subject, b.user_id as watcher
          from public.conversation_members a
          join public.conversation_members b on b.conversation_id = a.conversation_id and b.user_id <> a.user_id
         where a.user_id = any(%s)""", (users,))
    return [(r["subject"], r["watcher"]) for r in await cur.fetchall()]
