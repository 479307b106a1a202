"""Moderation: anyone reports a message they can see; moderators and admins work the queue.

Moderators act on messages outside their own conversations and communities through SECURITY
DEFINER functions that check their app role (005/007), so no read policy is widened for them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from service.db import fetch_all, fetch_one
from service.deps import CurrentUser, State, enforce_rate_limit, parse_uuid
from service.events import publish
from service.schemas.moderation import ModerationDelete, QueuedReport, Report, ReportCreate
from service.state import AppState

router = APIRouter(tags=["moderation"])

_REPORT_COLUMNS = ("id, message_id, community_message_id, reason, report_status, resolved_by, resolved_at, "
                   "created_at")
_MODERATORS_ONLY: dict[int | str, dict[str, Any]] = {403: {"description": "moderators and admins only"}}


@router.post("/messages/{message_id}/report", status_code=201, response_model=Report,
             responses={404: {"description": "no such message visible to you"},
                        409: {"description": "you already have a pending report on this message"}})
async def report_message(message_id: str, body: ReportCreate, user: CurrentUser, state: State) -> Report:
    """Report a direct/group message or a community message that you can see."""
    mid = parse_uuid(message_id)
    async with state.db.transaction(user) as conn:
        found = await fetch_one(
            conn,
            """select 'direct' as channel from public.messages where id = %(id)s
               union all
               select 'community' from public.community_messages where id = %(id)s""",
            {"id": mid},
        )
        if found is None:
            raise HTTPException(404, detail="message not found")
        await enforce_rate_limit(state, conn, "report_message")
        column = "message_id" if found["channel"] == "direct" else "community_message_id"
        row = await fetch_one(
            conn,
            f"""insert into public.reported_messages ({column}, reporter_id, reason) values (%s, %s, %s)
                returning {_REPORT_COLUMNS}""",
            (mid, user.user_id, body.reason),
        )
    return Report.model_validate(row)


@router.get("/moderation/reports", response_model=list[QueuedReport], responses=_MODERATORS_ONLY)
async def moderation_queue(
    user: CurrentUser, state: State, limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[QueuedReport]:
    """Pending reports, oldest first, with the reported text (moderators and admins)."""
    async with state.db.transaction(user) as conn:
        rows = await fetch_all(conn, "select * from public.moderation_queue(%s)", (limit,))
    return [QueuedReport.model_validate(r) for r in rows]


@router.post("/moderation/messages/{message_id}/delete", response_model=ModerationDelete,
             responses=_MODERATORS_ONLY)
async def moderate_delete(message_id: str, user: CurrentUser, state: State) -> ModerationDelete:
    """Soft-delete any message (its content leaves the database) and resolve its pending reports
    (moderators and admins)."""
    mid = parse_uuid(message_id)
    async with state.db.transaction(user) as conn:
        # The role check inside comes first: a non-moderator learns nothing about the id.
        ref = await fetch_one(conn, "select * from public.moderated_message_ref(%s)", (mid,))
        if ref is None:
            raise HTTPException(404, detail="message not found")
        done = await fetch_one(conn, "select public.moderate_delete_message(%s) as deleted", (mid,))
    deleted = bool(done and done["deleted"])
    if deleted:
        await _publish_update(state, ref["channel"], ref["container_id"], mid, ref["seq"])
    return ModerationDelete(message_id=mid, channel=ref["channel"], deleted=deleted)


async def _publish_update(state: AppState, channel: str, container_id: uuid.UUID, message_id: uuid.UUID,
                          seq: int) -> None:
    if channel == "direct":
        await publish(state, "message_updated", conversation_id=container_id, message_id=message_id, seq=seq)
    else:
        await publish(state, "community_message_updated", community_id=container_id, message_id=message_id,
                      seq=seq)


@router.post("/moderation/reports/{report_id}/dismiss", response_model=Report,
             responses={**_MODERATORS_ONLY, 404: {"description": "no pending report with this id"}})
async def dismiss_report(report_id: str, user: CurrentUser, state: State) -> Report:
    """Dismiss a pending report without acting on the message (moderators and admins)."""
    rid = parse_uuid(report_id)
    async with state.db.transaction(user) as conn:
        row = await fetch_one(conn, "select * from public.dismiss_report(%s)", (rid,))
    if row is None:
        raise HTTPException(404, detail="no pending report with this id")
    return Report.model_validate(row)
