"""Sending messages (to conversations and communities: one path) and reading conversation messages,
shared by the REST routes, the send fast path and the WebSocket side.

Every function runs as the caller (its role and JWT claims in the same transaction), so RLS decides
what is visible and writable; "0 rows visible" becomes 404. Errors are raised as fastapi.HTTPException with the REST
statuses, and realtime events are published only after the transaction has committed.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from typing import Any, Literal

import psycopg
from fastapi import HTTPException

from service import events, metrics
from service.auth import Claims
from service.db import Conn, fetch_all, fetch_one
from service.sanitize import MAX_MESSAGE_CHARS, EmptyAfterSanitizing, clean_text
from service.schemas.messages import (
    MAX_CLIENT_MSG_ID_CHARS,
    MessageOut,
    MessagePage,
    ReadOut,
    no_control_chars,
)
from service.state import AppState

RoomKind = Literal["conversation", "community"]
SEND_LIMITS = ("send_message", "send_message_hourly")
MAX_PAGE = 200
_NO_UPPER = 2**63 - 1

# The message columns every endpoint answers with. Reactions and replies are counted per message
# through the primary key of message_reactions and idx_messages_parent.
MESSAGE_COLUMNS = """
  m.id, m.conversation_id, m.sender_id, m.seq, m.client_msg_id, m.parent_id, m.content, m.is_deleted,
  m.edited_at, m.created_at,
  coalesce((select jsonb_object_agg(r.emoji, r.n)
              from (select x.emoji, count(*) as n from public.message_reactions x
                     where x.message_id = m.id group by x.emoji) r), '{}'::jsonb) as reactions,
  (select count(*) from public.messages c where c.parent_id = m.id) as reply_count"""

# The caller's role and claims, then: kind, room, body, client_msg_id, parent; the rate limits are
# written into the statement (see _send_statement).
_SEND = "select * from public.send_room_message_as(%s, %s, %s, %s, %s, %s, %s, {actions}, {hits}, {windows})"
# Keyset pages over the unique (conversation_id, seq) index: bounds are exclusive.
_PAGE_ASC = (f"select {MESSAGE_COLUMNS} from public.messages m "
             "where m.conversation_id = %s and m.seq > %s and m.seq < %s order by m.seq limit %s")
_PAGE_DESC = (f"select {MESSAGE_COLUMNS} from public.messages m "
              "where m.conversation_id = %s and m.seq > %s and m.seq < %s order by m.seq desc limit %s")
_IS_MEMBER = "select public.is_conversation_member(%s) as ok"
_MARK_READ = """
  update public.conversation_members cm
     set last_read_seq = greatest(cm.last_read_seq, least(%s, c.last_seq))
    from public.conversations c
   where c.id = cm.conversation_id and cm.conversation_id = %s and cm.user_id = (select auth.uid())
  returning cm.conversation_id, cm.last_read_seq,
            greatest(c.last_seq - cm.last_read_seq, 0) as unread_count"""


def not_found(what: str = "conversation") -> HTTPException:
    return HTTPException(404, detail=f"{what} not found")


def unprocessable(field: str, message: str, where: str = "body") -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, for checks that need the cleaned value."""
    return HTTPException(422, detail=[{"type": "value_error", "loc": [where, field], "msg": message}])


def clean_content(content: str) -> str:
    """Remove markup; the result must be non-empty and within the limit (escaping can lengthen it)."""
    if len(content) > MAX_MESSAGE_CHARS:  # the REST schema checks this too; the WebSocket side may not
        raise unprocessable("content", f"must be at most {MAX_MESSAGE_CHARS} characters")
    try:
        cleaned = clean_text(content)
    except EmptyAfterSanitizing as exc:
        raise unprocessable("content", str(exc)) from None
    if len(cleaned) > MAX_MESSAGE_CHARS:
        raise unprocessable("content",
                            f"must be at most {MAX_MESSAGE_CHARS} characters after removing markup")
    return cleaned


def message_out(row: dict[str, Any]) -> MessageOut:
    return MessageOut.model_validate(row)


def _check_client_msg_id(value: str | None) -> None:
    # The REST schema validates this too; the WebSocket side passes raw values.
    if value is None:
        return
    if not 1 <= len(value) <= MAX_CLIENT_MSG_ID_CHARS:
        raise unprocessable("client_msg_id", f"must be 1..{MAX_CLIENT_MSG_ID_CHARS} characters")
    try:
        no_control_chars(value)
    except ValueError as exc:
        raise unprocessable("client_msg_id", str(exc)) from None


# Foreign keys a send can hit when the sender's account was erased while it ran.
_SENDER_KEYS = frozenset({"messages_sender_id_fkey", "community_messages_sender_id_fkey"})


def _send_error(exc: psycopg.Error, kind: RoomKind) -> HTTPException | None:
    state = exc.sqlstate
    primary = exc.diag.message_primary if exc.diag else None
    if state == "P0002":
        return not_found(kind)
    if state == "42501":
        # A community the caller sees but has not joined; anything else refused is invisible.
        return HTTPException(403, detail=primary or "not allowed") if kind == "community" else not_found(kind)
    if state == "P0429":
        metrics.rate_limited.labels("send_message").inc()
        retry = (exc.diag.message_detail or "60") if exc.diag else "60"
        return HTTPException(429, detail=primary or "rate limited", headers={"Retry-After": retry})
    if state == "23503":
        constraint = exc.diag.constraint_name if exc.diag else None
        if constraint is None:  # raised by the send function itself
            return unprocessable("parent_id", "the parent message is not in this conversation")
        if constraint in _SENDER_KEYS:
            return HTTPException(409, detail="the sender's account was erased")
        return not_found(kind)
    if state == "23505":
        return HTTPException(409, detail=f"client_msg_id was already used for another message{_IN[kind]}")
    if state == "22023":
        return unprocessable("parent_id", primary or "invalid value")
    return None


_IN: dict[str, str] = {"conversation": "", "community": " in another community"}
_CREATED_EVENT: dict[str, str] = {"conversation": "message_created", "community": "community_message_created"}


def _send_sql(state: AppState) -> str:
    limits = state.settings.rate_limits
    return _send_statement(tuple((a, limits[a].max_hits, limits[a].window_seconds) for a in SEND_LIMITS
                                 if a in limits))


@functools.cache
def _send_statement(limits: tuple[tuple[str, int, int], ...]) -> str:
    """The send statement with this process's send limits as array literals: the same text on every
    send (one prepared statement), and no arrays to encode per send. The action names are SEND_LIMITS'
    own, the numbers integers, so the literals need no quoting."""
    def array(values: Iterable[object], cast: str) -> str:
        return "'{" + ",".join(str(v) for v in values) + "}'::" + cast

    return _SEND.format(actions=array((a for a, _, _ in limits), "text[]"),
                        hits=array((int(h) for _, h, _ in limits), "int[]"),
                        windows=array((int(w) for _, _, w in limits), "int[]"))


async def send_to_room(state: AppState, user: Claims, kind: RoomKind, room: uuid.UUID, content: str,
                       client_msg_id: str | None = None, parent_id: uuid.UUID | None = None, *,
                       cleaned: bool = False) -> tuple[dict[str, Any], bool]:
    """Store a message in a conversation or a community: one statement, one round trip, its own
    transaction as the caller (RLS decides). Returns (row, created); a known client_msg_id returns
    the first message. The realtime event is published after the commit. `cleaned`: the content
    already went through sanitize.clean_text (cleaning twice would escape twice)."""
    body = content if cleaned else clean_content(content)
    _check_client_msg_id(client_msg_id)
    sql = _send_sql(state)
    params = (kind, room, body, client_msg_id, parent_id)
    try:
        try:
            row = await state.db.fetch_one_as(user, sql, params)
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name is None:  # the function's own: the id names another room
                raise
            # A writer outside this function stored the same client_msg_id first; this statement rolled
            # back with its seq. Sending again finds that message and answers with it.
            row = await state.db.fetch_one_as(user, sql, params)
    except psycopg.Error as exc:
        raise (_send_error(exc, kind) or exc) from None
    if row is None:  # the function answers with a row or raises
        raise not_found(kind)
    created = bool(row["created"])
    if created:
        metrics.series(metrics.messages_sent, kind).inc()
        await events.publish(state, _CREATED_EVENT[kind], **{f"{kind}_id": room}, seq=row["seq"])
    return row, created


async def send_message(state: AppState, user: Claims, conversation_id: uuid.UUID, content: str,
                       client_msg_id: str | None = None,
                       parent_id: uuid.UUID | None = None) -> tuple[MessageOut, bool]:
    """Store a conversation message; returns (message, created)."""
    row, created = await send_to_room(state, user, "conversation", conversation_id, content, client_msg_id,
                                      parent_id)
    return message_out(row), created


async def ensure_member(conn: Conn, conversation_id: uuid.UUID) -> None:
    """404 unless the caller is a member (used when a query returned nothing, to tell why)."""
    row = await fetch_one(conn, _IS_MEMBER, (conversation_id,))
    if not (row and row["ok"]):
        raise not_found()


async def fetch_page(state: AppState, user: Claims, conversation_id: uuid.UUID, *, after: int | None = None,
                     before: int | None = None, limit: int = 50) -> MessagePage:
    """A page in ascending seq order. With `after`: the oldest messages newer than it; otherwise the
    newest messages older than `before` (or the newest of all). has_more: more in that direction."""
    limit = max(1, min(limit, MAX_PAGE))
    lower = after if after is not None else 0
    upper = before if before is not None else _NO_UPPER
    sql = _PAGE_ASC if after is not None else _PAGE_DESC
    async with state.db.transaction(user) as conn:
        rows = await fetch_all(conn, sql, (conversation_id, lower, upper, limit + 1))
        if not rows:
            await ensure_member(conn, conversation_id)
    has_more = len(rows) > limit
    rows = rows[:limit]
    if after is None:
        rows.reverse()
    return MessagePage(messages=[message_out(r) for r in rows], has_more=has_more)


async def fetch_messages_since(state: AppState, user: Claims, conversation_id: uuid.UUID, since_seq: int,
                               limit: int = 200) -> list[MessageOut]:
    """Messages with seq > since_seq, ascending (resume after a reconnect). 404 for non-members."""
    page = await fetch_page(state, user, conversation_id, after=since_seq, limit=limit)
    return page.messages


async def mark_read(state: AppState, user: Claims, conversation_id: uuid.UUID, seq: int) -> int:
    """Mark read up to `seq` (never backwards, never past the last message); returns unread_count."""
    async with state.db.transaction(user) as conn:
        row = await fetch_one(conn, _MARK_READ, (seq, conversation_id))
    if row is None:
        raise not_found()
    await events.publish(state, "message_read", conversation_id=conversation_id, user_id=user.user_id,
                         seq=row["last_read_seq"])
    return int(row["unread_count"])


_MARK_READ_MESSAGE = """
  update public.conversation_members cm
     set last_read_seq = greatest(cm.last_read_seq, m.seq)
    from public.messages m join public.conversations c on c.id = m.conversation_id
   where m.id = %s and cm.conversation_id = m.conversation_id and cm.user_id = (select auth.uid())
  returning cm.conversation_id, cm.last_read_seq,
            greatest(c.last_seq - cm.last_read_seq, 0) as unread_count"""


async def mark_read_message(state: AppState, user: Claims, message_id: uuid.UUID) -> ReadOut:
    """Mark read up to this message's seq (REST); one statement. 404 when the message is not visible."""
    async with state.db.transaction(user) as conn:
        row = await fetch_one(conn, _MARK_READ_MESSAGE, (message_id,))
    if row is None:
        raise not_found("message")
    await events.publish(state, "message_read", conversation_id=row["conversation_id"], user_id=user.user_id,
                         seq=row["last_read_seq"])
    return ReadOut.model_validate(row)
