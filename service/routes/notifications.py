"""Notifications: the feed, unread count, mark read; preferences (defaults, per conversation, per
community); the mentions of a message. Rows are written by the trigger of migrations 013 and 014 and
read under RLS."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response

from service.db import Conn, fetch_all, fetch_one
from service.deps import CurrentUser, State, parse_uuid
from service.schemas.notifications import (
    CommunitySettingOut,
    MarkRead,
    Mention,
    Notification,
    NotificationFeed,
    Preferences,
    PreferencesOut,
    RoomSetting,
    RoomSettingOut,
    UnreadCount,
)

router = APIRouter(tags=["notifications"])

EXCERPT_CHARS = 140
FEED_SQL = f"""
select n.id, n.kind, n.conversation_id, n.community_id, coalesce(n.message_id, n.community_message_id) as message_id,
       n.seq, n.actor_id, n.created_at, n.read_at,
       p.display_name as actor_name, left(coalesce(m.content, cm.content), {EXCERPT_CHARS}) as excerpt
  from public.notifications n
  left join public.profiles p on p.id = n.actor_id
  left join public.messages m on m.id = n.message_id
  left join public.community_messages cm on cm.id = n.community_message_id
"""

# Per-room settings: the table, its room column, and whether the caller is a member of the room.
_ROOMS: dict[str, tuple[str, str, str]] = {
    "conversation": ("public.conversation_notification_settings", "conversation_id",
                     "public.is_conversation_member(%s)"),
    "community": ("public.community_notification_settings", "community_id", "public.community_role(%s) is not null"),
}


async def _unread(conn: Conn) -> int:
    row = await fetch_one(conn, "select count(*) as n from public.notifications "
                                "where user_id = (select auth.uid()) and read_at is null")
    return int(row["n"]) if row else 0


@router.get("/notifications", response_model=NotificationFeed)
async def feed(user: CurrentUser, state: State, unread_only: bool = False,
               before_id: int | None = Query(None, description="page: notifications older than this id"),
               limit: int = Query(50, ge=1, le=200)) -> NotificationFeed:
    """Your notifications, newest first (mentions, replies, direct messages, rooms you follow), and the
    number unread."""
    async with state.db.transaction(user) as conn:
        rows = await fetch_all(
            conn, FEED_SQL + """ where n.user_id = (select auth.uid())
                                   and (not %s or n.read_at is null) and (%s::bigint is null or n.id < %s)
                                 order by n.id desc limit %s""", (unread_only, before_id, before_id, limit))
        unread = await _unread(conn)
    return NotificationFeed(items=[Notification.model_validate(r) for r in rows], unread=unread)


@router.get("/notifications/unread_count", response_model=UnreadCount)
async def unread_count(user: CurrentUser, state: State) -> UnreadCount:
    async with state.db.transaction(user) as conn:
        return UnreadCount(unread=await _unread(conn))


@router.post("/notifications/read", response_model=UnreadCount)
async def mark_read(body: MarkRead, user: CurrentUser, state: State) -> UnreadCount:
    """Mark notifications read (the listed ids, or all of yours); answers the number still unread."""
    async with state.db.transaction(user) as conn:
        await conn.execute("""update public.notifications set read_at = now()
                               where user_id = (select auth.uid()) and read_at is null
                                 and (%s::bigint[] is null or id = any(%s))""", (body.ids, body.ids))
        return UnreadCount(unread=await _unread(conn))


@router.get("/notifications/preferences", response_model=PreferencesOut)
async def get_preferences(user: CurrentUser, state: State) -> PreferencesOut:
    """Your defaults (direct messages, rooms, mentions, mute) and your per-conversation and per-community
    settings."""
    async with state.db.transaction(user) as conn:
        row = await fetch_one(conn, "select direct_messages, rooms, mentions, muted_until "
                                    "from public.notification_preferences where user_id = (select auth.uid())")
        rooms = await fetch_all(conn, "select conversation_id, level, muted_until "
                                      "from public.conversation_notification_settings "
                                      "where user_id = (select auth.uid()) order by conversation_id")
        communities = await fetch_all(conn, "select community_id, level, muted_until "
                                            "from public.community_notification_settings "
                                            "where user_id = (select auth.uid()) order by community_id")
    base: dict[str, Any] = row or {}
    return PreferencesOut(**base, conversations=[RoomSettingOut.model_validate(r) for r in rooms],
                          communities=[CommunitySettingOut.model_validate(r) for r in communities])


@router.put("/notifications/preferences", response_model=Preferences)
async def put_preferences(body: Preferences, user: CurrentUser, state: State) -> Preferences:
    """Set your defaults: level for direct messages and for rooms (all / mentions / none), mentions on or
    off, and mute everything until a time."""
    async with state.db.transaction(user) as conn:
        await conn.execute(
            """insert into public.notification_preferences (user_id, direct_messages, rooms, mentions, muted_until)
               values ((select auth.uid()), %s, %s, %s, %s)
               on conflict (user_id) do update set direct_messages = excluded.direct_messages,
                 rooms = excluded.rooms, mentions = excluded.mentions, muted_until = excluded.muted_until""",
            (body.direct_messages, body.rooms, body.mentions, body.muted_until))
    return body


async def _put_setting(state: State, user: CurrentUser, kind: str, room_id: str, body: RoomSetting) -> uuid.UUID:
    table, column, is_member = _ROOMS[kind]
    rid = parse_uuid(room_id)
    async with state.db.transaction(user) as conn:
        member = await fetch_one(conn, f"select {is_member} as ok", (rid,))
        if not member or not member["ok"]:
            raise HTTPException(404, detail=f"{kind} not found")
        await conn.execute(
            f"""insert into {table} (user_id, {column}, level, muted_until) values ((select auth.uid()), %s, %s, %s)
                on conflict (user_id, {column}) do update set level = excluded.level,
                  muted_until = excluded.muted_until""", (rid, body.level, body.muted_until))
    return rid


async def _delete_setting(state: State, user: CurrentUser, kind: str, room_id: str) -> Response:
    table, column, _ = _ROOMS[kind]
    rid = parse_uuid(room_id)
    async with state.db.transaction(user) as conn:
        await conn.execute(f"delete from {table} where user_id = (select auth.uid()) and {column} = %s", (rid,))
    return Response(status_code=204)


@router.put("/conversations/{conversation_id}/notifications", response_model=RoomSettingOut,
            responses={404: {"description": "no such conversation visible to you"}})
async def put_room_setting(conversation_id: str, body: RoomSetting, user: CurrentUser,
                           state: State) -> RoomSettingOut:
    """Your notification level for one conversation (all / mentions / none), and mute it until a time."""
    cid = await _put_setting(state, user, "conversation", conversation_id, body)
    return RoomSettingOut(conversation_id=cid, level=body.level, muted_until=body.muted_until)


@router.delete("/conversations/{conversation_id}/notifications", status_code=204)
async def delete_room_setting(conversation_id: str, user: CurrentUser, state: State) -> Response:
    """Back to your defaults for this conversation."""
    return await _delete_setting(state, user, "conversation", conversation_id)


@router.put("/communities/{community_id}/notifications", response_model=CommunitySettingOut,
            responses={404: {"description": "no such community of yours"}})
async def put_community_setting(community_id: str, body: RoomSetting, user: CurrentUser,
                                state: State) -> CommunitySettingOut:
    """Your notification level for one community you belong to (all: every new message / mentions /
    none), and mute it until a time."""
    cid = await _put_setting(state, user, "community", community_id, body)
    return CommunitySettingOut(community_id=cid, level=body.level, muted_until=body.muted_until)


@router.delete("/communities/{community_id}/notifications", status_code=204)
async def delete_community_setting(community_id: str, user: CurrentUser, state: State) -> Response:
    """Back to your defaults for this community."""
    return await _delete_setting(state, user, "community", community_id)


# The messages of each kind of room and their mentions: (message table, mentions table, its message column).
_MENTIONS: dict[str, tuple[str, str, str]] = {
    "conversation": ("public.messages", "public.message_mentions", "message_id"),
    "community": ("public.community_messages", "public.community_message_mentions", "community_message_id"),
}


async def _mentions(state: State, user: CurrentUser, kind: str, message_id: str) -> list[Mention]:
    messages, table, column = _MENTIONS[kind]
    mid = parse_uuid(message_id)
    async with state.db.transaction(user) as conn:
        visible = await fetch_one(conn, f"select 1 from {messages} where id = %s", (mid,))
        if visible is None:
            raise HTTPException(404, detail="message not found")
        rows = await fetch_all(conn, f"""select mm.user_id, p.display_name from {table} mm
                                          join public.profiles p on p.id = mm.user_id
                                         where mm.{column} = %s order by p.display_name""", (mid,))
    return [Mention.model_validate(r) for r in rows]


@router.get("/messages/{message_id}/mentions", response_model=list[Mention],
            responses={404: {"description": "no such message visible to you"}})
async def mentions(message_id: str, user: CurrentUser, state: State) -> list[Mention]:
    """Who a message mentions, as references to members (never to people outside the conversation)."""
    return await _mentions(state, user, "conversation", message_id)


@router.get("/community-messages/{message_id}/mentions", response_model=list[Mention],
            responses={404: {"description": "no such message visible to you"}})
async def community_mentions(message_id: str, user: CurrentUser, state: State) -> list[Mention]:
    """Who a community message mentions (never people outside the community)."""
    return await _mentions(state, user, "community", message_id)
