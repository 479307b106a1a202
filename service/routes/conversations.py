"""Conversations: create (direct or group), list with unread counts, details, archive, membership.

Direct conversations come only from public.get_or_create_conversation() (it enforces the DM matrix);
groups from public.create_group_conversation(). Membership writes are decided by RLS.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Query, Response

from service import events
from service.db import Conn, fetch_all, fetch_one
from service.deps import CurrentUser, State, enforce_rate_limit, parse_uuid
from service.messaging import not_found
from service.schemas.conversations import (
    ArchiveIn,
    ArchiveOut,
    ConversationDetail,
    ConversationIn,
    ConversationPage,
    ConversationSummary,
    DirectConversationIn,
    GroupConversationIn,
    Member,
    MemberIn,
)

router = APIRouter(tags=["conversations"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid or expired token"},
    404: {"description": "Not found, or you are not a member"},
}

# The caller's view of a conversation: their membership row joined to it. Activity = the last
# message, or the creation for a conversation without messages.
_SUMMARY = """
  select c.id, c.kind, c.title, c.created_by, c.last_seq, c.last_message_at, c.created_at,
         cm.last_read_seq, cm.archived_at is not null as archived,
         greatest(c.last_seq - cm.last_read_seq, 0) as unread_count,
         (select count(*) from public.conversation_members x where x.conversation_id = c.id) as member_count,
         coalesce(c.last_message_at, c.created_at) as activity
    from public.conversation_members cm
    join public.conversations c on c.id = cm.conversation_id
   where cm.user_id = (select auth.uid())"""
_ONE = _SUMMARY + " and c.id = %s"
_PAGE = _SUMMARY + """ and (cm.archived_at is not null) = %s
     and (coalesce(c.last_message_at, c.created_at), c.id) < (%s, %s)
   order by coalesce(c.last_message_at, c.created_at) desc, c.id desc
   limit %s"""
_FIRST_PAGE = _SUMMARY + """ and (cm.archived_at is not null) = %s
   order by coalesce(c.last_message_at, c.created_at) desc, c.id desc
   limit %s"""
_MEMBERS = """
  select cm.user_id, p.display_name, cm.role, cm.joined_at
    from public.conversation_members cm join public.profiles p on p.id = cm.user_id
   where cm.conversation_id = %s
   order by cm.joined_at, cm.user_id"""
_MEMBER = """
  select cm.user_id, p.display_name, cm.role, cm.joined_at
    from public.conversation_members cm join public.profiles p on p.id = cm.user_id
   where cm.conversation_id = %s and cm.user_id = %s"""
_DIRECT_EXISTS = """
  select c.id from public.conversations c
   where c.direct_key = least((select auth.uid())::text, %(other)s::text) || ':'
                        || greatest((select auth.uid())::text, %(other)s::text)"""
_UNKNOWN_USERS = ("select u from unnest(%s::uuid[]) u "
                  "where not exists (select 1 from public.profiles p where p.id = u)")
_ADD_MEMBERS = ("insert into public.conversation_members (conversation_id, user_id) "
                "select %s, u from unnest(%s::uuid[]) u")
_CONVERSATION = "select c.kind, c.created_by from public.conversations c where c.id = %s"
_IS_MEMBER = "select 1 from public.conversation_members cm where cm.conversation_id = %s and cm.user_id = %s"


def _encode_cursor(activity: datetime, conv: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{activity.isoformat()}|{conv}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        stamp, conv = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(stamp), uuid.UUID(conv)
    except (ValueError, binascii.Error, UnicodeError):
        raise HTTPException(400, detail="malformed cursor; pass next_cursor from the previous page") from None


async def _detail(conn: Conn, conv: uuid.UUID) -> ConversationDetail:
    row = await fetch_one(conn, _ONE, (conv,))
    if row is None:
        raise not_found()
    members = [Member.model_validate(m) for m in await fetch_all(conn, _MEMBERS, (conv,))]
    return ConversationDetail.model_validate({**row, "members": members})


async def _require_known_users(conn: Conn, user_ids: list[uuid.UUID]) -> None:
    unknown = await fetch_all(conn, _UNKNOWN_USERS, (user_ids,))
    if unknown:
        raise HTTPException(404, detail=f"no such user: {unknown[0]['u']}")


async def _add_members(conn: Conn, conv: uuid.UUID, user_ids: list[uuid.UUID], refusal: str) -> None:
    """Insert memberships; RLS admits only the group's owner adding people they could DM."""
    try:
        await conn.execute(_ADD_MEMBERS, (conv, user_ids))
    except psycopg.errors.InsufficientPrivilege:
        raise HTTPException(403, detail=refusal) from None
    except psycopg.errors.UniqueViolation:
        raise HTTPException(409, detail="already a member") from None


async def _create_direct(state: State, user: CurrentUser, body: DirectConversationIn
                         ) -> tuple[ConversationDetail, bool]:
    async with state.db.transaction(user) as conn:
        existing = await fetch_one(conn, _DIRECT_EXISTS, {"other": body.user_id})
        if existing is None:
            await enforce_rate_limit(state, conn, "create_conversation")
        # Always through the function: it applies the DM matrix to existing conversations too.
        row = await fetch_one(conn, "select public.get_or_create_conversation(%s) as id, now() as now",
                              (body.user_id,))
        assert row is not None
        detail = await _detail(conn, row["id"])
    # now() is this transaction's start: equal only if this transaction inserted the row.
    created = detail.created_at == row["now"]
    if created:
        await events.publish(state, "membership_changed", conversation_id=detail.id, user_id=body.user_id)
    return detail, created


async def _create_group(state: State, user: CurrentUser, body: GroupConversationIn) -> ConversationDetail:
    others = list(dict.fromkeys(u for u in body.member_ids if u != user.user_id))
    async with state.db.transaction(user) as conn:
        await enforce_rate_limit(state, conn, "create_conversation")
        await _require_known_users(conn, others)
        row = await fetch_one(conn, "select public.create_group_conversation(%s) as id", (body.title,))
        assert row is not None
        if others:
            await _add_members(conn, row["id"], others,
                               "the direct-message rules of your role do not allow adding one of these users")
        detail = await _detail(conn, row["id"])
    for member in others:
        await events.publish(state, "membership_changed", conversation_id=detail.id, user_id=member)
    return detail


@router.post("/conversations", response_model=ConversationDetail, status_code=201,
             responses={**_ERRORS,
                        200: {"model": ConversationDetail,
                              "description": "The direct conversation with this user already existed"},
                        400: {"description": "A direct conversation with yourself"},
                        403: {"description": "The direct-message rules of your roles forbid it"},
                        429: {"description": "Rate limited; see Retry-After"}})
async def create_conversation(body: ConversationIn, user: CurrentUser, state: State,
                              response: Response) -> ConversationDetail:
    """Start a direct conversation (get-or-create: 200 if it existed) or a group you own (201)."""
    if isinstance(body, DirectConversationIn):
        detail, created = await _create_direct(state, user, body)
        if not created:
            response.status_code = 200
        return detail
    return await _create_group(state, user, body)


@router.get("/conversations", response_model=ConversationPage, responses=_ERRORS)
async def list_conversations(user: CurrentUser, state: State,
                             archived: Annotated[bool, Query(description="Archived ones instead")] = False,
                             limit: Annotated[int, Query(ge=1, le=100)] = 50,
                             cursor: Annotated[str | None, Query(max_length=200)] = None) -> ConversationPage:
    """Your conversations, newest activity first, each with its unread count."""
    async with state.db.transaction(user) as conn:
        if cursor is None:
            rows = await fetch_all(conn, _FIRST_PAGE, (archived, limit + 1))
        else:
            activity, last_id = _decode_cursor(cursor)
            rows = await fetch_all(conn, _PAGE, (archived, activity, last_id, limit + 1))
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = _encode_cursor(page[-1]["activity"], page[-1]["id"]) if more else None
    return ConversationPage(conversations=[ConversationSummary.model_validate(r) for r in page],
                            next_cursor=next_cursor)


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail, responses=_ERRORS)
async def get_conversation(conversation_id: str, user: CurrentUser, state: State) -> ConversationDetail:
    """One of your conversations with its members (never their emails)."""
    async with state.db.transaction(user) as conn:
        return await _detail(conn, parse_uuid(conversation_id))


@router.patch("/conversations/{conversation_id}/archive", response_model=ArchiveOut, responses=_ERRORS)
async def archive_conversation(conversation_id: str, body: ArchiveIn, user: CurrentUser,
                               state: State) -> ArchiveOut:
    """Archive (or unarchive) a conversation for yourself; the others are not affected."""
    conv = parse_uuid(conversation_id)
    async with state.db.transaction(user) as conn:
        row = await fetch_one(
            conn,
            "update public.conversation_members set archived_at = case when %s then now() end "
            "where conversation_id = %s and user_id = (select auth.uid()) returning archived_at",
            (body.archived, conv))
    if row is None:
        raise not_found()
    return ArchiveOut(conversation_id=conv, archived=body.archived, archived_at=row["archived_at"])


@router.post("/conversations/{conversation_id}/members", response_model=Member, status_code=201,
             responses={**_ERRORS, 403: {"description": "Only the group's owner adds members"},
                        409: {"description": "Already a member"}})
async def add_member(conversation_id: str, body: MemberIn, user: CurrentUser, state: State) -> Member:
    """Add someone to a group you own (within the direct-message rules of your role)."""
    conv = parse_uuid(conversation_id)
    async with state.db.transaction(user) as conn:
        current = await fetch_one(conn, _CONVERSATION, (conv,))
        if current is None:
            raise not_found()
        await _require_known_users(conn, [body.user_id])
        await enforce_rate_limit(state, conn, "add_member")
        owner = current["kind"] == "group" and current["created_by"] == user.user_id
        await _add_members(conn, conv, [body.user_id],
                           "the direct-message rules of your role do not allow adding this user" if owner
                           else "only the group's owner adds members")
        row = await fetch_one(conn, _MEMBER, (conv, body.user_id))
    assert row is not None
    await events.publish(state, "membership_changed", conversation_id=conv, user_id=body.user_id)
    return Member.model_validate(row)


@router.delete("/conversations/{conversation_id}/members/{user_id}", status_code=204, response_class=Response,
               responses={**_ERRORS, 403: {"description": "Only the group's owner removes others"},
                          409: {"description": "Direct conversations cannot be left; archive them"}})
async def remove_member(conversation_id: str, user_id: str, user: CurrentUser, state: State) -> Response:
    """Leave a group (your own user_id), or remove someone from a group you own."""
    conv, target = parse_uuid(conversation_id), parse_uuid(user_id)
    async with state.db.transaction(user) as conn:
        current = await fetch_one(conn, _CONVERSATION, (conv,))
        if current is None:
            raise not_found()
        if current["kind"] == "direct":
            # Leaving would orphan the pair's one conversation (get_or_create returns it again).
            raise HTTPException(409, detail="direct conversations cannot be left; archive them instead")
        cur = await conn.execute("delete from public.conversation_members "
                                 "where conversation_id = %s and user_id = %s", (conv, target))
        if cur.rowcount == 0:
            if await fetch_one(conn, _IS_MEMBER, (conv, target)) is None:
                raise not_found("member")
            raise HTTPException(403, detail="only the group's owner removes other members")
    await events.publish(state, "membership_changed", conversation_id=conv, user_id=target)
    return Response(status_code=204)
