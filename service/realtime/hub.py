"""The hub: which sockets watch which rooms, and turning bus events into frames.

Membership is checked once, when a socket joins (by the session, as the user, under RLS), and
cached here as a `Subscription` with a cursor (the last seq that socket has been given). Bus
events only mark rooms dirty; one reader task reads the new rows of every dirty room in one query
and hands each socket exactly the rows after its cursor, in seq order. That single reader is what
makes delivery gap-free and duplicate-free: resume (`since_seq`) is just a subscription whose
cursor starts in the past.

Typing and presence never touch the database except to find who may see a presence change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service import metrics
from service.realtime import protocol as p
from service.realtime.bus import Bus, Event
from service.realtime.config import RealtimeConfig
from service.realtime.connection import Connection
from service.realtime.delivery import (
    COMMUNITY,
    CONVERSATION,
    KINDS,
    ReaderDb,
    RoomKind,
    co_members,
    read_batch,
)
from service.realtime.membership import RoomKey, member_of
from service.realtime.presence import Directory, Local, Status
from service.realtime.typing_state import Typists, Watchers
from service.state import AppState

log = logging.getLogger("service.realtime")

_PAGE = 500  # rows per room per read; a longer backlog takes several reads


@dataclass(eq=False)
class Room:
    kind: RoomKind
    id: uuid.UUID
    subs: dict[Connection, Subscription] = field(default_factory=dict)
    head: int = 0                  # newest seq this instance knows of
    updates: set[uuid.UUID] = field(default_factory=set)  # edited/deleted message ids to send
    force: bool = False            # read even if head looks delivered (missed notifications)

    @property
    def key(self) -> RoomKey:
        return (self.kind.name, self.id)

    @property
    def ids(self) -> dict[str, uuid.UUID]:
        return {self.kind.id_field: self.id}


@dataclass(eq=False, slots=True)
class Subscription:
    conn: Connection
    room: Room
    cursor: int          # the last seq this socket has been given (or was current when it joined)
    held: bool = False   # a membership change is being re-checked: deliver nothing meanwhile


class Hub:
    def __init__(self, state: AppState, bus: Bus, config: RealtimeConfig) -> None:
        self.state = state
        self.bus = bus
        self.config = config
        self.instance = bus.instance_id
        self.conns: set[Connection] = set()
        self.by_user: dict[uuid.UUID, set[Connection]] = {}
        self.rooms: dict[RoomKey, Room] = {}
        self.typists = Typists(config.typing_ttl)
        self.watchers = Watchers(config.typing_ttl)
        self.local = Local(config.away_after, config.offline_grace)
        self.directory = Directory(config.instance_ttl)
        self.reader_db = ReaderDb(state.settings.database_url)
        self.stopping = False
        self._dirty: set[RoomKey] = set()
        self._reading = False
        self._wake = asyncio.Event()
        self._presence_changed: dict[uuid.UUID, Status] = {}
        self._presence_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._sessions: set[asyncio.Task[Any]] = set()
        # Other parts of the service that want every bus event too (e.g. notifications); never block.
        self.listeners: list[Callable[[Event], None]] = []

    # Lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.bus.start(self.on_event, self.on_bus_reconnect)
        self._tasks = [asyncio.create_task(self._reader(), name="realtime-reader"),
                       asyncio.create_task(self._presence_sender(), name="realtime-presence"),
                       asyncio.create_task(self._sweeper(), name="realtime-sweeper")]
        self._emit({"kind": "rt.sync"})  # ask the other instances who is online

    async def drain(self, timeout: float = 5.0) -> None:
        """Refuse new sockets, close every open one with 1001 after flushing what it was already
        sent, and wait for their sessions to end."""
        self.stopping = True
        # Deliver what has been committed and announced before closing: less to resume.
        deadline = time.monotonic() + min(1.0, timeout)
        while (self._dirty or self._reading) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.conns):
            conn.request_close(p.CLOSE_GOING_AWAY, "server shutting down")
        pending = [t for t in self._sessions if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def stop(self, timeout: float = 5.0) -> None:
        """Drain, tell the other instances this one's users are gone, stop the tasks and the bus."""
        await self.drain(timeout)
        self._emit({"kind": "rt.down"})
        await asyncio.sleep(0)
        for task in [*self._tasks, *self._background]:
            task.cancel()
        for task in [*self._tasks, *self._background]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.bus.stop()
        await self.reader_db.close()

    def _emit(self, event: Event) -> None:
        event["instance"] = self.instance
        self.bus.publish_nowait(event)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # Sockets ----------------------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        self.conns.add(conn)
        self.by_user.setdefault(conn.user_id, set()).add(conn)
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
            task.add_done_callback(self._sessions.discard)
        metrics.ws_connections.inc()
        if self.local.connect(conn.user_id, time.monotonic()) is not None:
            self._emit({"kind": "rt.presence", "user_id": str(conn.user_id), "status": "online"})

    def unregister(self, conn: Connection) -> None:
        if conn not in self.conns:
            return
        for key in list(conn.subs):
            self.unsubscribe(conn, key)
        self.conns.discard(conn)
        mine = self.by_user.get(conn.user_id)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del self.by_user[conn.user_id]
        metrics.ws_connections.dec()
        if self.local.disconnect(conn.user_id, time.monotonic(), leaving=conn.signed_off) is not None:
            self._emit({"kind": "rt.presence", "user_id": str(conn.user_id), "status": "offline"})

    def heartbeat(self, conn: Connection) -> None:
        if self.local.beat(conn.user_id, time.monotonic()) is not None:
            self._emit({"kind": "rt.presence", "user_id": str(conn.user_id), "status": "online"})

    # Subscriptions ----------------------------------------------------------------------------

    def subscribe(self, conn: Connection, kind: RoomKind, room_id: uuid.UUID, cursor: int, last_seq: int) -> None:
        key = (kind.name, room_id)
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = Room(kind, room_id)
        sub = Subscription(conn, room, cursor)
        room.subs[conn] = sub
        conn.subs[key] = sub
        room.head = max(room.head, last_seq)
        if cursor < room.head:
            self._mark(room)

    def unsubscribe(self, conn: Connection, key: RoomKey, reason: str | None = None) -> bool:
        """Drop a subscription; with a reason, tell the socket (`left`)."""
        sub = conn.subs.pop(key, None)
        if sub is None:
            return False
        room = sub.room
        room.subs.pop(conn, None)
        if not room.subs:
            self.rooms.pop(key, None)
        if not any(key in c.subs for c in self.by_user.get(conn.user_id, ())):
            self._typing_stop(key, conn.user_id)
        if reason is not None:
            conn.send(p.Left(reason=reason, **room.ids).encode(), "left")  # type: ignore[arg-type]
        return True

    def _mark(self, room: Room) -> None:
        self._dirty.add(room.key)
        self._wake.set()

    def on_bus_reconnect(self) -> None:
        """Notifications may have been missed: re-read every room, and re-learn presence."""
        for room in self.rooms.values():
            room.force = True
            self._mark(room)
        self._emit({"kind": "rt.sync"})

    # Typing -----------------------------------------------------------------------------------

    def typing(self, conn: Connection, key: RoomKey, on: bool) -> None:
        tkey = (key, conn.user_id)
        if on and self.typists.start(tkey, time.monotonic()):
            self._emit_typing(key, conn.user_id, True)
        elif not on and self.typists.stop(tkey):
            self._emit_typing(key, conn.user_id, False)

    def _typing_stop(self, key: RoomKey, user: uuid.UUID) -> None:
        if self.typists.stop((key, user)):
            self._emit_typing(key, user, False)

    def _emit_typing(self, key: RoomKey, user: uuid.UUID, on: bool) -> None:
        self._emit({"kind": "rt.typing", "room_kind": key[0], "room_id": str(key[1]), "user_id": str(user),
                    "typing": on, "ttl": self.config.typing_ttl})

    def _fan_typing(self, key: RoomKey, user: uuid.UUID, on: bool, ttl: float | None = None) -> None:
        room = self.rooms.get(key)
        if room is None:
            return
        text = p.UserTyping(user_id=user, typing=on, expires_in=ttl if on else None,
                            **room.ids).encode()  # type: ignore[arg-type]
        for conn, sub in room.subs.items():
            if conn.user_id != user and not sub.held:
                conn.send(text, "user_typing")

    # Bus events -------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Called by the bus for every event, from every instance. Never blocks."""
        kind = event.get("kind")
        try:
            handler = self._HANDLERS.get(str(kind))
            if handler is not None:
                handler(self, event)
            for listener in self.listeners:
                listener(event)
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("ignored a malformed realtime event", extra={"kind": kind, "error": str(exc)})

    def _room_of(self, kind: RoomKind, event: Event) -> Room | None:
        return self.rooms.get((kind.name, uuid.UUID(str(event[kind.id_field]))))

    def _on_created(self, event: Event, kind: RoomKind) -> None:
        room = self._room_of(kind, event)
        if room is not None:
            room.head = max(room.head, int(event.get("seq") or 0))
            self._mark(room)

    def _on_updated(self, event: Event, kind: RoomKind) -> None:
        room = self._room_of(kind, event)
        if room is not None:
            room.updates.add(uuid.UUID(str(event["message_id"])))
            self._mark(room)

    def _on_read(self, event: Event) -> None:
        """Receipts go to the room's watchers and to every socket of the reader (their other
        devices update unread counts even without having joined the room)."""
        conversation_id, reader = uuid.UUID(str(event["conversation_id"])), uuid.UUID(str(event["user_id"]))
        room = self.rooms.get((CONVERSATION.name, conversation_id))
        targets = {c for c, sub in room.subs.items() if not sub.held} if room is not None else set()
        targets |= self.by_user.get(reader, set())
        if not targets:
            return
        text = p.MessageRead(conversation_id=conversation_id, user_id=reader, seq=int(event["seq"])).encode()
        for conn in targets:
            conn.send(text, "message_read")

    def _on_membership(self, event: Event, kind: RoomKind) -> None:
        room_id, user = uuid.UUID(str(event[kind.id_field])), uuid.UUID(str(event["user_id"]))
        for conn in self.by_user.get(user, ()):
            sub = conn.subs.get((kind.name, room_id))
            if sub is not None:
                sub.held = True  # nothing reaches this socket until the re-check says it may
                self._spawn(self.recheck(conn, [sub.room.key]))

    async def recheck(self, conn: Connection, keys: list[RoomKey]) -> None:
        """Re-check membership as the user (RLS); drop what they may no longer see."""
        try:
            allowed = await member_of(self.state, conn.claims, keys)
        except Exception:
            log.exception("membership re-check failed; dropping the subscriptions to be safe")
            allowed = set()
        for key in keys:
            sub = conn.subs.get(key)
            if sub is None:
                continue
            if key in allowed:
                sub.held = False
                sub.room.force = True
                self._mark(sub.room)
            else:
                self.unsubscribe(conn, key, reason="removed")

    def _on_typing(self, event: Event) -> None:
        key = (str(event["room_kind"]), uuid.UUID(str(event["room_id"])))
        if key not in self.rooms:
            return
        user, tkey = uuid.UUID(str(event["user_id"])), (key, uuid.UUID(str(event["user_id"])))
        if event.get("typing"):
            ttl = float(event.get("ttl") or self.config.typing_ttl)
            if self.watchers.start(tkey, time.monotonic(), ttl):
                self._fan_typing(key, user, True, ttl)
        elif self.watchers.stop(tkey):
            self._fan_typing(key, user, False)

    def _on_presence(self, event: Event) -> None:
        change = self.directory.announce(str(event["instance"]), uuid.UUID(str(event["user_id"])),
                                         str(event["status"]), time.monotonic())
        if change is not None:
            self._presence_change(uuid.UUID(str(event["user_id"])), change)

    def _presence_change(self, user: uuid.UUID, status: Status) -> None:
        self._presence_changed[user] = status
        self._presence_wake.set()

    def _on_alive(self, event: Event) -> None:
        self.directory.alive(str(event["instance"]), time.monotonic())

    def _on_down(self, event: Event) -> None:
        if event["instance"] != self.instance:
            for user, status in self.directory.drop_instance(str(event["instance"])):
                self._presence_change(user, status)

    def _on_sync(self, event: Event) -> None:
        """Another instance started (or lost its bus): tell it who is here, in payload-sized chunks."""
        users = list(self.local.snapshot().items())
        for i in range(0, len(users), 100):
            self._emit({"kind": "rt.snapshot", "users": dict(users[i:i + 100])})

    def _on_snapshot(self, event: Event) -> None:
        now = time.monotonic()
        for user, status in dict(event["users"]).items():
            change = self.directory.announce(str(event["instance"]), uuid.UUID(user), str(status), now)
            if change is not None:
                self._presence_change(uuid.UUID(user), change)

    _HANDLERS: dict[str, Any] = {
        "message_created": lambda self, e: self._on_created(e, CONVERSATION),
        "community_message_created": lambda self, e: self._on_created(e, COMMUNITY),
        "message_updated": lambda self, e: self._on_updated(e, CONVERSATION),
        "community_message_updated": lambda self, e: self._on_updated(e, COMMUNITY),
        "message_read": lambda self, e: self._on_read(e),
        "membership_changed": lambda self, e: self._on_membership(e, CONVERSATION),
        "community_membership_changed": lambda self, e: self._on_membership(e, COMMUNITY),
        "rt.typing": lambda self, e: self._on_typing(e),
        "rt.presence": lambda self, e: self._on_presence(e),
        "rt.alive": lambda self, e: self._on_alive(e),
        "rt.down": lambda self, e: self._on_down(e),
        "rt.sync": lambda self, e: self._on_sync(e),
        "rt.snapshot": lambda self, e: self._on_snapshot(e),
    }

    # The reader: rows of dirty rooms -> frames ------------------------------------------------

    async def _reader(self) -> None:
        while True:
            self._reading = False
            await self._wake.wait()
            self._reading = True
            if self.config.coalesce_s > 0:
                await asyncio.sleep(self.config.coalesce_s)  # let a burst of notifications collect
            self._wake.clear()
            keys, self._dirty = self._dirty, set()
            by_kind: dict[str, list[Room]] = {}
            for key in keys:
                room = self.rooms.get(key)
                if room is not None and room.subs:
                    by_kind.setdefault(room.kind.name, []).append(room)
            for kind_name, rooms in by_kind.items():
                for i in range(0, len(rooms), 200):
                    chunk = rooms[i:i + 200]
                    try:
                        await self._deliver(KINDS[kind_name], chunk)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("realtime delivery read failed; retrying")
                        for room in chunk:
                            room.force = True
                            self._mark(room)
                        await asyncio.sleep(0.5)

    async def _deliver(self, kind: RoomKind, rooms: list[Room]) -> None:
        after: dict[uuid.UUID, int] = {}
        updates: set[uuid.UUID] = set()
        pairs: set[tuple[uuid.UUID, uuid.UUID]] = set()
        planned: dict[uuid.UUID, tuple[Room, list[Subscription]]] = {}
        for room in rooms:
            active = [s for s in room.subs.values() if not s.held]
            if not active:
                continue
            low = min(s.cursor for s in active)
            if room.force or low < room.head:
                after[room.id] = low
            room.force = False
            updates |= room.updates
            room.updates = set()
            pairs.update((room.id, s.conn.user_id) for s in active)
            planned[room.id] = (room, active)
        if not after and not updates:
            return
        async with self.reader_db.connection() as db:
            batch = await read_batch(db, kind, after, updates, sorted(pairs), _PAGE)
        verified: dict[uuid.UUID, list[Subscription]] = {}
        for room_id, (room, active) in planned.items():
            ok: list[Subscription] = []
            for sub in active:
                if sub.conn.subs.get(room.key) is not sub or sub.held:
                    continue  # left, or a re-check started, while we were reading
                if (room_id, sub.conn.user_id) not in batch.present:
                    self.unsubscribe(sub.conn, room.key, reason="removed")
                    continue
                ok.append(sub)
            verified[room_id] = ok
            rows = batch.rows.get(room_id, [])
            for row in rows:
                self._send_row(room, row, ok, p.MessageReceived, "message_received")
            if room_id in batch.last_seq:
                last = batch.last_seq[room_id]
                room.head = max(room.head, last)
                if len(rows) >= _PAGE:
                    self._mark(room)  # more backlog: next round
                else:
                    for sub in ok:
                        sub.cursor = max(sub.cursor, last)
            if any(s.cursor < room.head and not s.held for s in room.subs.values()):
                self._mark(room)  # someone joined during the read
        for row in batch.updated:
            room_id = row.pop("room_id")
            updated_room = self.rooms.get((kind.name, room_id))
            if updated_room is None:
                continue
            room = updated_room
            subs = [s for s in verified.get(room_id, []) if s.cursor >= row["seq"]]
            if row["is_deleted"]:
                text = p.MessageDeleted(seq=row["seq"], message_id=row["id"], **room.ids).encode()  # type: ignore[arg-type]
                for sub in subs:
                    sub.conn.send(text, "message_deleted")
            else:
                self._send_row(room, row, subs, p.MessageUpdated, "message_updated", advance=False)

    def _send_row(self, room: Room, row: dict[str, Any], subs: list[Subscription],
                  frame: type[p.MessageReceived] | type[p.MessageUpdated], kind: str, advance: bool = True) -> None:
        seq = int(row["seq"])
        plain: str | None = None
        own: str | None = None
        for sub in subs:
            if advance and seq <= sub.cursor:
                continue
            if sub.conn.user_id == row["sender_id"] and row["client_msg_id"]:
                if own is None:
                    own = frame(seq=seq, message=p.MessageBody(**row), **room.ids).encode()  # type: ignore[arg-type]
                sub.conn.send(own, kind)
            else:
                if plain is None:
                    body = p.MessageBody(**{**row, "client_msg_id": None})
                    plain = frame(seq=seq, message=body, **room.ids).encode()  # type: ignore[arg-type]
                sub.conn.send(plain, kind)
            if advance:
                sub.cursor = seq

    # Presence -----------------------------------------------------------------------------------

    async def _presence_sender(self) -> None:
        """Batch presence changes and send each to the local users who share a conversation."""
        while True:
            await self._presence_wake.wait()
            await asyncio.sleep(0.05)
            self._presence_wake.clear()
            changed, self._presence_changed = self._presence_changed, {}
            if not changed or not self.by_user:
                continue
            try:
                async with self.reader_db.connection() as db:
                    pairs = await co_members(db, list(changed))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("presence fan-out read failed")
                continue
            frames: dict[uuid.UUID, str] = {}
            for subject, watcher in pairs:
                conns = self.by_user.get(watcher)
                if not conns:
                    continue
                text = frames.get(subject)
                if text is None:
                    status = changed[subject]
                    frame: p.UserOnline | p.UserOffline = (
                        p.UserOffline(user_id=subject) if status == "offline"
                        else p.UserOnline(user_id=subject, status=status))  # type: ignore[arg-type]
                    text = frames[subject] = frame.encode()
                for conn in conns:
                    conn.send(text, "user_offline" if changed[subject] == "offline" else "user_online")

    def send_to_user(self, user: uuid.UUID, text: str, kind: str) -> int:
        """Send one encoded frame to every socket of `user` on this instance; how many there were."""
        conns = self.by_user.get(user, ())
        for conn in conns:
            conn.send(text, kind)
        return len(conns)

    def online(self, users: list[uuid.UUID]) -> dict[str, str]:
        """The merged status of `users` who are online or away."""
        out: dict[str, str] = {}
        for user in users:
            status = self.directory.status(user)
            if status != "offline":
                out[str(user)] = status
        return out

    # Timers -------------------------------------------------------------------------------------

    async def _sweeper(self) -> None:
        c = self.config
        tick = min(max(min(c.typing_ttl, c.away_after, c.offline_grace) / 10, 0.05), 1.0)
        alive_every = c.instance_ttl / 3
        last_alive = 0.0
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            try:
                for key, user in self.typists.expired(now):
                    self._emit_typing(key, user, False)
                for key, user in self.watchers.expired(now):
                    self._fan_typing(key, user, False)
                for user, status in self.local.tick(now):
                    self._emit({"kind": "rt.presence", "user_id": str(user), "status": status})
                for user, status in self.directory.expire(now, keep=self.instance):
                    self._presence_change(user, status)
                if now - last_alive >= alive_every:
                    last_alive = now
                    self._emit({"kind": "rt.alive"})
            except Exception:  # a timer must keep ticking
                log.exception("realtime sweeper failed")
