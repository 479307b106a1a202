"""Communities: create and find them, join and leave, manage members, and their message stream.

RLS decides everything: a private community is invisible to non-members (404 here, never 403, so
its existence does not leak), membership and message writes are checked by the policies of
004/007. The code turns "no row visible" into 404 and "visible but the policy refused" into 403.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from psycopg import sql

from service import messaging
from service.db import Conn, fetch_all, fetch_one
from service.deps import CurrentUser, State, enforce_rate_limit, parse_uuid
from service.events import publish
from service.responses import json_response
from service.schemas.communities import (
    Community,
    CommunityCreate,
    CommunityMessage,
    CommunityMessageCreate,
    CommunityMessagePage,
    CommunityMessageUpdate,
    CommunityUpdate,
    Member,
    MemberAdd,
    MemberRoleUpdate,
)
from service.schemas.messages import SearchQuery
from service.state import AppState

router = APIRouter(tags=["communities"])

_COMMUNITY = """select c.id, c.name, c.description, c.is_private, c.created_by, c.member_count, c.created_at,
                       c.updated_at, public.community_role(c.id) as my_role
                  from public.communities c"""
_MEMBER = """select m.community_id, m.user_id, p.display_name, m.role, m.joined_at
               from public.community_members m join public.profiles p on p.id = m.user_id"""
_DELETE_MEMBER = "delete from public.community_members where community_id = %s and user_id = %s"
_MESSAGE_COLUMNS = ("id, community_id, sender_id, seq, client_msg_id, content, is_deleted, deleted_by, "
                    "edited_at, created_at, updated_at")


def _not_found(what: str = "community") -> HTTPException:
    return HTTPException(404, detail=f"{what} not found")


async def _visible_community(conn: Conn, community_id: uuid.UUID) -> dict[str, Any]:
    row = await fetch_one(conn, f"{_COMMUNITY} where c.id = %s", (community_id,))
    if row is None:
        raise _not_found()
    return row


async def _member(conn: Conn, community_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any] | None:
    return await fetch_one(conn, f"{_MEMBER} where m.community_id = %s and m.user_id = %s",
                           (community_id, user_id))


async def _membership_changed(state: AppState, community_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await publish(state, "community_membership_changed", community_id=community_id, user_id=user_id)


# --- communities -----------------------------------------------------------------------------------

@router.post("/communities", status_code=201, response_model=Community,
             responses={429: {"description": "community creation rate limit (3 per day by default)"}})
async def create_community(body: CommunityCreate, user: CurrentUser, state: State) -> Community:
    """Create a community; the caller becomes its owner."""
    community_id = uuid.uuid4()  # chosen here: RETURNING cannot see a private row before its owner exists
    async with state.db.transaction(user) as conn:
        await enforce_rate_limit(state, conn, "create_community")
        await conn.execute(
            "insert into public.communities (id, name, description, is_private, created_by) "
            "values (%s, %s, %s, %s, %s)",
            (community_id, body.name, body.description, body.is_private, user.user_id),
        )
        row = await _visible_community(conn, community_id)
    await _membership_changed(state, community_id, user.user_id)
    return Community.model_validate(row)


@router.get("/communities", response_model=list[Community])
async def list_communities(
    user: CurrentUser, state: State,
    q: Annotated[SearchQuery | None, Query(description="full-text search")] = None,
    mine: Annotated[bool, Query(description="only communities the caller belongs to")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> list[Community]:
    """Communities the caller can see: every public one and the private ones they belong to."""
    # Only the filters given go into the statement: a search is a GIN index scan on communities.search.
    where = ["true"]
    if q:
        where.append("c.search @@ websearch_to_tsquery('english', %(q)s)")
    if mine:
        where.append("public.community_role(c.id) is not null")
    order = ("ts_rank(c.search, websearch_to_tsquery('english', %(q)s)) desc, c.created_at desc"
             if q else "c.created_at desc")
    async with state.db.transaction(user) as conn:
        rows = await fetch_all(
            conn,
            f"""{_COMMUNITY} where {" and ".join(where)}
                order by {order}, c.id limit %(limit)s offset %(offset)s""",
            {"q": q, "mine": mine, "limit": limit, "offset": offset},
        )
    return [Community.model_validate(r) for r in rows]


@router.get("/communities/{community_id}", response_model=Community)
async def get_community(community_id: str, user: CurrentUser, state: State) -> Community:
    """One community (404 for a private community the caller is not in)."""
    async with state.db.transaction(user) as conn:
        row = await _visible_community(conn, parse_uuid(community_id))
    return Community.model_validate(row)


@router.patch("/communities/{community_id}", response_model=Community)
async def update_community(community_id: str, body: CommunityUpdate, user: CurrentUser,
                           state: State) -> Community:
    """Rename, describe, or make private/public (the community's owner and admins)."""
    cid = parse_uuid(community_id)
    changes = body.model_dump(exclude_unset=True)
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in changes)
    async with state.db.transaction(user) as conn:
        await _visible_community(conn, cid)
        update = sql.SQL("update public.communities set {} where id = %s").format(assignments)
        cur = await conn.execute(update, [*changes.values(), cid])
        if cur.rowcount == 0:
            raise HTTPException(403, detail="only the community's owner and admins can change it")
        row = await _visible_community(conn, cid)
    return Community.model_validate(row)


# --- membership ------------------------------------------------------------------------------------

@router.post("/communities/{community_id}/join", status_code=201, response_model=Member,
             responses={200: {"description": "already a member"}})
async def join_community(community_id: str, user: CurrentUser, state: State, response: Response) -> Member:
    """Join a public community as a member (201; 200 when already a member)."""
    cid = parse_uuid(community_id)
    async with state.db.transaction(user) as conn:
        community = await _visible_community(conn, cid)
        joined = community["my_role"] is None
        if joined:
            await conn.execute("insert into public.community_members (community_id, user_id, role) "
                               "values (%s, %s, 'member')", (cid, user.user_id))
        row = await _member(conn, cid, user.user_id)
    if not joined:
        response.status_code = 200
    else:
        await _membership_changed(state, cid, user.user_id)
    return Member.model_validate(row)


@router.post("/communities/{community_id}/leave", status_code=204, response_model=None,
             responses={409: {"description": "the owner cannot leave"}})
async def leave_community(community_id: str, user: CurrentUser, state: State) -> None:
    """Leave a community. Its owner cannot leave (409)."""
    cid = parse_uuid(community_id)
    async with state.db.transaction(user) as conn:
        community = await _visible_community(conn, cid)
        if community["my_role"] is None:
            raise HTTPException(404, detail="you are not a member of this community")
        cur = await conn.execute(_DELETE_MEMBER, (cid, user.user_id))
        if cur.rowcount == 0:  # the policy keeps the owner's row
            raise HTTPException(409, detail="the owner cannot leave their community")
    await _membership_changed(state, cid, user.user_id)


@router.get("/communities/{community_id}/members", response_model=list[Member])
async def list_members(
    community_id: str, user: CurrentUser, state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[Member]:
    """Members of a community the caller can see, owner and admins first."""
    cid = parse_uuid(community_id)
    async with state.db.transaction(user) as conn:
        await _visible_community(conn, cid)
        rows = await fetch_all(
            conn,
            f"""{_MEMBER} where m.community_id = %s
                order by array_position(array['owner', 'admin', 'moderator', 'member'], m.role),
                         m.joined_at, m.user_id
                limit %s offset %s""",
            (cid, limit, offset),
        )
    return [Member.model_validate(r) for r in rows]


@router.post("/communities/{community_id}/members", status_code=201, response_model=Member,
             responses={403: {"description": "only owners and admins add members"},
                        409: {"description": "already a member"}})
async def add_member(community_id: str, body: MemberAdd, user: CurrentUser, state: State) -> Member:
    """Add a user to the community, private ones included (the community's owner and admins)."""
    cid = parse_uuid(community_id)
    async with state.db.transaction(user) as conn:
        await _visible_community(conn, cid)
        await enforce_rate_limit(state, conn, "add_member")
        await conn.execute("insert into public.community_members (community_id, user_id, role) "
                           "values (%s, %s, %s)", (cid, body.user_id, body.role))
        row = await _member(conn, cid, body.user_id)
    await _membership_changed(state, cid, body.user_id)
    return Member.model_validate(row)


@router.put("/communities/{community_id}/members/{user_id}", response_model=Member,
            responses={403: {"description": "only owners and admins change roles, never the owner's"}})
async def set_member_role(community_id: str, user_id: str, body: MemberRoleUpdate, user: CurrentUser,
                          state: State) -> Member:
    """Make a member an admin, moderator or plain member (the community's owner and admins)."""
    cid, target = parse_uuid(community_id), parse_uuid(user_id)
    async with state.db.transaction(user) as conn:
        await _visible_community(conn, cid)
        if await _member(conn, cid, target) is None:
            raise _not_found("member")
        cur = await conn.execute("update public.community_members set role = %s "
                                 "where community_id = %s and user_id = %s", (body.role, cid, target))
        if cur.rowcount == 0:
            raise HTTPException(403, detail="only the owner and admins change roles, and never the owner's")
        row = await _member(conn, cid, target)
    await _membership_changed(state, cid, target)
    return Member.model_validate(row)


@router.delete("/communities/{community_id}/members/{user_id}", status_code=204, response_model=None,
               responses={403: {"description": "owners, admins and moderators remove plain members only"}})
async def remove_member(community_id: str, user_id: str, user: CurrentUser, state: State) -> None:
    """Remove (kick) a plain member (the community's owner, admins and moderators)."""
    cid, target = parse_uuid(community_id), parse_uuid(user_id)
    async with state.db.transaction(user) as conn:
        await _visible_community(conn, cid)
        if await _member(conn, cid, target) is None:
            raise _not_found("member")
        cur = await conn.execute(_DELETE_MEMBER, (cid, target))
        if cur.rowcount == 0:
            raise HTTPException(403, detail="owners, admins and moderators can remove plain members only")
    await _membership_changed(state, cid, target)


# --- community messages --------------------------------------------------------------------------

@router.post("/communities/{community_id}/messages", status_code=201, response_model=CommunityMessage,
             responses={200: {"description": "a retry: the message stored earlier with this client_msg_id"},
                        403: {"description": "not a member"}, 429: {"description": "message rate limit"}})
async def send_community_message(community_id: str, body: CommunityMessageCreate, user: CurrentUser,
                                 state: State) -> Response:
    """Post a message to a community the caller belongs to. Idempotent on `client_msg_id`."""
    # The schema has cleaned the content already.
    row, created = await messaging.send_to_room(state, user, "community", parse_uuid(community_id), body.content,
                                                body.client_msg_id, cleaned=True)
    return json_response(CommunityMessage.model_validate(row), 201 if created else 200)


@router.get("/communities/{community_id}/messages", response_model=CommunityMessagePage,
            responses={403: {"description": "join the community to read its messages"}})
async def list_community_messages(
    community_id: str, user: CurrentUser, state: State,
    before: Annotated[int | None, Query(ge=1, description="older than this seq")] = None,
    after: Annotated[int | None, Query(ge=0, description="newer than this seq (ascending from it)")] = None,
    since_seq: Annotated[int | None, Query(ge=0, description="alias of `after`, to resume a stream")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CommunityMessagePage:
    """A page of a community's messages, ascending by seq. With `after`/`since_seq`: the oldest `limit`
    newer than it; otherwise the newest `limit` (older than `before` when given)."""
    cid = parse_uuid(community_id)
    after = after if after is not None else since_seq
    async with state.db.transaction(user) as conn:
        community = await _visible_community(conn, cid)
        if community["my_role"] is None:
            raise HTTPException(403, detail="join the community to read its messages")
        ascending = after is not None
        # Only the bounds given go into the statement, so that every page is a range scan of
        # unique (community_id, seq).
        bounds = "".join([" and seq > %(after)s" if after is not None else "",
                          " and seq < %(before)s" if before is not None else ""])
        rows = await fetch_all(
            conn,
            f"""select {_MESSAGE_COLUMNS} from public.community_messages
                 where community_id = %(cid)s{bounds}
                 order by seq {"asc" if ascending else "desc"} limit %(n)s""",
            {"cid": cid, "after": after, "before": before, "n": limit + 1},
        )
    has_more = len(rows) > limit
    rows = rows[:limit] if ascending else list(reversed(rows[:limit]))
    messages = [CommunityMessage.model_validate(r) for r in rows]
    return CommunityMessagePage(messages=messages, has_more=has_more)


async def _visible_message(conn: Conn, message_id: uuid.UUID) -> dict[str, Any] | None:
    return await fetch_one(conn, "select is_deleted from public.community_messages where id = %s",
                           (message_id,))


def _refusal(visible: dict[str, Any] | None, action: str) -> HTTPException:
    """Why an update touched no row: invisible (404), deleted (404), or visible but not the caller's (403)."""
    if visible is None:
        return _not_found("message")
    if visible["is_deleted"]:
        return HTTPException(404, detail="message was deleted")
    return HTTPException(403, detail=f"you cannot {action} this message")


@router.patch("/community-messages/{message_id}", response_model=CommunityMessage)
async def edit_community_message(message_id: str, body: CommunityMessageUpdate, user: CurrentUser,
                                 state: State) -> CommunityMessage:
    """Edit one of your own community messages."""
    mid = parse_uuid(message_id)
    async with state.db.transaction(user) as conn:
        await enforce_rate_limit(state, conn, "edit_message")
        # RLS lets moderators update (that is how they delete); editing text is the sender's alone.
        row = await fetch_one(
            conn,
            f"""update public.community_messages set content = %s, edited_at = now()
                 where id = %s and sender_id = (select auth.uid()) and not is_deleted
                returning {_MESSAGE_COLUMNS}""",
            (body.content, mid),
        )
        if row is None:
            raise _refusal(await _visible_message(conn, mid), "edit")
    await publish(state, "community_message_updated", community_id=row["community_id"], message_id=mid,
                  seq=row["seq"])
    return CommunityMessage.model_validate(row)


async def _delete_as_app_moderator(conn: Conn, message_id: uuid.UUID) -> dict[str, Any] | None:
    """App-level moderators and admins delete messages of communities they are not in (RLS hides
    those) through the moderation functions; None for everyone else."""
    role = await fetch_one(conn, "select coalesce(public.app_role() in ('moderator', 'admin'), false) as ok")
    if not (role and role["ok"]):
        return None
    ref = await fetch_one(conn, "select container_id as community_id, seq, is_deleted from "
                                "public.moderated_message_ref(%s) where channel = 'community'", (message_id,))
    if ref is None or ref["is_deleted"]:
        return None
    await conn.execute("select public.moderate_delete_message(%s)", (message_id,))
    return ref


@router.delete("/community-messages/{message_id}", status_code=204, response_model=None)
async def delete_community_message(message_id: str, user: CurrentUser, state: State) -> None:
    """Soft-delete a community message: its content leaves the database, a placeholder row stays.
    Senders delete their own; community owners/admins/moderators and app moderators/admins any."""
    mid = parse_uuid(message_id)
    async with state.db.transaction(user) as conn:
        row = await fetch_one(
            conn,
            """update public.community_messages
                  set content = null, is_deleted = true, deleted_by = (select auth.uid())
                where id = %s and not is_deleted
               returning community_id, seq""",
            (mid,),
        )
        if row is None:
            visible = await _visible_message(conn, mid)
            if visible is None:
                row = await _delete_as_app_moderator(conn, mid)
            if row is None:
                raise _refusal(visible, "delete")
    await publish(state, "community_message_updated", community_id=row["community_id"], message_id=mid,
                  seq=row["seq"])
