"""Messages: send, page, search, edit, soft delete, read receipts, reactions, thread replies.

Every statement runs as the caller, so RLS decides; when a write touches 0 rows, one follow-up read
tells the caller why: not visible (404), deleted (409) or not theirs to change (403).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query, Response

from service import events, messaging
from service.db import Conn, fetch_all, fetch_one
from service.deps import CurrentUser, State, enforce_rate_limit, parse_uuid
from service.messaging import MESSAGE_COLUMNS, message_out, not_found
from service.responses import json_response
from service.schemas.messages import (
    MAX_EMOJI_CHARS,
    EditMessageIn,
    MessageOut,
    MessagePage,
    ReactionIn,
    ReadOut,
    SearchHit,
    SearchQuery,
    SearchResults,
    SendMessageIn,
    no_control_chars,
)

router = APIRouter(tags=["messages"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid or expired token"},
    404: {"description": "Not found, or not visible to you"},
}

_BY_ID = f"select {MESSAGE_COLUMNS} from public.messages m where m.id = %s"
_STATE = "select m.conversation_id, m.seq, m.is_deleted from public.messages m where m.id = %s"
_EDIT = (f"update public.messages m set content = %s, edited_at = now() "
         f"where m.id = %s and not m.is_deleted returning {MESSAGE_COLUMNS}")
_SOFT_DELETE = ("update public.messages m "
                "set content = null, is_deleted = true, deleted_by = (select auth.uid()) "
                "where m.id = %s and not m.is_deleted returning m.conversation_id, m.seq")
_ADD_REACTION = ("insert into public.message_reactions (message_id, user_id, emoji) "
                 "values (%s, (select auth.uid()), %s) on conflict do nothing returning true as created")
_REMOVE_REACTION = ("delete from public.message_reactions "
                    "where message_id = %s and user_id = (select auth.uid()) and emoji = %s "
                    "returning true as removed")
_REPLIES = (f"select {MESSAGE_COLUMNS} from public.messages m "
            "where m.parent_id = %s and m.seq > %s order by m.seq limit %s")
_SEARCH = f"""
  select {MESSAGE_COLUMNS},
         ts_headline('english', m.content, q.query, 'StartSel="<mark>", StopSel="</mark>"') as highlight,
         ts_rank(m.search, q.query) as rank
    from public.messages m, websearch_to_tsquery('english', %s) as q(query)
   where m.conversation_id = %s and m.search @@ q.query
   order by rank desc, m.seq desc
   limit %s"""

_NOT_YOURS = "you can edit only your own messages"

Limit = Annotated[int, Query(ge=1, le=messaging.MAX_PAGE, description="Page size (max 200)")]
Seq = Annotated[int | None, Query(ge=0)]


async def _message_state(conn: Conn, message_id: uuid.UUID) -> dict[str, Any]:
    """A message's conversation, seq and is_deleted (e.g. to tell why a write changed nothing); 404 if the
    caller cannot see it."""
    row = await fetch_one(conn, _STATE, (message_id,))
    if row is None:
        raise not_found("message")
    return row


@router.post("/conversations/{conversation_id}/messages", response_model=MessageOut, status_code=201,
             responses={**_ERRORS,
                        200: {"model": MessageOut, "description": "Replay of a known client_msg_id"},
                        429: {"description": "Rate limited; see Retry-After"}})
async def send_message(conversation_id: str, body: SendMessageIn, user: CurrentUser, state: State) -> Response:
    """Send a message (members only). Markup is removed. Retrying with the same `client_msg_id`
    returns the first message with 200 instead of storing a duplicate."""
    message, created = await messaging.send_message(state, user, parse_uuid(conversation_id), body.content,
                                                    body.client_msg_id, body.parent_id)
    return json_response(message, 201 if created else 200)


@router.get("/conversations/{conversation_id}/messages", response_model=MessagePage, responses=_ERRORS)
async def list_messages(conversation_id: str, user: CurrentUser, state: State,
                        before: Annotated[int | None, Query(ge=0, description="Older than this seq")] = None,
                        after: Annotated[int | None, Query(ge=0, description="Newer than this seq")] = None,
                        since_seq: Annotated[int | None, Query(ge=0, description="Same as after")] = None,
                        limit: Limit = 50) -> MessagePage:
    """A page of messages in ascending seq. No cursor: the newest page; `before`: the page before it;
    `after`/`since_seq`: the messages right after it. `has_more` tells whether to keep paging."""
    if after is not None and since_seq is not None and after != since_seq:
        raise HTTPException(400, detail="give either after or since_seq, not both")
    lower = after if after is not None else since_seq
    return await messaging.fetch_page(state, user, parse_uuid(conversation_id), after=lower, before=before,
                                      limit=limit)


@router.get("/conversations/{conversation_id}/messages/search", response_model=SearchResults,
            responses=_ERRORS)
async def search_messages(conversation_id: str, user: CurrentUser, state: State,
                          q: Annotated[SearchQuery, Query(description="Words, \"phrases\", or, -not")],
                          limit: Annotated[int, Query(ge=1, le=100)] = 20) -> SearchResults:
    """Full-text search in one conversation, best match first, with highlighted passages."""
    conv = parse_uuid(conversation_id)
    async with state.db.transaction(user) as conn:
        rows = await fetch_all(conn, _SEARCH, (q, conv, limit))
        if not rows:
            await messaging.ensure_member(conn, conv)
    return SearchResults(query=q, results=[SearchHit.model_validate(r) for r in rows])


@router.get("/messages/{message_id}", response_model=MessageOut, responses=_ERRORS)
async def get_message(message_id: str, user: CurrentUser, state: State) -> MessageOut:
    """One message, if you are a member of its conversation."""
    async with state.db.transaction(user) as conn:
        row = await fetch_one(conn, _BY_ID, (parse_uuid(message_id),))
    if row is None:
        raise not_found("message")
    return message_out(row)


@router.patch("/messages/{message_id}", response_model=MessageOut,
              responses={**_ERRORS, 403: {"description": "Not your message"},
                         409: {"description": "The message was deleted"}})
async def edit_message(message_id: str, body: EditMessageIn, user: CurrentUser, state: State) -> MessageOut:
    """Edit your message's content (markup is removed); sets `edited_at`."""
    mid = parse_uuid(message_id)
    content = messaging.clean_content(body.content)
    try:
        async with state.db.transaction(user) as conn:
            await enforce_rate_limit(state, conn, "edit_message")
            row = await fetch_one(conn, _EDIT, (content, mid))
            if row is None:
                current = await _message_state(conn, mid)
                if current["is_deleted"]:
                    raise HTTPException(409, detail="the message was deleted")
                raise HTTPException(403, detail=_NOT_YOURS)
    except psycopg.errors.InsufficientPrivilege:
        # RLS lets moderators update others' rows (to delete them); a trigger refuses new text.
        raise HTTPException(403, detail=_NOT_YOURS) from None
    message = message_out(row)
    await events.publish(state, "message_updated", conversation_id=message.conversation_id,
                         message_id=message.id, seq=message.seq)
    return message


@router.delete("/messages/{message_id}", status_code=204, response_class=Response,
               responses={**_ERRORS, 403: {"description": "Neither your message nor are you a moderator"}})
async def delete_message(message_id: str, user: CurrentUser, state: State) -> Response:
    """Soft delete: the content leaves the database, a placeholder stays. Your own messages, or any
    message as a moderator/admin member. Deleting a deleted message is a no-op."""
    mid = parse_uuid(message_id)
    async with state.db.transaction(user) as conn:
        row = await fetch_one(conn, _SOFT_DELETE, (mid,))
        if row is None:
            current = await _message_state(conn, mid)
            if current["is_deleted"]:
                return Response(status_code=204)
            raise HTTPException(403, detail="you can delete only your own messages")
    await events.publish(state, "message_updated", conversation_id=row["conversation_id"], message_id=mid,
                         seq=row["seq"])
    return Response(status_code=204)


@router.patch("/messages/{message_id}/read", response_model=ReadOut, responses=_ERRORS)
async def mark_read(message_id: str, user: CurrentUser, state: State) -> ReadOut:
    """Mark the conversation read up to this message (never moves backwards); returns the unread count."""
    return await messaging.mark_read_message(state, user, parse_uuid(message_id))


@router.post("/messages/{message_id}/reactions", response_model=MessageOut, status_code=201,
             responses={**_ERRORS, 200: {"model": MessageOut, "description": "You had already reacted so"},
                        409: {"description": "The message was deleted"}})
async def add_reaction(message_id: str, body: ReactionIn, user: CurrentUser, state: State,
                       response: Response) -> MessageOut:
    """React with an emoji; reacting twice with the same one is a no-op (200)."""
    mid = parse_uuid(message_id)
    async with state.db.transaction(user) as conn:
        current = await _message_state(conn, mid)
        if current["is_deleted"]:
            raise HTTPException(409, detail="the message was deleted")
        await enforce_rate_limit(state, conn, "add_reaction")
        added = await fetch_one(conn, _ADD_REACTION, (mid, body.emoji))
        row = await fetch_one(conn, _BY_ID, (mid,))
    assert row is not None
    if added is None:
        response.status_code = 200
    else:
        await events.publish(state, "message_updated", conversation_id=current["conversation_id"],
                             message_id=mid, seq=current["seq"])
    return message_out(row)


@router.delete("/messages/{message_id}/reactions/{emoji}", status_code=204, response_class=Response,
               responses=_ERRORS)
async def remove_reaction(message_id: str, user: CurrentUser, state: State,
                          emoji: Annotated[str, Path(min_length=1, max_length=MAX_EMOJI_CHARS)]) -> Response:
    """Take back your reaction (a no-op if you had none)."""
    mid = parse_uuid(message_id)
    try:
        no_control_chars(emoji)
    except ValueError as exc:
        raise messaging.unprocessable("emoji", str(exc), where="path") from None
    async with state.db.transaction(user) as conn:
        current = await _message_state(conn, mid)
        removed = await fetch_one(conn, _REMOVE_REACTION, (mid, emoji))
    if removed is not None:
        await events.publish(state, "message_updated", conversation_id=current["conversation_id"],
                             message_id=mid, seq=current["seq"])
    return Response(status_code=204)


@router.get("/messages/{message_id}/replies", response_model=MessagePage, responses=_ERRORS)
async def list_replies(message_id: str, user: CurrentUser, state: State, after: Seq = None,
                       limit: Limit = 50) -> MessagePage:
    """The thread under a message, oldest first; page on with `after` = the last seq you have."""
    mid = parse_uuid(message_id)
    async with state.db.transaction(user) as conn:
        rows = await fetch_all(conn, _REPLIES, (mid, after or 0, limit + 1))
        if not rows:
            await _message_state(conn, mid)
    return MessagePage(messages=[message_out(r) for r in rows[:limit]], has_more=len(rows) > limit)
