"""Broadcasts: organizers, MVP dealers and admins address an audience, within a quota per show phase.

Who may broadcast where, and how often, is data (public.broadcast_permissions) enforced by
public.send_broadcast(); reads are narrowed to each caller's audience by RLS.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import psycopg
from fastapi import APIRouter, HTTPException, Query

from service import jobs
from service.db import fetch_all, fetch_one
from service.deps import CurrentUser, State
from service.schemas.broadcasts import Audience, Broadcast, BroadcastCreate, BroadcastQuota, Phase, PhaseQuota

router = APIRouter(tags=["broadcasts"])

_COLUMNS = "id, sender_id, audience, phase, content, created_at"


def seconds_until_quota_reset(now: datetime | None = None) -> int:
    """Retry-After for an exhausted quota: the quotas come back at the reset job's next run."""
    now = now or datetime.now(UTC)
    reset = jobs.next_run_at(jobs.JOBS["reset_broadcast_quotas"].schedule, now)
    return max(1, int((reset - now).total_seconds()) + 1)


@router.post("/broadcasts", status_code=201, response_model=Broadcast,
             responses={403: {"description": "your role may not broadcast to this audience in this phase"},
                        429: {"description": "quota for the phase used up; Retry-After: seconds to the reset"}})
async def send_broadcast(body: BroadcastCreate, user: CurrentUser, state: State) -> Broadcast:
    """Send a broadcast to `audience` in show `phase`, counted against the caller's quota for that phase."""
    try:
        async with state.db.transaction(user) as conn:
            created = await fetch_one(conn, "select public.send_broadcast(%s, %s, %s) as id",
                                      (body.audience, body.phase, body.content))
            assert created is not None
            row = await fetch_one(conn, f"select {_COLUMNS} from public.broadcasts where id = %s",
                                  (created["id"],))
    except psycopg.Error as exc:
        if exc.sqlstate == "P0429":
            raise HTTPException(429, detail=f"broadcast quota for {body.phase} is used up until the reset",
                                headers={"Retry-After": str(seconds_until_quota_reset())}) from None
        raise
    assert row is not None
    return Broadcast.model_validate(row)


@router.get("/broadcasts", response_model=list[Broadcast])
async def list_broadcasts(
    user: CurrentUser, state: State,
    phase: Phase | None = None,
    audience: Audience | None = None,
    before: Annotated[datetime | None, Query(description="only broadcasts created before this time")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[Broadcast]:
    """Broadcasts addressed to the caller (and those the caller sent), newest first."""
    async with state.db.transaction(user) as conn:
        rows = await fetch_all(
            conn,
            f"""select {_COLUMNS} from public.broadcasts
                 where (%(phase)s::text is null or phase = %(phase)s)
                   and (%(audience)s::text is null or audience = %(audience)s)
                   and (%(before)s::timestamptz is null or created_at < %(before)s)
                 order by created_at desc, id limit %(limit)s""",
            {"phase": phase, "audience": audience, "before": before, "limit": limit},
        )
    return [Broadcast.model_validate(r) for r in rows]


_QUOTA_SQL = """
select p.phase,
       coalesce(q.used, 0) as used,
       coalesce(max(bp.quota), 0) as allowed,
       coalesce(array_agg(bp.audience order by bp.audience) filter (where bp.audience is not null), '{}')
         as audiences
  from (values ('pre_show', 1), ('during_show', 2), ('post_show', 3)) as p (phase, ord)
  left join public.broadcast_permissions bp
         on bp.phase = p.phase and bp.sender_role = (select public.app_role())
  left join public.broadcast_quotas q on q.phase = p.phase and q.user_id = (select auth.uid())
 group by p.phase, p.ord, q.used
 order by p.ord
"""


@router.get("/broadcasts/quota", response_model=BroadcastQuota)
async def broadcast_quota(user: CurrentUser, state: State) -> BroadcastQuota:
    """The caller's broadcasts used and allowed in each show phase, until the next daily reset."""
    async with state.db.transaction(user) as conn:
        role = await fetch_one(conn, "select coalesce(public.app_role(), '') as role")
        rows = await fetch_all(conn, _QUOTA_SQL)
    now = datetime.now(UTC)
    return BroadcastQuota(
        role=role["role"] if role else "",
        resets_at=jobs.next_run_at(jobs.JOBS["reset_broadcast_quotas"].schedule, now),
        phases=[PhaseQuota.model_validate(r) for r in rows],
    )
