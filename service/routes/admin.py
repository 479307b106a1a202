"""Administration, for the service role only: app roles of users, and background jobs on demand.

An ordinary user's token gets 403 (deps.ServiceUser). Requests run as `service_role`, which
bypasses RLS by design; the job runs themselves use the privileged connection of service/jobs.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse

from service import jobs
from service.db import fetch_all, fetch_one
from service.deps import ServiceUser, State, parse_uuid
from service.schemas.moderation import JobInfo, JobRun, JobRunResult, RoleUpdate, UserRole

router = APIRouter(prefix="/admin", tags=["admin"])

_SERVICE_ONLY: dict[int | str, dict[str, Any]] = {403: {"description": "service role only"}}
_JOB_ANSWERS: dict[int | str, dict[str, Any]] = {**_SERVICE_ONLY, 404: {"description": "no such job"},
                409: {"model": JobRunResult, "description": "another worker is running this job"},
                500: {"model": JobRunResult, "description": "the job failed; `error` says why"}}


@router.put("/users/{user_id}/role", response_model=UserRole, responses=_SERVICE_ONLY)
async def set_user_role(user_id: str, body: RoleUpdate, admin: ServiceUser, state: State) -> UserRole:
    """Set a user's app role (attendee, dealer, mvp_dealer, organizer, moderator, admin)."""
    uid = parse_uuid(user_id)
    async with state.db.transaction(admin) as conn:
        row = await fetch_one(conn, "update public.profiles set role = %s where id = %s "
                                    "returning id, display_name, role", (body.role, uid))
    if row is None:
        raise HTTPException(404, detail="user not found")
    return UserRole.model_validate(row)


async def _run(state: State, name: str) -> JobRunResult | JSONResponse:
    if name not in jobs.JOBS:
        raise HTTPException(404, detail=f"no job {name!r}; jobs: {', '.join(jobs.JOBS)}")
    result = JobRunResult.model_validate(await jobs.run_job(state, name), from_attributes=True)
    status = {"ok": 200, "skipped": 409, "error": 500}[result.outcome]
    if status != 200:
        return JSONResponse(result.model_dump(mode="json"), status_code=status)
    return result


@router.post("/jobs/{name}/run", response_model=JobRunResult, responses=_JOB_ANSWERS)
async def run_job_now(name: str, admin: ServiceUser, state: State) -> JobRunResult | JSONResponse:
    """Run a background job now: archive_inactive_conversations, cleanup_orphans or reset_broadcast_quotas."""
    return await _run(state, name)


# The seed checklist's manual triggers (`curl -X POST .../admin/trigger-archive`), as aliases.
@router.post("/trigger-archive", response_model=JobRunResult, responses=_JOB_ANSWERS)
async def trigger_archive(admin: ServiceUser, state: State) -> JobRunResult | JSONResponse:
    """Run archive_inactive_conversations now."""
    return await _run(state, "archive_inactive_conversations")


@router.post("/trigger-cleanup", response_model=JobRunResult, responses=_JOB_ANSWERS)
async def trigger_cleanup(admin: ServiceUser, state: State) -> JobRunResult | JSONResponse:
    """Run cleanup_orphans now."""
    return await _run(state, "cleanup_orphans")


@router.get("/jobs", response_model=list[JobInfo], responses=_SERVICE_ONLY)
async def list_jobs(admin: ServiceUser, state: State) -> list[JobInfo]:
    """Each background job: what it does, its schedule (UTC), its next run and its last finished run."""
    async with state.db.transaction(admin) as conn:
        rows = await fetch_all(
            conn,
            """select distinct on (job) job, started_at, finished_at, affected, outcome, error
                 from msgops_meta.job_runs where job = any(%s) order by job, started_at desc""",
            (list(jobs.JOBS),),
        )
    last = {r["job"]: JobRun.model_validate(r) for r in rows}
    now = datetime.now(UTC)
    return [
        JobInfo(name=job.name, description=job.description, schedule=job.schedule.cron,
                next_run_at=jobs.next_run_at(job.schedule, now), last_run=last.get(job.name))
        for job in jobs.JOBS.values()
    ]
