"""The database dies under load: `kill -9` of the embedded PostgreSQL while messages are being sent.
`msgops serve` restarts it on the same port, the service recovers without a restart, `/health` says
503 within a second meanwhile, and every acknowledged message is stored exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from msgops.embedded import SERVICE_DB, free_port
from service.auth import mint_token
from tests.support import JWT_SECRET
from tests.test_cli import MSGOPS, wait_healthy

SENDERS = 4
PER_SENDER = 60


async def _send_until_acknowledged(http: httpx.AsyncClient, conv: str, headers: dict[str, str], sender: int,
                                   acked: list[str], kill_after: asyncio.Event) -> None:
    for i in range(PER_SENDER):
        client_msg_id = f"{sender}-{i}"
        deadline = time.monotonic() + 90
        while True:  # a client retries with the same client_msg_id until the service acknowledges it
            assert time.monotonic() < deadline, f"{client_msg_id} was never acknowledged"
            try:
                r = await http.post(f"/conversations/{conv}/messages", headers=headers,
                                    json={"content": f"message {client_msg_id}", "client_msg_id": client_msg_id})
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
                continue
            assert r.status_code < 500 or r.status_code == 503, (r.status_code, r.text)
            if r.status_code in (200, 201):
                acked.append(client_msg_id)
                if len(acked) >= SENDERS * PER_SENDER // 4:
                    kill_after.set()
                break
            if r.status_code == 503:
                assert "Retry-After" in r.headers
            await asyncio.sleep(0.2)


async def _health_during_outage(api: str, killed: asyncio.Event) -> list[tuple[int, float]]:
    """Every /health answer from the kill until the first 200 after it: (status, seconds)."""
    await killed.wait()
    answers: list[tuple[int, float]] = []
    async with httpx.AsyncClient(base_url=api, timeout=10) as http:
        while True:
            started = time.monotonic()
            r = await http.get("/health")
            answers.append((r.status_code, time.monotonic() - started))
            if r.status_code == 200 and any(status == 503 for status, _ in answers):
                return answers
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_a_killed_database_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "data"
    api = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MSGOPS_BUS")}
    env.update({"MSGOPS_JWT_SECRET": JWT_SECRET, "MSGOPS_RATE_LIMITS": "off", "MSGOPS_JOBS": "off",
                "MSGOPS_LOG_LEVEL": "WARNING", "MSGOPS_POOL_TIMEOUT": "2"})
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen([*MSGOPS, "serve", "--port", str(port), "--data-dir", str(data_dir)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        wait_healthy(api, proc)
        user = uuid.uuid4()
        headers = {"Authorization": f"Bearer {mint_token(JWT_SECRET, user)}"}
        async with httpx.AsyncClient(base_url=api, timeout=30) as http:
            conv = (await http.post("/conversations", json={"kind": "group", "title": "chaos"},
                                    headers=headers)).json()["id"]
            acked: list[str] = []
            kill_after, killed = asyncio.Event(), asyncio.Event()

            async def kill_postgres() -> None:
                await kill_after.wait()
                postmaster = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
                os.kill(postmaster, signal.SIGKILL)
                killed.set()

            health = asyncio.create_task(_health_during_outage(api, killed))
            await asyncio.gather(kill_postgres(), *[
                _send_until_acknowledged(http, conv, headers, s, acked, kill_after) for s in range(SENDERS)])
            answers = await asyncio.wait_for(health, timeout=60)
        assert proc.poll() is None, "the service kept running"
        outage = [(status, seconds) for status, seconds in answers if status != 200]
        assert outage and all(status == 503 and seconds < 1.0 for status, seconds in outage), answers
        pg_port = int((data_dir / "pg.port").read_text())
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg_port}/{SERVICE_DB}") as conn:
            stored = conn.execute("select client_msg_id, count(*) from public.messages where conversation_id = %s "
                                  "group by client_msg_id", (conv,)).fetchall()
        counts = dict(stored)
        assert len(acked) == SENDERS * PER_SENDER
        assert all(counts.get(c) == 1 for c in acked), {c: counts.get(c) for c in acked if counts.get(c) != 1}
        assert all(n == 1 for n in counts.values())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        log.seek(0)
        output = log.read()
        log.close()
    assert "restarted on port" in output, output
