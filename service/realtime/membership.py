"""Membership, asked as the user: RLS and the SECURITY DEFINER helpers decide, never Python.

Asked once when a socket joins a room (and again on a membership change or a token refresh); the
hub caches the answer as a subscription.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from service.auth import Claims
from service.db import fetch_one
from service.realtime.delivery import COMMUNITY, CONVERSATION, RoomKind
from service.state import AppState

RoomKey = tuple[str, uuid.UUID]  # (kind name, room id)

_JOIN = {
    CONVERSATION.name: """
        select public.is_conversation_member(%(id)s) as ok,
               (select last_seq from public.conversations where id = %(id)s) as last_seq,
               array(select user_id from public.conversation_members where conversation_id = %(id)s) as members""",
    COMMUNITY.name: """
        select public.community_role(%(id)s) is not null as ok,
               (select last_seq from public.communities where id = %(id)s) as last_seq,
               null::uuid[] as members""",
}
_MEMBER_OF = {
    CONVERSATION.name: "select r as id from unnest(%s::uuid[]) r where public.is_conversation_member(r)",
    COMMUNITY.name: "select r as id from unnest(%s::uuid[]) r where public.community_role(r) is not null",
}


@dataclass(frozen=True)
class JoinCheck:
    last_seq: int
    members: list[uuid.UUID] | None  # the conversation's members (None for community channels)


async def check_join(state: AppState, claims: Claims, kind: RoomKind, room_id: uuid.UUID) -> JoinCheck | None:
    """The room's newest seq if the user may watch it; None for "no such room" and "not yours" alike."""
    async with state.db.transaction(claims) as db:
        row = await fetch_one(db, _JOIN[kind.name], {"id": room_id})
    if not row or not row["ok"] or row["last_seq"] is None:
        return None
    return JoinCheck(int(row["last_seq"]), row["members"])


async def member_of(state: AppState, claims: Claims, keys: list[RoomKey]) -> set[RoomKey]:
    """The rooms among `keys` the user may still watch."""
    allowed: set[RoomKey] = set()
    async with state.db.transaction(claims) as db:
        for kind in (CONVERSATION.name, COMMUNITY.name):
            ids = [k[1] for k in keys if k[0] == kind]
            if ids:
                cur = await db.execute(_MEMBER_OF[kind], (ids,))
                allowed |= {(kind, row["id"]) for row in await cur.fetchall()}
    return allowed
