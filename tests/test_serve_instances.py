"""Separate `msgops serve` processes on one database share realtime: a member connected to either
receives every message sent through the other."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from msgops.embedded import free_port
from service.auth import mint_token
from tests.support import JWT_SECRET
from tests.test_cli import MSGOPS, assert_one_line_error, wait_healthy


@pytest.fixture
def two_instances(tmp_path: Path, new_database: Callable[..., str]) -> Iterator[list[str]]:
    url = new_database()
    env = {**os.environ, "DATABASE_URL": url, "MSGOPS_JWT_SECRET": JWT_SECRET, "MSGOPS_RATE_LIMITS": "off",
           "MSGOPS_JOBS": "off", "MSGOPS_LOG_LEVEL": "WARNING"}
    env.pop("MSGOPS_BUS", None)
    procs: list[subprocess.Popen[str]] = []
    urls: list[str] = []
    try:
        for i in range(2):
            port = free_port()
            procs.append(subprocess.Popen([*MSGOPS, "serve", "--port", str(port), "--data-dir", str(tmp_path / str(i))],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            urls.append(f"http://127.0.0.1:{port}")
        for api, proc in zip(urls, procs, strict=True):
            wait_healthy(api, proc)
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            proc.communicate(timeout=30)


def _token() -> tuple[str, str]:
    uid = str(uuid.uuid4())
    return uid, mint_token(JWT_SECRET, uid)


async def _listen(api: str, token: str, conversation_id: str, expect: int) -> list[str]:
    ws_url = api.replace("http://", "ws://") + "/realtime"
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        await ws.send(json.dumps({"type": "join_conversation", "conversation_id": conversation_id}))
        got: list[str] = []
        async with asyncio.timeout(20):
            while len(got) < expect:
                frame = json.loads(await ws.recv())
                if frame["type"] == "joined":
                    got.append("joined")
                elif frame["type"] == "message_received":
                    got.append(frame["message"]["content"])
        return got


async def test_members_on_separate_instances_receive_each_others_messages(two_instances: list[str]) -> None:
    one, two = two_instances
    assert httpx.get(one + "/health").json()["realtime_bus"] == "postgres"
    (_, alice_token), (bob, bob_token) = _token(), _token()
    async with httpx.AsyncClient() as http:
        for api, token in ((one, alice_token), (two, bob_token)):
            assert (await http.get(api + "/me", headers={"Authorization": f"Bearer {token}"})).status_code == 200
        conv = (await http.post(one + "/conversations", json={"kind": "group", "title": "t", "member_ids": [bob]},
                                headers={"Authorization": f"Bearer {alice_token}"})).json()["id"]
        sent = [("via one", one, alice_token), ("via two", two, bob_token)] * 3
        # alice listens on instance one, bob on instance two; each message goes through either
        listeners = [asyncio.create_task(_listen(api, token, conv, 1 + len(sent)))
                     for api, token in ((one, alice_token), (two, bob_token))]
        await asyncio.sleep(1.0)  # both joined
        for i, (label, api, token) in enumerate(sent):
            r = await http.post(f"{api}/conversations/{conv}/messages", json={"content": f"{label} {i}"},
                                headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 201, r.text
        received = await asyncio.gather(*listeners)
    expected = [f"{label} {i}" for i, (label, _, _) in enumerate(sent)]
    for got in received:
        assert got[1:] == expected


def test_a_second_serve_on_one_embedded_data_directory_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MSGOPS_JWT_SECRET")}
    port = free_port()
    first = subprocess.Popen([*MSGOPS, "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", first)
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["realtime_bus"] == "memory"
        second = subprocess.run([*MSGOPS, "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d")],
                                env=env, capture_output=True, text=True, timeout=60)
        assert_one_line_error(second, 3, "another msgops serve is serving")
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)


def _health_requests(exposition: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
               if line.startswith("msgops_http_requests_total{") and 'route="/health"' in line)


def test_metrics_add_up_every_worker_and_can_want_a_token(tmp_path: Path, new_database: Callable[..., str]) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": new_database(), "MSGOPS_JWT_SECRET": JWT_SECRET, "MSGOPS_JOBS": "off",
           "MSGOPS_METRICS_TOKEN": "scrape-me", "MSGOPS_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([*MSGOPS, "serve", "--port", str(port), "--workers", "2", "--data-dir", str(tmp_path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_healthy(api, proc)
        for _ in range(40):  # a new connection each: both workers answer some
            httpx.get(api + "/health", headers={"Connection": "close"})
        assert httpx.get(api + "/metrics").status_code == 401
        assert httpx.get(api + "/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        for _ in range(6):  # whichever worker answers the scrape counts every worker's requests
            scrape = httpx.get(api + "/metrics", headers={"Authorization": "Bearer scrape-me",
                                                         "Connection": "close"})
            assert scrape.status_code == 200
            assert _health_requests(scrape.text) >= 41, scrape.text[:2000]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
