"""The caller's own profile, data export and erasure; erasure of any user by the service role."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field

from service.auth import Claims
from service.deps import CurrentUser, ServiceUser, State
from service.sanitize import MAX_DISPLAY_NAME_CHARS, cleaned
from service.state import AppState

router = APIRouter(tags=["users"])


class Profile(BaseModel):
    id: uuid.UUID
    display_name: str
    role: str
    created_at: datetime


class ProfileUpdate(BaseModel):
    display_name: Annotated[str, Field(min_length=1, max_length=MAX_DISPLAY_NAME_CHARS),
                            cleaned(MAX_DISPLAY_NAME_CHARS)]


class DataExport(BaseModel):
    profile: dict[str, Any] | None
    conversations: list[dict[str, Any]]
    communities: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    community_messages: list[dict[str, Any]]
    reactions: list[dict[str, Any]]


class Erasure(BaseModel):
    messages_erased: int
    community_messages_erased: int


_PROFILE = "select id, display_name, role, created_at from public.profiles where id = %s"


@router.get("/me", response_model=Profile)
async def me(user: CurrentUser, state: State) -> Profile:
    """Your profile (display name and role; the email from your token is stored but never returned)."""
    async with state.db.transaction(user) as conn:
        row = await (await conn.execute(_PROFILE, (user.sub,))).fetchone()
    if row is None:
        raise HTTPException(404, detail="not found")
    return Profile(**row)


@router.patch("/me", response_model=Profile)
async def update_me(body: ProfileUpdate, user: CurrentUser, state: State) -> Profile:
    """Change your display name."""
    async with state.db.transaction(user) as conn:
        await conn.execute("update public.profiles set display_name = %s where id = %s", (body.display_name, user.sub))
        row = await (await conn.execute(_PROFILE, (user.sub,))).fetchone()
    assert row is not None
    return Profile(**row)


@router.get("/me/export", response_model=DataExport)
async def export_me(user: CurrentUser, state: State) -> DataExport:
    """Everything the service holds about you, as JSON (data portability)."""
    async with state.db.transaction(user) as conn:
        row = await (await conn.execute("select public.export_my_data() as data")).fetchone()
    assert row is not None
    return DataExport(**row["data"])


async def _erase(state: AppState, claims: Claims, target: uuid.UUID) -> Erasure:
    async with state.db.transaction(claims) as conn:
        row = await (await conn.execute("select public.erase_user(%s) as result", (target,))).fetchone()
    assert row is not None
    state.known_users.discard(target)
    return Erasure(**row["result"])


@router.delete("/me", response_model=Erasure)
async def erase_me(user: CurrentUser, state: State) -> Erasure:
    """Erase your account: profile and memberships deleted, your messages' content removed."""
    assert user.sub is not None
    return await _erase(state, user, user.sub)


@router.delete("/admin/users/{user_id}", response_model=Erasure, responses={204: {"description": "no such user"}})
async def erase_user(user_id: uuid.UUID, admin: ServiceUser, state: State) -> Erasure | Response:
    """Erase a user (service role only): the right to be forgotten, and clean-up of test users."""
    async with state.db.transaction(admin) as conn:
        exists = await (await conn.execute("select 1 from public.profiles where id = %s", (user_id,))).fetchone()
    if not exists:
        return Response(status_code=204)
    return await _erase(state, admin, user_id)
