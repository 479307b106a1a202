"""A send racing with the erasure of its sender's account answers 404 or 409, never 500.

Deterministic: the erasure's transaction is open (it holds the room's row lock) when the send
arrives; the send waits for that lock inside its insert, then the erasure commits. When the sender
was the room's last member the room is gone (404); otherwise the sender is (409)."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import psycopg
import pytest

from tests.support import RunningService, User


def _conversation(svc: RunningService, owner: User, *members: User) -> str:
    r = svc.http.post("/conversations", headers=owner.headers,
                      json={"kind": "group", "title": "t", "member_ids": [str(m.id) for m in members]})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _community(svc: RunningService, owner: User, *members: User) -> str:
    r = svc.http.post("/communities", headers=owner.headers, json={"name": f"c-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    cid = str(r.json()["id"])
    for m in members:
        assert svc.http.post(f"/communities/{cid}/join", headers=m.headers).status_code == 201
    return cid


def _send_during_erasure(svc: RunningService, sender: User, path: str) -> httpx.Response:
    claims = json.dumps({"role": "service_role", "sub": str(uuid.uuid4())})
    result: list[httpx.Response] = []
    with psycopg.connect(svc.database_url) as eraser:
        eraser.execute("select set_config('role', 'service_role', true), "
                       "set_config('request.jwt.claims', %s, true)", (claims,))
        eraser.execute("select public.erase_user(%s)", (sender.id,))  # open, not yet committed
        thread = threading.Thread(target=lambda: result.append(
            svc.http.post(path, json={"content": "racing the erasure"}, headers=sender.headers)))
        thread.start()
        deadline = time.monotonic() + 10
        while not svc.sql("select 1 from pg_stat_activity "
                          "where wait_event_type = 'Lock' and datname = current_database()"):
            assert time.monotonic() < deadline, "the send never waited for the erasure"
            time.sleep(0.02)
        eraser.commit()
        thread.join(timeout=10)
    assert result, "the send did not answer"
    return result[0]


@pytest.mark.parametrize("kind", ["conversation", "community"])
def test_send_to_a_room_deleted_by_the_erasure_is_not_found(service: RunningService, kind: str) -> None:
    alone = service.user()
    room = _conversation(service, alone) if kind == "conversation" else _community(service, alone)
    plural = "conversations" if kind == "conversation" else "communities"
    r = _send_during_erasure(service, alone, f"/{plural}/{room}/messages")
    assert r.status_code == 404, r.text
    assert service.sql(f"select count(*) from public.{plural} where id = %s", (room,)) == [(0,)]


@pytest.mark.parametrize("kind", ["conversation", "community"])
def test_send_by_an_erased_sender_is_a_conflict(service: RunningService, kind: str) -> None:
    sender, other = service.user(), service.user()
    room = _conversation(service, other, sender) if kind == "conversation" else _community(service, other, sender)
    plural = "conversations" if kind == "conversation" else "communities"
    r = _send_during_erasure(service, sender, f"/{plural}/{room}/messages")
    assert r.status_code == 409, r.text
    assert "erased" in r.json()["detail"]
    table = "messages" if kind == "conversation" else "community_messages"
    assert service.sql(f"select count(*) from public.{table} where content = 'racing the erasure'") == [(0,)]
