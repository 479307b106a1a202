"""Your own profile, data export and erasure; erasure by the service role, also when concurrent."""

from __future__ import annotations

import json
import threading
import uuid

import psycopg

from tests.support import RunningService


def group_with(service: RunningService, owner, *members) -> str:
    r = service.http.post("/conversations", json={"kind": "group", "title": "t",
                                                  "member_ids": [str(m.id) for m in members]}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_me_and_export_never_show_the_email(service: RunningService) -> None:
    alice, bob = service.user(email="alice@example.test"), service.user()
    conv = group_with(service, alice, bob)
    service.http.post(f"/conversations/{conv}/messages", json={"content": "hello"}, headers=alice.headers)
    me = service.http.get("/me", headers=alice.headers)
    assert me.status_code == 200 and me.json()["id"] == str(alice.id) and "email" not in me.json()
    renamed = service.http.patch("/me", json={"display_name": "Alice"}, headers=alice.headers)
    assert renamed.json()["display_name"] == "Alice"
    export = service.http.get("/me/export", headers=alice.headers)
    assert export.status_code == 200
    data = export.json()
    assert [m["content"] for m in data["messages"]] == ["hello"]
    assert [c["conversation_id"] for c in data["conversations"]] == [conv]
    assert "alice@example.test" not in export.text
    assert service.http.get("/me/export").status_code == 401


def test_erasing_yourself_removes_content_and_memberships(service: RunningService) -> None:
    alice, bob = service.user(), service.user()
    conv = group_with(service, alice, bob)
    sent = service.http.post(f"/conversations/{conv}/messages", json={"content": "secret plans"},
                             headers=bob.headers).json()
    gone = service.http.delete("/me", headers=bob.headers)
    assert gone.status_code == 200 and gone.json()["messages_erased"] == 1
    assert service.sql("select count(*) from profiles where id = %s", (bob.id,)) == [(0,)]
    assert service.sql("select content, is_deleted, sender_id from messages where id = %s", (sent["id"],)) == [
        (None, True, None)]  # a placeholder stays so alice's history keeps its sequence numbers
    page = service.http.get(f"/conversations/{conv}/messages", headers=alice.headers).json()
    assert [m["content"] for m in page["messages"]] == [None]


def test_only_the_service_role_erases_others(service: RunningService) -> None:
    alice, bob = service.user(), service.user()
    assert service.http.delete(f"/admin/users/{bob.id}", headers=alice.headers).status_code == 403
    admin = service.service_user()
    assert service.http.delete(f"/admin/users/{bob.id}", headers=admin.headers).status_code == 200
    assert service.http.delete(f"/admin/users/{bob.id}", headers=admin.headers).status_code == 204
    assert service.http.delete(f"/admin/users/{uuid.uuid4()}", headers=admin.headers).status_code == 204


def test_concurrent_erasures_leave_no_empty_conversation(service: RunningService) -> None:
    """Two members erased in overlapping transactions: the later one must see the earlier's deletion."""
    alice, bob = service.user(), service.user()
    conv = group_with(service, alice, bob)
    claims = json.dumps({"role": "service_role", "sub": str(uuid.uuid4())})

    def erase_in(conn: psycopg.Connection, user_id: uuid.UUID) -> None:
        conn.execute("select set_config('role', 'service_role', true), set_config('request.jwt.claims', %s, true)",
                     (claims,))
        conn.execute("select public.erase_user(%s)", (user_id,))

    with psycopg.connect(service.database_url) as first, psycopg.connect(service.database_url) as second:
        erase_in(first, alice.id)  # open, not yet committed

        def later() -> None:
            erase_in(second, bob.id)
            second.commit()

        thread = threading.Thread(target=later)
        thread.start()
        thread.join(timeout=1)
        assert thread.is_alive(), "the second erasure must wait for the first, which holds the conversation"
        first.commit()
        thread.join(timeout=10)
    assert service.sql("select count(*) from conversations where id = %s", (conv,)) == [(0,)]
