"""Sending and reading conversation messages: shared by the REST routes and the WebSocket side.

Every function runs as the caller (`state.db.transaction(user)`), so RLS decides what is visible and
writable; "0 rows visible" becomes 404. Errors are raised as fastapi.HTTPException with the REST
statuses, and realtime events are published only after the transaction has committed.
"""

from __future__ import annotations

import uuid
from typing import Any

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

_SEND = ("select * from public.send_conversation_message(%s, %s, %s, %s, %s::text[], %s::int[], %s::int[])")
_BY_CLIENT_ID = (f"select {MESSAGE_COLUMNS} from public.messages m "
                 "where m.sender_id = (select auth.uid()) and m.client_msg_id = %s")
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


def _send_error(exc: psycopg.Error) -> HTTPException | None:
    state = exc.sqlstate
    if state == "P0002":
        return not_found()
    if state == "P0429":
        metrics.rate_limited.labels("send_message").inc()
        retry = (exc.diag.message_detail or "60") if exc.diag else "60"
        return HTTPException(429, detail=exc.diag.message_primary or "rate limited",
                             headers={"Retry-After": retry})
    if state == "23503":
        return unprocessable("parent_id", "the parent message is not in this conversation")
    if state == "42501":
        return not_found()
    return None


async def send_message(state: AppState, user: Claims, conversation_id: uuid.UUID, content: str,
                       client_msg_id: str | None = None,
                       parent_id: uuid.UUID | None = None) -> tuple[MessageOut, bool]:
    """Store a message; returns (message, created). A known client_msg_id returns the first message."""
    body = clean_content(content)
    _check_client_msg_id(client_msg_id)
    limits = [(a, state.settings.rate_limits[a]) for a in SEND_LIMITS if a in state.settings.rate_limits]
    params = (conversation_id, body, client_msg_id, parent_id, [a for a, _ in limits],
              [lim.max_hits for _, lim in limits], [lim.window_seconds for _, lim in limits])
    try:
        async with state.db.transaction(user) as conn:
            row = await fetch_one(conn, _SEND, params)
    except psycopg.errors.UniqueViolation:
        # A concurrent send with the same client_msg_id won (or the id was used elsewhere): the
        # loser's insert rolled back with its seq, so answer with the winner's row.
        return await _replay(state, user, conversation_id, client_msg_id), False
    except psycopg.Error as exc:
        raise (_send_error(exc) or exc) from None
    assert row is not None
    message = message_out(row)
    if row["created"]:
        metrics.messages_sent.labels("conversation").inc()
        await events.publish(state, "message_created", conversation_id=conversation_id, seq=message.seq)
    return message, bool(row["created"])


async def _replay(state: AppState, user: Claims, conversation_id: uuid.UUID,
                  client_msg_id: str | None) -> MessageOut:
    async with state.db.transaction(user) as conn:
        row = await fetch_one(conn, _BY_CLIENT_ID, (client_msg_id,))
    if row is None or row["conversation_id"] != conversation_id:
        raise HTTPException(409, detail="client_msg_id was already used for another message")
    return message_out(row)


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
