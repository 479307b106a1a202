"""Mentions, notifications and preferences against a real service; realtime events over a real socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import RunningService, User, start_service
from tests.test_attachments import group
from tests.test_realtime_helpers import Client


@pytest.fixture(scope="module")
def svc(new_database: Callable[..., str]) -> Iterator[RunningService]:
    running = start_service(new_database(), rate_limits={})
    yield running
    running.stop()


def named(svc: RunningService, name: str) -> User:
    user = svc.user()
    svc.sql("update public.profiles set display_name = %s where id = %s", (name, user.id))
    return user


def send(svc: RunningService, user: User, conv: str, content: str, **extra: Any) -> dict[str, Any]:
    r = svc.http.post(f"/conversations/{conv}/messages", json={"content": content, **extra}, headers=user.headers)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def feed(svc: RunningService, user: User) -> dict[str, Any]:
    r = svc.http.get("/notifications", headers=user.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def direct(svc: RunningService, a: User, b: User) -> str:
    r = svc.http.post("/conversations", headers=a.headers, json={"kind": "direct", "user_id": str(b.id)})
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def test_mentions_notify_members_only(svc: RunningService) -> None:
    alice, bob, carol, mallory = (named(svc, n) for n in ("Alice A", "Bob Builder", "Carol", "Mallory"))
    conv = group(svc, alice, bob, carol)
    msg = send(svc, alice, conv, "hi @BobBuilder and @mallory, see @nobody")
    mentioned = svc.http.get(f"/messages/{msg['id']}/mentions", headers=carol.headers).json()
    assert mentioned == [{"user_id": str(bob.id), "display_name": "Bob Builder"}]
    assert [(n["kind"], n["message_id"], n["actor_name"]) for n in feed(svc, bob)["items"]] == \
        [("mention", msg["id"], "Alice A")]
    # Mallory is not in the room: no mention, no notification. Carol (rooms default: mentions only) gets none.
    assert feed(svc, mallory) == {"items": [], "unread": 0}
    assert feed(svc, carol)["items"] == []
    assert svc.http.get(f"/messages/{msg['id']}/mentions", headers=mallory.headers).status_code == 404


def test_replies_direct_messages_and_followed_rooms(svc: RunningService) -> None:
    alice, bob, carol = svc.user(), svc.user(), svc.user()
    conv = group(svc, alice, bob, carol)
    first = send(svc, bob, conv, "question")
    send(svc, alice, conv, "answer", parent_id=first["id"])
    assert [n["kind"] for n in feed(svc, bob)["items"]] == ["reply"]
    dm = direct(svc, alice, bob)
    send(svc, alice, dm, "psst")
    assert [n["kind"] for n in feed(svc, bob)["items"]] == ["direct", "reply"]
    # Carol follows the room: every message notifies her.
    assert svc.http.put(f"/conversations/{conv}/notifications", json={"level": "all"},
                        headers=carol.headers).status_code == 200
    send(svc, alice, conv, "news")
    assert [(n["kind"], n["excerpt"]) for n in feed(svc, carol)["items"]] == [("message", "news")]


def test_unread_count_and_mark_read(svc: RunningService) -> None:
    alice, bob = svc.user(), svc.user()
    dm = direct(svc, alice, bob)
    for text in ("one", "two", "three"):
        send(svc, alice, dm, text)
    body = feed(svc, bob)
    assert body["unread"] == 3
    r = svc.http.post("/notifications/read", json={"ids": [body["items"][0]["id"]]}, headers=bob.headers)
    assert r.json() == {"unread": 2}
    assert svc.http.post("/notifications/read", json={"ids": [body["items"][1]["id"]]},
                         headers=alice.headers).json() == {"unread": 0}  # not hers: nothing changes
    assert svc.http.get("/notifications/unread_count", headers=bob.headers).json() == {"unread": 2}
    assert svc.http.post("/notifications/read", json={}, headers=bob.headers).json() == {"unread": 0}
    assert len(svc.http.get("/notifications", params={"unread_only": True}, headers=bob.headers).json()["items"]) == 0


def test_preferences_mute_and_none(svc: RunningService) -> None:
    alice, bob = named(svc, "alice2"), named(svc, "bob2")
    conv = group(svc, alice, bob)
    dm = direct(svc, alice, bob)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert svc.http.put(f"/conversations/{conv}/notifications", json={"level": "all", "muted_until": later},
                        headers=bob.headers).status_code == 200
    send(svc, alice, conv, "hey @bob2")  # muted room: not even the mention notifies
    assert feed(svc, bob)["items"] == []
    assert svc.http.put("/notifications/preferences", json={"direct_messages": "none"},
                        headers=bob.headers).status_code == 200
    send(svc, alice, dm, "hello")
    assert feed(svc, bob)["items"] == []
    prefs = svc.http.get("/notifications/preferences", headers=bob.headers).json()
    assert prefs["direct_messages"] == "none" and prefs["conversations"][0]["conversation_id"] == conv
    # Back to defaults: the mention notifies again.
    assert svc.http.delete(f"/conversations/{conv}/notifications", headers=bob.headers).status_code == 204
    send(svc, alice, conv, "again @bob2")
    assert [n["kind"] for n in feed(svc, bob)["items"]] == ["mention"]
    assert svc.http.put(f"/conversations/{conv}/notifications", json={"level": "all"},
                        headers=named(svc, "outsider").headers).status_code == 404


async def test_online_users_get_a_realtime_notification_event(svc: RunningService) -> None:
    alice, bob = named(svc, "alice3"), named(svc, "bob3")
    conv = group(svc, alice, bob)
    client = await Client.open(svc, bob)
    try:
        msg = send(svc, alice, conv, "ping @bob3")
        frame = await client.next("notification")
        n = frame["notification"]
        assert (n["kind"], n["message_id"], n["actor_name"], n["excerpt"]) == ("mention", msg["id"], "alice3",
                                                                                 "ping @bob3")
    finally:
        await client.ws.close()
