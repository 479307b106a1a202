"""Background jobs: the schedule arithmetic, each job's effect on real rows, the admin API that runs
them (service role only), run records, the advisory lock between workers, and the scheduler's
start/stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from service import jobs, metrics
from service.auth import TokenVerifier
from service.db import Conn, Database
from service.settings import Settings
from service.state import AppState
from tests.support import JWT_SECRET, RunningService, start_service

# --- the schedule -----------------------------------------------------------------------------------


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


@pytest.mark.parametrize(("now", "expected"), [
    (utc(2025, 6, 1, 1, 59, 59), utc(2025, 6, 1, 2, 0)),     # just before: today
    (utc(2025, 6, 1, 2, 0, 0), utc(2025, 6, 2, 2, 0)),       # exactly at: strictly after, so tomorrow
    (utc(2025, 6, 1, 2, 0, 0, 1), utc(2025, 6, 2, 2, 0)),
    (utc(2025, 6, 1, 23, 30), utc(2025, 6, 2, 2, 0)),
    (utc(2025, 12, 31, 12, 0), utc(2026, 1, 1, 2, 0)),       # across the year
    (utc(2024, 2, 28, 3, 0), utc(2024, 2, 29, 2, 0)),        # leap day
    (datetime(2025, 6, 1, 3, 30, tzinfo=timezone(timedelta(hours=2))), utc(2025, 6, 1, 2, 0)),  # 01:30 UTC
    (datetime(2025, 6, 1, 20, 0, tzinfo=timezone(timedelta(hours=-7))), utc(2025, 6, 3, 2, 0)),  # 2 June 03:00 UTC
])
def test_next_run_at_daily_0200_utc(now: datetime, expected: datetime) -> None:
    got = jobs.next_run_at(jobs.DailyAt(2), now)
    assert got == expected and got.tzinfo == UTC


def test_schedules_of_the_seed() -> None:
    assert {name: job.schedule.cron for name, job in jobs.JOBS.items()} == {
        "reset_broadcast_quotas": "0 2 * * *",            # role-based plan: cron `0 2 * * *`
        "archive_inactive_conversations": "0 2 * * *",    # archive job: daily at 2:00
        "cleanup_orphans": "0 3 * * *",                   # cleanup job: daily at 3:00
        "cleanup_attachments": "0 3 * * *",               # image cleanup queue: daily at 3:00 AM
    }
    assert jobs.next_run_at(jobs.DailyAt(3, 15), utc(2025, 6, 1, 3, 14)) == utc(2025, 6, 1, 3, 15)
    assert jobs.previous_run_at(jobs.DailyAt(3), utc(2025, 6, 1, 2, 59)) == utc(2025, 5, 31, 3, 0)
    assert jobs.previous_run_at(jobs.DailyAt(3), utc(2025, 6, 1, 3, 0)) == utc(2025, 6, 1, 3, 0)


def test_next_run_at_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        jobs.next_run_at(jobs.DailyAt(2), datetime(2025, 6, 1, 1, 0))


# --- jobs through the admin API -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def svc(new_database: Callable[..., str]) -> Iterator[RunningService]:
    """A service on its own database, so that job counts concern this module's rows only."""
    running = start_service(new_database())
    yield running
    running.stop()


def run(svc: RunningService, name: str) -> Any:
    return svc.http.post(f"/admin/jobs/{name}/run", headers=svc.service_user().headers)


def group(svc: RunningService, owner_id: Any, age: str, last_message_age: str | None = None,
          members: bool = True) -> Any:
    [(cid,)] = svc.sql(
        "insert into public.conversations (kind, title, created_by, created_at, last_message_at) values "
        "('group', 'g', %s, now() - %s::interval, now() - %s::interval) returning id",
        (owner_id, age, last_message_age),
    )
    if members:
        svc.sql("insert into public.conversation_members (conversation_id, user_id, role) values (%s, %s, 'owner')",
                (cid, owner_id))
    return cid


def test_job_endpoints_are_for_the_service_role(svc: RunningService) -> None:
    for user in (svc.user(), svc.user("admin")):
        assert svc.http.post("/admin/jobs/cleanup_orphans/run", headers=user.headers).status_code == 403
        assert svc.http.get("/admin/jobs", headers=user.headers).status_code == 403
        assert svc.http.post("/admin/trigger-archive", headers=user.headers).status_code == 403
    assert svc.http.post("/admin/jobs/cleanup_orphans/run").status_code == 401
    assert svc.http.get("/admin/jobs").status_code == 401
    r = run(svc, "drop_everything")
    assert r.status_code == 404 and "cleanup_orphans" in r.json()["detail"]


def test_archive_inactive_conversations(svc: RunningService) -> None:
    owner = svc.user()
    idle_since_creation = group(svc, owner.id, "100 days")
    idle_since_message = group(svc, owner.id, "200 days", "95 days")
    active = group(svc, owner.id, "200 days", "1 day")
    young = group(svc, owner.id, "10 days")
    r = run(svc, "archive_inactive_conversations")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["job"] == "archive_inactive_conversations" and body["outcome"] == "ok"
    assert body["affected"] == 2 and body["duration_ms"] >= 0
    archived = {c for (c,) in svc.sql("select id from public.conversations where archived_at is not null")}
    assert {idle_since_creation, idle_since_message} <= archived
    assert not {active, young} & archived
    # the seed's manual trigger does the same; nothing is left to archive
    again = svc.http.post("/admin/trigger-archive", headers=svc.service_user().headers)
    assert again.status_code == 200 and again.json()["affected"] == 0


def test_cleanup_orphans(svc: RunningService) -> None:
    owner, other = svc.user(), svc.user()
    orphan = group(svc, owner.id, "2 hours", members=False)
    being_set_up = group(svc, owner.id, "1 minute", members=False)
    kept = group(svc, owner.id, "2 hours")
    svc.sql("insert into public.rate_limit_counters (user_id, action, window_start, hits) values "
            "(%s, 'send_message', now() - interval '2 days', 5), (%s, 'send_message', now(), 1)",
            (owner.id, other.id))
    [(live,)] = svc.sql("insert into public.messages (conversation_id, sender_id, content) values (%s, %s, 'hi') "
                        "returning id", (kept, owner.id))
    [(gone,)] = svc.sql("insert into public.messages (conversation_id, sender_id, content, is_deleted) "
                        "values (%s, %s, null, true) returning id", (kept, owner.id))
    svc.sql("insert into public.message_reactions (message_id, user_id, emoji) values (%s, %s, '👍'), (%s, %s, '👍')",
            (live, owner.id, gone, owner.id))

    r = svc.http.post("/admin/trigger-cleanup", headers=svc.service_user().headers)
    assert r.status_code == 200, r.text
    assert r.json()["job"] == "cleanup_orphans" and r.json()["affected"] >= 3
    conversations = {c for (c,) in svc.sql("select id from public.conversations")}
    assert orphan not in conversations and {being_set_up, kept} <= conversations
    assert svc.sql("select user_id from public.rate_limit_counters where user_id = any(%s)",
                   ([owner.id, other.id],)) == [(other.id,)]
    assert svc.sql("select message_id from public.message_reactions where user_id = %s", (owner.id,)) == [(live,)]


def test_reset_broadcast_quotas(svc: RunningService) -> None:
    organizer = svc.user("organizer")
    svc.sql("insert into public.broadcast_quotas (user_id, phase, used, reset_at) values "
            "(%s, 'pre_show', 2, now() - interval '1 day'), (%s, 'during_show', 7, now() - interval '1 day')",
            (organizer.id, organizer.id))
    r = run(svc, "reset_broadcast_quotas")
    assert r.status_code == 200 and r.json()["affected"] >= 2
    rows = svc.sql("select used, reset_at > now() - interval '1 minute' from public.broadcast_quotas "
                   "where user_id = %s", (organizer.id,))
    assert rows == [(0, True), (0, True)]


def test_runs_are_recorded_and_listed(svc: RunningService) -> None:
    r = run(svc, "cleanup_orphans")
    assert r.status_code == 200
    [(outcome, affected, took)] = svc.sql(
        "select outcome, affected, finished_at >= started_at from msgops_meta.job_runs "
        "where job = 'cleanup_orphans' order by id desc limit 1")
    assert (outcome, affected, took) == ("ok", r.json()["affected"], True)

    listed = svc.http.get("/admin/jobs", headers=svc.service_user().headers)
    assert listed.status_code == 200
    by_name = {j["name"]: j for j in listed.json()}
    assert set(by_name) == set(jobs.JOBS)
    cleanup = by_name["cleanup_orphans"]
    assert cleanup["schedule"] == "0 3 * * *"
    assert cleanup["last_run"]["outcome"] == "ok" and cleanup["last_run"]["affected"] == r.json()["affected"]
    next_run = datetime.fromisoformat(cleanup["next_run_at"])
    assert (next_run.hour, next_run.minute) == (3, 0)
    assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(days=1)


def test_a_held_lock_means_another_worker_is_running_it(svc: RunningService) -> None:
    with psycopg.connect(svc.database_url, autocommit=True) as other_worker:
        other_worker.execute("select pg_advisory_lock(%s, hashtext('cleanup_orphans'))", (jobs._LOCK_NAMESPACE,))
        r = run(svc, "cleanup_orphans")
        assert r.status_code == 409 and r.json()["outcome"] == "skipped"
        other_worker.execute("select pg_advisory_unlock(%s, hashtext('cleanup_orphans'))", (jobs._LOCK_NAMESPACE,))
    assert run(svc, "cleanup_orphans").status_code == 200


# --- run_job and the scheduler, in process, on the same database ---------------------------------------

@pytest.fixture
async def state(svc: RunningService) -> AsyncIterator[AppState]:
    settings = Settings(database_url=svc.database_url, jwt_secret=JWT_SECRET)
    app_state = AppState(settings=settings, db=Database(svc.database_url, 1, 4),
                         verifier=TokenVerifier(JWT_SECRET, "authenticated", ("HS256",)))
    await app_state.db.open()
    yield app_state
    await app_state.db.close()


def job_named(name: str, body: Callable[[Conn, Settings], Any], schedule: jobs.DailyAt | None = None) -> jobs.Job:
    return jobs.Job(name, schedule or jobs.DailyAt(4), "test job", body)


def runs_of(svc: RunningService, name: str) -> list[tuple[Any, ...]]:
    return svc.sql("select outcome, affected, error from msgops_meta.job_runs where job = %s order by id", (name,))


async def test_a_failing_job_is_recorded_counted_and_survived(state: AppState, svc: RunningService,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    async def divide_by_zero(conn: Conn, settings: Settings) -> int:
        await conn.execute("select 1 / 0")
        return 1

    monkeypatch.setitem(jobs.JOBS, "boom", job_named("boom", divide_by_zero))
    before = metrics.registry.get_sample_value("msgops_job_runs_total", {"job": "boom", "outcome": "error"}) or 0
    result = await jobs.run_job(state, "boom")
    assert result.outcome == "error" and result.affected == 0
    assert result.error is not None and "DivisionByZero" in result.error
    [(outcome, affected, error)] = runs_of(svc, "boom")
    assert (outcome, affected) == ("error", 0) and "division by zero" in error
    after = metrics.registry.get_sample_value("msgops_job_runs_total", {"job": "boom", "outcome": "error"})
    assert after == before + 1


async def test_concurrent_runs_take_turns(state: AppState, svc: RunningService) -> None:
    async def slow(conn: Conn, settings: Settings) -> int:
        await conn.execute("select pg_sleep(0.5)")
        return 7

    job = job_named("slow", slow)
    results = await asyncio.gather(jobs.execute(state, job), jobs.execute(state, job))
    assert sorted(r.outcome for r in results) == ["ok", "skipped"]
    assert runs_of(svc, "slow") == [("ok", 7, None)]


async def test_a_scheduled_slot_runs_once(state: AppState, svc: RunningService) -> None:
    async def noop(conn: Conn, settings: Settings) -> int:
        return 0

    job = job_named("once", noop)
    slot = datetime.now(UTC) - timedelta(seconds=1)
    assert (await jobs.execute(state, job, slot=slot)).outcome == "ok"
    assert (await jobs.execute(state, job, slot=slot)).outcome == "skipped"  # another worker's turn, served
    assert (await jobs.execute(state, job)).outcome == "ok"  # a manual run always runs
    assert [r[0] for r in runs_of(svc, "once")] == ["ok", "ok"]


async def test_scheduler_catches_up_then_stops_cleanly(state: AppState, svc: RunningService) -> None:
    async def tick(conn: Conn, settings: Settings) -> int:
        return 1

    now = datetime.now(UTC)
    # scheduled an hour ago (today or, near midnight, yesterday): no run since, so start() catches up
    schedule = jobs.DailyAt((now - timedelta(hours=1)).hour, now.minute)
    scheduler = jobs.Scheduler(state, {"tick": job_named("tick", tick, schedule)})
    await scheduler.start()
    for _ in range(100):
        if runs_of(svc, "tick"):
            break
        await asyncio.sleep(0.05)
    assert runs_of(svc, "tick") == [("ok", 1, None)]
    assert scheduler.running
    await asyncio.wait_for(scheduler.stop(), timeout=5)  # the task was asleep until tomorrow
    assert not scheduler.running

    # a second start (another worker, a restart) finds the slot served
    again = jobs.Scheduler(state, {"tick": job_named("tick", tick, schedule)})
    await again.start()
    await asyncio.sleep(0.5)
    await again.stop()
    assert runs_of(svc, "tick") == [("ok", 1, None)]


def test_the_service_runs_its_scheduler(make_service: Callable[..., RunningService]) -> None:
    """With jobs on, a starting service serves the slots it missed, and shuts down without waiting
    for tomorrow."""
    import time

    running = make_service(jobs_enabled=True)
    deadline = time.monotonic() + 10
    done: set[str] = set()
    while time.monotonic() < deadline and done != set(jobs.JOBS):
        done = {j for (j,) in running.sql("select job from msgops_meta.job_runs where outcome = 'ok'")}
        time.sleep(0.1)
    assert done == set(jobs.JOBS)
    running.stop()
    assert not running.thread.is_alive()
