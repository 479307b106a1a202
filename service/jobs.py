"""Background jobs: what each one does, when it runs, and the scheduler that runs them.

Every run takes a transaction-level advisory lock on a privileged connection, so that of several
workers (or a worker and an admin request) only one runs a job at a time; a scheduled run also skips
a slot another worker has already served. Finished runs land in msgops_meta.job_runs, the log and
the msgops_job_runs_total metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from service import metrics
from service.attachments.cleanup import cleanup_attachments
from service.db import Conn
from service.settings import Settings
from service.state import AppState

log = logging.getLogger("service.jobs")

_LOCK_NAMESPACE = 0x6D73  # first key of pg_try_advisory_xact_lock(int, int); the second is the job's hash
_MAX_SLEEP_S = 60.0  # re-read the wall clock at least this often (suspend, clock steps)

Outcome = Literal["ok", "error", "skipped"]


@dataclass(frozen=True)
class DailyAt:
    """A daily UTC time of day: the cron `M H * * *`."""

    hour: int
    minute: int = 0

    @property
    def cron(self) -> str:
        return f"{self.minute} {self.hour} * * *"


def next_run_at(schedule: DailyAt, now: datetime) -> datetime:
    """The first time strictly after `now` (timezone-aware) that `schedule` fires, in UTC."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    candidate = now.replace(hour=schedule.hour, minute=schedule.minute, second=0, microsecond=0)
    if candidate <= now:
        candidate += timedelta(days=1)
    return candidate


def previous_run_at(schedule: DailyAt, now: datetime) -> datetime:
    """The last time at or before `now` that `schedule` fired."""
    return next_run_at(schedule, now) - timedelta(days=1)


# --- the jobs ------------------------------------------------------------------------------------

async def _rowcount(conn: Conn, sql: str, params: tuple[object, ...] | None = None) -> int:
    cur = await conn.execute(sql, params)
    return max(cur.rowcount, 0)


async def reset_broadcast_quotas(conn: Conn, settings: Settings) -> int:
    return await _rowcount(conn, "update public.broadcast_quotas set used = 0, reset_at = now() "
                                 "where used > 0")


async def archive_inactive_conversations(conn: Conn, settings: Settings) -> int:
    # Last activity is the last message, or the creation of a conversation that never had one.
    return await _rowcount(
        conn,
        """update public.conversations set archived_at = now()
            where archived_at is null
              and coalesce(last_message_at, created_at) < now() - make_interval(days => %s)""",
        (settings.archive_after_days,),
    )


async def cleanup_orphans(conn: Conn, settings: Settings) -> int:
    # A counter whose window has passed counts as nothing; the longest configured window bounds them all.
    longest_window = max((r.window_seconds for r in settings.rate_limits.values()), default=86400)
    affected = await _rowcount(
        conn, "delete from public.rate_limit_counters where window_start < now() - make_interval(secs => %s)",
        (longest_window,),
    )
    # Conversations nobody belongs to any more (the hour of grace spares one being set up right now).
    affected += await _rowcount(
        conn,
        """delete from public.conversations c
            where c.created_at < now() - interval '1 hour'
              and not exists (select 1 from public.conversation_members m where m.conversation_id = c.id)""",
    )
    # A deleted message shows a placeholder; reactions on it are noise.
    affected += await _rowcount(
        conn,
        """delete from public.message_reactions r using public.messages m
            where m.id = r.message_id and m.is_deleted""",
    )
    return affected


@dataclass(frozen=True)
class Job:
    name: str
    schedule: DailyAt
    description: str
    run: Callable[[Conn, Settings], Awaitable[int]]


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("reset_broadcast_quotas", DailyAt(2), "set every broadcast quota back to zero used",
            reset_broadcast_quotas),
        Job("archive_inactive_conversations", DailyAt(2),
            "archive conversations without activity for settings.archive_after_days",
            archive_inactive_conversations),
        Job("cleanup_orphans", DailyAt(3),
            "delete expired rate-limit counters, conversations without members, reactions on deleted "
            "messages",
            cleanup_orphans),
        Job("cleanup_attachments", DailyAt(3),
            "delete attachments never put on a message, of deleted messages and of erased accounts, and "
            "remove queued files from storage",
            cleanup_attachments),
    )
}


# --- running one job -------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobResult:
    job: str
    outcome: Outcome
    affected: int
    duration_ms: float
    error: str | None = None


async def _try_lock(conn: Conn, name: str) -> bool:
    cur = await conn.execute("select pg_try_advisory_xact_lock(%s, hashtext(%s)) as locked",
                             (_LOCK_NAMESPACE, name))
    row = await cur.fetchone()
    return bool(row and row["locked"])


async def _slot_served(conn: Conn, name: str, slot: datetime) -> bool:
    cur = await conn.execute(
        "select 1 from msgops_meta.job_runs where job = %s and outcome = 'ok' and started_at >= %s limit 1",
        (name, slot),
    )
    return await cur.fetchone() is not None


_RECORD = """insert into msgops_meta.job_runs (job, started_at, finished_at, affected, outcome, error)
             values (%s, %s, now(), %s, %s, %s)"""


async def run_job(state: AppState, name: str) -> JobResult:
    """Run the job called `name` now (KeyError if there is none); used by the admin API."""
    return await execute(state, JOBS[name])


async def execute(state: AppState, job: Job, slot: datetime | None = None) -> JobResult:
    """Run `job` unless another run holds its lock. With `slot`, a scheduled run: skipped when some
    worker already ran the job successfully since `slot`."""
    name = job.name
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    outcome: Outcome = "skipped"
    affected, error = 0, None
    try:
        async with state.db.privileged() as conn:
            # Lock first, then look: a run that committed while we waited for the lock is seen.
            locked = await _try_lock(conn, name)
            if locked and not (slot is not None and await _slot_served(conn, name, slot)):
                affected = await job.run(conn, state.settings)
                outcome = "ok"
                await conn.execute(_RECORD, (name, started, affected, outcome, None))
    except Exception as exc:  # a failed run is recorded and reported, and the scheduler keeps going
        outcome, affected, error = "error", 0, f"{type(exc).__name__}: {exc}"[:1000]
        log.exception("job failed", extra={"job": name})
        with contextlib.suppress(Exception):
            async with state.db.privileged() as conn:
                await conn.execute(_RECORD, (name, started, 0, outcome, error))
    duration_ms = round((time.perf_counter() - t0) * 1000, 1)
    metrics.jobs_runs.labels(name, outcome).inc()
    log.log(logging.DEBUG if outcome == "skipped" else logging.INFO, "job run",
            extra={"job": name, "outcome": outcome, "affected": affected, "duration_ms": duration_ms})
    return JobResult(name, outcome, affected, duration_ms, error)


# --- the scheduler ----------------------------------------------------------------------------------

class Scheduler:
    """One asyncio task per job: sleep until its next time, run it, repeat. A slot missed while no
    worker was up (the last successful run is older than the latest slot) is run once at start."""

    def __init__(self, state: AppState, jobs: dict[str, Job] | None = None) -> None:
        self.state = state
        self.jobs = JOBS if jobs is None else jobs
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for job in self.jobs.values():
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"job:{job.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    async def _loop(self, job: Job) -> None:
        # Catch up on the latest slot; a no-op when some worker already served it.
        await execute(self.state, job, slot=previous_run_at(job.schedule, datetime.now(UTC)))
        while True:
            slot = next_run_at(job.schedule, datetime.now(UTC))
            while (remaining := (slot - datetime.now(UTC)).total_seconds()) > 0:
                await asyncio.sleep(min(remaining, _MAX_SLEEP_S))
            await execute(self.state, job, slot=slot)
