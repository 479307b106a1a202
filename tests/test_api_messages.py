"""Messages REST API against the real service: send (idempotent, rate limited), pages, search, edit,
soft delete, read receipts, reactions, threads, and the RLS matrix seen through the API."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import HTTPException

from service import messaging
from service.auth import Claims, TokenVerifier
from service.db import Database
from service.settings import Settings, parse_rate_limits
from service.state import AppState
from tests.support import JWT_SECRET, RunningService, User


def group(svc: RunningService, owner: User, *members: User) -> str:
    r = svc.http.post("/conversations", headers=owner.headers,
                      json={"kind": "group", "title": "t", "member_ids": [str(m.id) for m in members]})
    assert r.status_code == 201, r.text
    conv: str = r.json()["id"]
    return conv


def send(svc: RunningService, user: User, conv: str, content: str = "hello", **extra: Any) -> httpx.Response:
    return svc.http.post(f"/conversations/{conv}/messages", json={"content": content, **extra},
                         headers=user.headers)


def sent(svc: RunningService, user: User, conv: str, content: str = "hello", **extra: Any) -> dict[str, Any]:
    r = send(svc, user, conv, content, **extra)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def page(svc: RunningService, user: User, conv: str, **params: Any) -> dict[str, Any]:
    r = svc.http.get(f"/conversations/{conv}/messages", params=params, headers=user.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture
def quiet(make_service: Callable[..., RunningService]) -> RunningService:
    """A service with rate limits off, for tests that send many messages."""
    return make_service(rate_limits={})


# --- send ------------------------------------------------------------------------------------------

def test_send_returns_the_stored_message(service: RunningService) -> None:
    alice, bob = service.user(), service.user()
    conv = group(service, alice, bob)
    m = sent(service, alice, conv, "hi <b>bob</b><script>steal()</script> & co")
    assert m["content"] == "hi bob &amp; co"
    assert m["seq"] == 1 and m["sender_id"] == str(alice.id) and m["conversation_id"] == conv
    assert m["reactions"] == {} and m["reply_count"] == 0 and m["is_deleted"] is False
    assert m["edited_at"] is None and m["client_msg_id"] is None and m["parent_id"] is None
    assert sent(service, bob, conv, "second")["seq"] == 2
    stored = service.sql("select content, seq from public.messages where id = %s", (m["id"],))
    assert stored == [("hi bob &amp; co", 1)]


def test_send_validation(service: RunningService) -> None:
    alice = service.user()
    conv = group(service, alice)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"content": ""}, "content"),
        ({"content": "x" * 5001}, "content"),
        ({"content": "<script>only markup</script>"}, "content"),  # empty after sanitizing
        ({"content": "<" * 2000}, "content"),  # escaping pushes it past 5000 characters
        ({"content": "ok", "client_msg_id": "x" * 101}, "client_msg_id"),
        ({"content": "ok", "client_msg_id": "a\x00b"}, "client_msg_id"),
        ({"content": "ok", "parent_id": "nope"}, "parent_id"),
        ({"content": "ok", "extra": True}, "extra"),
        ({}, "content"),
    ]
    for body, field in cases:
        r = service.http.post(f"/conversations/{conv}/messages", json=body, headers=alice.headers)
        assert r.status_code == 422, (body, r.text)
        assert any(field in e["loc"] for e in r.json()["detail"]), (body, r.json())
    assert service.sql("select count(*) from public.messages where conversation_id = %s", (conv,)) == [(0,)]


def test_send_rate_limit_is_429_with_retry_after(service: RunningService) -> None:
    alice = service.user()
    conv = group(service, alice)
    for i in range(10):
        sent(service, alice, conv, f"m{i}")
    limited = send(service, alice, conv, "one too many")
    assert limited.status_code == 429
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert "send_message" in limited.json()["detail"]
    # the refused message was not stored and left no gap in seq
    assert service.sql("select count(*), max(seq) from public.messages where conversation_id = %s",
                       (conv,)) == [(10, 10)]


def test_hourly_send_limit(make_service: Callable[..., RunningService]) -> None:
    svc = make_service(rate_limits=parse_rate_limits("send_message_hourly=3/3600"))
    alice = svc.user()
    conv = group(svc, alice)
    for _ in range(3):
        sent(svc, alice, conv)
    limited = send(svc, alice, conv)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 60


def test_idempotent_retry_returns_the_first_message(service: RunningService) -> None:
    alice = service.user()
    conv = group(service, alice)
    first = send(service, alice, conv, "once", client_msg_id="c-1")
    assert first.status_code == 201
    # retries neither store a row nor count against the 10/minute limit
    for _ in range(12):
        again = send(service, alice, conv, "once (retried)", client_msg_id="c-1")
        assert again.status_code == 200 and again.json() == first.json()
    assert send(service, alice, conv, "new", client_msg_id="c-2").status_code == 201
    assert service.sql("select count(*) from public.messages where sender_id = %s", (alice.id,)) == [(2,)]
    # the same id in another conversation is a conflict, not a replay
    other = group(service, alice)
    assert send(service, alice, other, "x", client_msg_id="c-1").status_code == 409


def test_concurrent_retries_store_exactly_one_row(quiet: RunningService) -> None:
    alice, bob = quiet.user(), quiet.user()
    conv = group(quiet, alice, bob)
    n = 16
    barrier = threading.Barrier(n)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def attempt() -> None:
        with httpx.Client(base_url=quiet.url, timeout=30) as client:
            barrier.wait()
            r = client.post(f"/conversations/{conv}/messages", headers=alice.headers,
                            json={"content": "exactly once", "client_msg_id": "retry-me"})
        with lock:
            results.append(r)

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [200] * (n - 1) + [201]
    assert len({r.json()["id"] for r in results}) == 1
    assert quiet.sql("select count(*) from public.messages where client_msg_id = 'retry-me'") == [(1,)]
    # no seq was burnt by the losers
    assert quiet.sql("select last_seq from public.conversations where id = %s", (conv,)) == [(1,)]
    assert sent(quiet, bob, conv, "next")["seq"] == 2


def test_send_that_loses_the_race_answers_with_the_winner(quiet: RunningService) -> None:
    """Deterministic version of the race: the winner's insert is open (it holds the conversation's row
    lock) when the API request arrives; once it commits, the request fails on the unique index and
    must answer with the winner's row, leaving no seq gap."""
    alice = quiet.user()
    conv = group(quiet, alice)
    result: list[httpx.Response] = []
    with psycopg.connect(quiet.database_url) as winner:
        won = winner.execute("insert into public.messages (conversation_id, sender_id, client_msg_id, content) "
                             "values (%s, %s, 'raced', 'winner') returning id", (conv, alice.id)).fetchone()
        assert won is not None
        loser = threading.Thread(target=lambda: result.append(send(quiet, alice, conv, "loser", client_msg_id="raced")))
        loser.start()
        deadline = time.monotonic() + 10
        while not quiet.sql("select 1 from pg_stat_activity "
                            "where wait_event_type = 'Lock' and datname = current_database()"):
            assert time.monotonic() < deadline, "the request never waited for the winner"
            time.sleep(0.02)
        winner.commit()
        loser.join()
    assert result[0].status_code == 200, result[0].text
    assert result[0].json()["id"] == str(won[0]) and result[0].json()["content"] == "winner"
    assert quiet.sql("select last_seq from public.conversations where id = %s", (conv,)) == [(1,)]
    assert sent(quiet, alice, conv, "next")["seq"] == 2


# --- pages -----------------------------------------------------------------------------------------

def test_pages_by_seq(quiet: RunningService) -> None:
    alice, bob, eve = quiet.user(), quiet.user(), quiet.user()
    conv = group(quiet, alice, bob)
    for i in range(1, 8):
        sent(quiet, alice, conv, f"m{i}")
    newest = page(quiet, bob, conv, limit=3)
    assert [m["seq"] for m in newest["messages"]] == [5, 6, 7] and newest["has_more"] is True
    older = page(quiet, bob, conv, limit=3, before=5)
    assert [m["seq"] for m in older["messages"]] == [2, 3, 4] and older["has_more"] is True
    oldest = page(quiet, bob, conv, limit=3, before=2)
    assert [m["seq"] for m in oldest["messages"]] == [1] and oldest["has_more"] is False
    newer = page(quiet, bob, conv, limit=4, after=2)
    assert [m["seq"] for m in newer["messages"]] == [3, 4, 5, 6] and newer["has_more"] is True
    assert page(quiet, bob, conv, since_seq=2, limit=4) == newer
    tail = page(quiet, bob, conv, after=6)
    assert [m["seq"] for m in tail["messages"]] == [7] and tail["has_more"] is False
    assert page(quiet, bob, conv, after=7) == {"messages": [], "has_more": False}
    assert page(quiet, bob, conv, after=2, before=5, limit=50)["messages"][-1]["seq"] == 4
    assert page(quiet, bob, conv)["messages"][0]["content"] == "m1"
    get = quiet.http.get
    assert get(f"/conversations/{conv}/messages", params={"limit": 201}, headers=bob.headers).status_code == 422
    assert get(f"/conversations/{conv}/messages", params={"before": -1}, headers=bob.headers).status_code == 422
    assert get(f"/conversations/{conv}/messages", params={"after": 1, "since_seq": 2},
               headers=bob.headers).status_code == 400
    assert get(f"/conversations/{conv}/messages", headers=eve.headers).status_code == 404
    assert get(f"/conversations/{uuid.uuid4()}/messages", headers=eve.headers).status_code == 404
    assert get(f"/conversations/{conv}/messages").status_code == 401


def test_paging_while_messages_arrive_sees_every_seq_once(quiet: RunningService) -> None:
    alice, bob = quiet.user(), quiet.user()
    conv = group(quiet, alice, bob)
    for i in range(30):
        sent(quiet, alice, conv, f"before {i}")
    total = 230
    done = threading.Event()

    def keep_sending() -> None:
        with httpx.Client(base_url=quiet.url, timeout=30) as client:
            for i in range(total - 30):
                r = client.post(f"/conversations/{conv}/messages", json={"content": f"live {i}"},
                                headers=alice.headers)
                assert r.status_code == 201
        done.set()

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        first = page(quiet, bob, conv, limit=7)
        backwards = [m["seq"] for m in first["messages"]]
        has_more = first["has_more"]
        while has_more:
            older = page(quiet, bob, conv, limit=7, before=backwards[0])
            backwards = [m["seq"] for m in older["messages"]] + backwards
            has_more = older["has_more"]
        forwards: list[int] = []
        cursor = backwards[-1]
        while True:
            finished = done.is_set()  # read before the page: a page after the last send is complete
            newer = page(quiet, bob, conv, limit=9, after=cursor)
            forwards += [m["seq"] for m in newer["messages"]]
            cursor = forwards[-1] if forwards else cursor
            if finished and not newer["has_more"]:
                break
    finally:
        sender.join()
    seen = backwards + forwards
    assert seen == list(range(1, total + 1))


# --- search ----------------------------------------------------------------------------------------

def test_search_ranks_and_highlights(service: RunningService) -> None:
    alice, bob, eve = service.user(), service.user(), service.user()
    conv = group(service, alice, bob)
    ids = {}
    for key, text in [("one", "Deploy the database migration tonight"),
                      ("many", "database database deploy deploy, the database deploy"),
                      ("lunch1", "lunch plans"),
                      ("tomorrow", "We will deploy tomorrow"),
                      ("lunch2", "lunch plans"),
                      ("markup", "<script>alert(1)</script><i>release</i> notes")]:
        ids[key] = sent(service, alice if key != "lunch2" else bob, conv, text)["id"]

    def search(q: str, user: User = bob, **params: Any) -> httpx.Response:
        return service.http.get(f"/conversations/{conv}/messages/search", params={"q": q, **params},
                                headers=user.headers)

    r = search("deploy database")
    assert r.status_code == 200
    hits = r.json()["results"]
    assert [h["id"] for h in hits] == [ids["many"], ids["one"]]
    assert hits[0]["rank"] > hits[1]["rank"]
    assert hits[1]["highlight"] == "<mark>Deploy</mark> the <mark>database</mark> migration tonight"
    assert [h["id"] for h in search('"deploy tomorrow"').json()["results"]] == [ids["tomorrow"]]
    assert [h["id"] for h in search("deploy -database").json()["results"]] == [ids["tomorrow"]]
    # equal rank: newest first
    assert [h["id"] for h in search("lunch").json()["results"]] == [ids["lunch2"], ids["lunch1"]]
    assert [h["id"] for h in search("lunch", limit=1).json()["results"]] == [ids["lunch2"]]
    markup = search("release").json()["results"]
    assert markup[0]["highlight"] == "<mark>release</mark> notes" and "script" not in markup[0]["highlight"]
    assert search("nothing-like-this").json()["results"] == []
    assert search("the").json()["results"] == []  # only stop words
    # deleted messages are not found
    assert service.http.delete(f"/messages/{ids['one']}", headers=alice.headers).status_code == 204
    assert [h["id"] for h in search("deploy database").json()["results"]] == [ids["many"]]
    for bad in ("", "   ", "x" * 201):
        assert search(bad).status_code == 422
    assert search("deploy", user=eve).status_code == 404
    assert service.http.get(f"/conversations/{conv}/messages/search", params={"q": "deploy"}).status_code == 401


# --- edit and delete -------------------------------------------------------------------------------

def test_edit_own_message(service: RunningService) -> None:
    alice, bob, eve = service.user(), service.user(), service.user()
    conv = group(service, alice, bob)
    m = sent(service, alice, conv, "draft")
    r = service.http.patch(f"/messages/{m['id']}", json={"content": "final <em>version</em>"}, headers=alice.headers)
    assert r.status_code == 200
    assert r.json()["content"] == "final version" and r.json()["edited_at"] and r.json()["seq"] == m["seq"]
    assert service.http.get(f"/messages/{m['id']}", headers=bob.headers).json()["content"] == "final version"
    assert service.http.patch(f"/messages/{m['id']}", json={"content": "bob was here"},
                              headers=bob.headers).status_code == 403
    assert service.http.patch(f"/messages/{m['id']}", json={"content": "eve was here"},
                              headers=eve.headers).status_code == 404
    assert service.http.patch(f"/messages/{uuid.uuid4()}", json={"content": "x"},
                              headers=alice.headers).status_code == 404
    assert service.http.patch(f"/messages/{m['id']}", json={"content": ""}, headers=alice.headers).status_code == 422
    assert service.http.patch(f"/messages/{m['id']}", json={"content": "<p></p>"},
                              headers=alice.headers).status_code == 422
    assert service.sql("select content from public.messages where id = %s", (m["id"],)) == [("final version",)]
    assert service.http.delete(f"/messages/{m['id']}", headers=alice.headers).status_code == 204
    deleted = service.http.patch(f"/messages/{m['id']}", json={"content": "undo"}, headers=alice.headers)
    assert deleted.status_code == 409


def test_soft_delete_removes_the_content_from_the_database(service: RunningService) -> None:
    alice, bob, eve = service.user(), service.user(), service.user()
    conv = group(service, alice, bob)
    m = sent(service, alice, conv, "secret plans for the launch")
    assert service.http.delete(f"/messages/{m['id']}", headers=bob.headers).status_code == 403
    assert service.http.delete(f"/messages/{m['id']}", headers=eve.headers).status_code == 404
    assert service.http.delete(f"/messages/{m['id']}").status_code == 401
    assert service.http.delete(f"/messages/{m['id']}", headers=alice.headers).status_code == 204
    row = service.sql("select content, is_deleted, deleted_by, search::text from public.messages where id = %s",
                      (m["id"],))
    assert row == [(None, True, alice.id, "")]
    placeholder = service.http.get(f"/messages/{m['id']}", headers=bob.headers).json()
    assert placeholder["content"] is None and placeholder["is_deleted"] is True and placeholder["seq"] == 1
    assert page(service, bob, conv)["messages"][0]["is_deleted"] is True
    assert service.http.delete(f"/messages/{m['id']}", headers=alice.headers).status_code == 204  # no-op
    # a member moderator deletes someone else's message; the audit log records it
    mod = service.user("moderator")
    service.http.post(f"/conversations/{conv}/members", json={"user_id": str(mod.id)}, headers=alice.headers)
    other = sent(service, bob, conv, "spam spam spam")
    assert service.http.delete(f"/messages/{other['id']}", headers=mod.headers).status_code == 204
    assert service.sql("select content, deleted_by from public.messages where id = %s",
                       (other["id"],)) == [(None, mod.id)]
    assert service.sql("select actor_id from public.audit_log where subject = %s",
                       (f"messages:{other['id']}",)) == [(mod.id,)]


# --- read receipts ---------------------------------------------------------------------------------

def test_mark_read_and_unread_counts(service: RunningService) -> None:
    alice, bob, eve = service.user(), service.user(), service.user()
    conv = group(service, alice, bob)
    msgs = [sent(service, alice, conv, f"m{i}") for i in range(5)]

    def unread(user: User) -> int:
        rows = service.http.get("/conversations", headers=user.headers).json()["conversations"]
        return int(next(c["unread_count"] for c in rows if c["id"] == conv))

    assert unread(bob) == 5 and unread(alice) == 0
    r = service.http.patch(f"/messages/{msgs[2]['id']}/read", headers=bob.headers)
    assert r.status_code == 200
    assert r.json() == {"conversation_id": conv, "last_read_seq": 3, "unread_count": 2}
    assert unread(bob) == 2
    # never backwards
    back = service.http.patch(f"/messages/{msgs[0]['id']}/read", headers=bob.headers)
    assert back.json()["last_read_seq"] == 3 and back.json()["unread_count"] == 2
    assert service.http.patch(f"/messages/{msgs[4]['id']}/read", headers=bob.headers).json()["unread_count"] == 0
    assert service.http.patch(f"/messages/{msgs[4]['id']}/read", headers=eve.headers).status_code == 404
    assert service.http.patch(f"/messages/{uuid.uuid4()}/read", headers=bob.headers).status_code == 404
    assert service.http.patch(f"/messages/{msgs[4]['id']}/read").status_code == 401


# --- reactions -------------------------------------------------------------------------------------

def test_reactions(service: RunningService) -> None:
    alice, bob, eve = service.user(), service.user(), service.user()
    conv = group(service, alice, bob)
    m = sent(service, alice, conv, "ship it")
    path = f"/messages/{m['id']}/reactions"
    r = service.http.post(path, json={"emoji": "👍"}, headers=bob.headers)
    assert r.status_code == 201 and r.json()["reactions"] == {"👍": 1}
    again = service.http.post(path, json={"emoji": "👍"}, headers=bob.headers)
    assert again.status_code == 200 and again.json()["reactions"] == {"👍": 1}
    service.http.post(path, json={"emoji": "👍"}, headers=alice.headers)
    service.http.post(path, json={"emoji": "🎉"}, headers=alice.headers)
    assert page(service, bob, conv)["messages"][0]["reactions"] == {"👍": 2, "🎉": 1}
    assert service.http.delete(f"{path}/👍", headers=bob.headers).status_code == 204
    assert service.http.delete(f"{path}/👍", headers=bob.headers).status_code == 204  # no-op
    assert service.http.get(f"/messages/{m['id']}", headers=bob.headers).json()["reactions"] == {"👍": 1, "🎉": 1}
    for bad in ("", "x" * 33, "<b>", "a b"):
        assert service.http.post(path, json={"emoji": bad}, headers=bob.headers).status_code == 422, bad
    assert service.http.post(path, json={"emoji": "👀"}, headers=eve.headers).status_code == 404
    assert service.http.delete(f"{path}/🎉", headers=eve.headers).status_code == 404
    assert service.http.post(path, json={"emoji": "👀"}).status_code == 401
    service.http.delete(f"/messages/{m['id']}", headers=alice.headers)
    assert service.http.post(path, json={"emoji": "👀"}, headers=bob.headers).status_code == 409


# --- threads ---------------------------------------------------------------------------------------

def test_thread_replies(service: RunningService) -> None:
    alice, bob, eve = service.user(), service.user(), service.user()
    conv = group(service, alice, bob)
    root = sent(service, alice, conv, "question?")
    replies = [sent(service, bob, conv, f"answer {i}", parent_id=root["id"]) for i in range(3)]
    assert all(r["parent_id"] == root["id"] for r in replies)
    assert service.http.get(f"/messages/{root['id']}", headers=bob.headers).json()["reply_count"] == 3
    thread = service.http.get(f"/messages/{root['id']}/replies", headers=alice.headers)
    assert thread.status_code == 200
    assert [m["id"] for m in thread.json()["messages"]] == [r["id"] for r in replies]
    first = service.http.get(f"/messages/{root['id']}/replies", params={"limit": 2}, headers=alice.headers).json()
    assert len(first["messages"]) == 2 and first["has_more"] is True
    rest = service.http.get(f"/messages/{root['id']}/replies", params={"after": first["messages"][-1]["seq"]},
                            headers=alice.headers).json()
    assert [m["id"] for m in rest["messages"]] == [replies[2]["id"]] and rest["has_more"] is False
    # the parent must be in the same conversation
    elsewhere = group(service, alice)
    r = send(service, alice, elsewhere, "wrong thread", parent_id=root["id"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "parent_id"]
    assert send(service, alice, conv, "no parent", parent_id=str(uuid.uuid4())).status_code == 422
    assert service.http.get(f"/messages/{root['id']}/replies", headers=eve.headers).status_code == 404


# --- the RLS matrix through the API ----------------------------------------------------------------

# actor -> expected status of (read the conversation, send to it, edit the author's message,
# delete the author's message). Only the sender rewrites text; moderators and admins remove
# others' messages where they are members (RLS), and elsewhere through the moderation queue.
MATRIX: dict[str, tuple[int, int, int, int]] = {
    "author": (200, 201, 200, 204),
    "member": (200, 201, 403, 403),
    "non_member": (404, 404, 404, 404),
    "moderator_member": (200, 201, 403, 204),
    "moderator_non_member": (404, 404, 404, 404),
    "admin_member": (200, 201, 403, 204),
    "admin_non_member": (404, 404, 404, 404),
    "anon": (401, 401, 401, 401),
}


def test_rls_matrix_through_the_api(quiet: RunningService) -> None:
    svc = quiet
    author = svc.user()
    actors: dict[str, User | None] = {
        "author": author, "member": svc.user(), "non_member": svc.user(),
        "moderator_member": svc.user("moderator"), "moderator_non_member": svc.user("moderator"),
        "admin_member": svc.user("admin"), "admin_non_member": svc.user("admin"), "anon": None,
    }
    members = [actors[k] for k in ("member", "moderator_member", "admin_member")]
    conv = group(svc, author, *[m for m in members if m])
    got: dict[str, tuple[int, int, int, int]] = {}
    for name, actor in actors.items():
        headers = actor.headers if actor else {}
        target = sent(svc, author, conv, f"target for {name}")["id"]
        got[name] = (
            svc.http.get(f"/conversations/{conv}/messages", headers=headers).status_code,
            svc.http.post(f"/conversations/{conv}/messages", json={"content": "hi"}, headers=headers).status_code,
            svc.http.patch(f"/messages/{target}", json={"content": "changed"}, headers=headers).status_code,
            svc.http.delete(f"/messages/{target}", headers=headers).status_code,
        )
    assert got == MATRIX
    # the refused edits and deletes changed nothing
    intact = svc.sql("select content from public.messages where conversation_id = %s and content like 'target%%'",
                     (conv,))
    assert sorted(r[0].removeprefix("target for ") for r in intact) == sorted(
        name for name, expected in MATRIX.items() if expected[2] != 200 and expected[3] != 204)


# --- service.messaging, as the WebSocket side calls it ----------------------------------------------

class RecordingBus:
    """Collects what the REST side publishes (the realtime bus is someone else's; this records)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def publish(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def claims(user: User) -> Claims:
    return Claims(sub=user.id, role="authenticated", raw={"sub": str(user.id), "role": "authenticated"})


async def test_messaging_functions_for_the_realtime_side(quiet: RunningService) -> None:
    alice, bob, eve = quiet.user(), quiet.user(), quiet.user()
    conv = uuid.UUID(group(quiet, alice, bob))
    settings = Settings(database_url=quiet.database_url, jwt_secret=JWT_SECRET, rate_limits={})
    state = AppState(settings=settings, db=Database(settings.database_url, 1, 2),
                     verifier=TokenVerifier(JWT_SECRET, "authenticated", ("HS256",)), bus=RecordingBus())
    await state.db.open()
    try:
        message, created = await messaging.send_message(state, claims(alice), conv, "hi <b>there</b>", "ws-1")
        assert created and message.content == "hi there" and message.seq == 1
        replay, created = await messaging.send_message(state, claims(alice), conv, "hi there", "ws-1")
        assert not created and replay.id == message.id
        second, _ = await messaging.send_message(state, claims(alice), conv, "again", None, message.id)
        assert second.parent_id == message.id and second.seq == 2
        since = await messaging.fetch_messages_since(state, claims(bob), conv, 0)
        assert [m.seq for m in since] == [1, 2] and since[0].reply_count == 1
        assert await messaging.fetch_messages_since(state, claims(bob), conv, 2) == []
        assert await messaging.mark_read(state, claims(bob), conv, 1) == 1
        assert await messaging.mark_read(state, claims(bob), conv, 99) == 0  # clamped to the last message
        for call, status in [
            (messaging.send_message(state, claims(eve), conv, "let me in"), 404),
            (messaging.send_message(state, claims(alice), conv, "<i></i>"), 422),
            (messaging.send_message(state, claims(alice), conv, "x", "\x00"), 422),
            (messaging.send_message(state, claims(alice), conv, "x", None, uuid.uuid4()), 422),
            (messaging.fetch_messages_since(state, claims(eve), conv, 0), 404),
            (messaging.mark_read(state, claims(eve), conv, 1), 404),
        ]:
            with pytest.raises(HTTPException) as refused:
                await call
            assert refused.value.status_code == status
    finally:
        await state.db.close()
    kinds = [(e["kind"], e.get("seq")) for e in state.bus.events]
    assert kinds == [("message_created", 1), ("message_created", 2), ("message_read", 1), ("message_read", 2)]
    assert state.bus.events[0]["conversation_id"] == str(conv)
    assert state.bus.events[2]["user_id"] == str(bob.id)


def test_requests_queue_for_a_database_connection_and_time_out_as_pool_timeout(database_url: str) -> None:
    """With every connection taken, the next request waits its turn and, past the timeout, fails as a
    PoolTimeout (answered 503 by the service); once a connection is back it is served at once."""
    import asyncio
    import time

    from psycopg_pool import PoolTimeout

    from service.db import Database

    async def scenario() -> tuple[float, int]:
        db = Database(database_url, min_size=1, max_size=1, timeout_s=0.3)
        await db.open()
        try:
            async with db.connection():
                started = time.monotonic()
                with pytest.raises(PoolTimeout):
                    async with db.connection():
                        pass
                waited = time.monotonic() - started
            async with db.privileged() as conn:
                cur = await conn.execute("select 41 + 1 as n")
                row = await cur.fetchone()
            return waited, row["n"] if row else 0
        finally:
            await db.close()

    waited, answer = asyncio.run(scenario())
    assert 0.25 <= waited < 3, waited
    assert answer == 42



def test_pool_opens_full_and_hands_out_the_connection_returned_last(database_url: str) -> None:
    """The pool opens every connection at start-up (MSGOPS_POOL_MIN defaults to the max) and reuses the
    one returned last, so the backends a light load needs stay warm and the rest stay idle."""
    import asyncio
    from contextlib import AsyncExitStack

    from service.app import create_app
    from service.db import Database
    from service.settings import Settings

    assert Settings.from_env(database_url=database_url).pool_min is None
    db = create_app(Settings(database_url=database_url, jwt_secret=JWT_SECRET, pool_max=3)).state.msgops.db
    assert (db.pool.min_size, db.pool.max_size) == (3, 3)

    async def pid(conn: Any) -> int:
        row = await (await conn.execute("select pg_backend_pid() as pid")).fetchone()
        return int(row["pid"])

    async def scenario() -> tuple[list[int], list[int]]:
        db = Database(database_url, min_size=4, max_size=4)
        await db.open()
        try:
            assert db.pool.get_stats()["pool_size"] == 4
            stacks = [AsyncExitStack() for _ in range(3)]
            held = [await pid(await s.enter_async_context(db.connection())) for s in stacks]
            for s in stacks:  # returned in the order taken: the third goes back last
                await s.aclose()
            served = []
            for _ in range(5):
                async with db.connection() as conn:
                    served.append(await pid(conn))
            return held, served
        finally:
            await db.close()

    held, served = asyncio.run(scenario())
    assert len(set(held)) == 3
    assert served == [held[2]] * 5, (held, served)  # first in, first out would have served a fourth, idle one
