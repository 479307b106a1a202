"""Mentions, notifications and preferences against a real service; realtime events over a real socket."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
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


def community(svc: RunningService, owner: User, *members: User) -> str:
    r = svc.http.post("/communities", json={"name": "notify"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    cid = str(r.json()["id"])
    for member in members:
        assert svc.http.post(f"/communities/{cid}/join", headers=member.headers).status_code == 201
    return cid


def post(svc: RunningService, user: User, cid: str, content: str) -> dict[str, Any]:
    r = svc.http.post(f"/communities/{cid}/messages", json={"content": content}, headers=user.headers)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_community_mentions_notify_members_only(svc: RunningService) -> None:
    alice, bob, carol, mallory = (named(svc, n) for n in ("Alice C", "Bob C", "Carol C", "Mallory C"))
    cid = community(svc, alice, bob, carol)
    msg = post(svc, alice, cid, "welcome @BobC and @MalloryC")
    items = feed(svc, bob)["items"]
    assert [(n["kind"], n["community_id"], n["conversation_id"], n["message_id"], n["excerpt"]) for n in items] == \
        [("mention", cid, None, msg["id"], "welcome @BobC and @MalloryC")]
    assert svc.http.get(f"/community-messages/{msg['id']}/mentions", headers=carol.headers).json() == \
        [{"user_id": str(bob.id), "display_name": "Bob C"}]
    # Mallory is not a member: not mentioned, not notified. Carol (default for rooms: mentions) gets none.
    assert feed(svc, mallory) == {"items": [], "unread": 0}
    assert feed(svc, carol)["items"] == []
    assert svc.http.get(f"/community-messages/{msg['id']}/mentions", headers=mallory.headers).status_code == 404
    # One row points at exactly one room.
    rows = svc.sql("select conversation_id, message_id, community_id, community_message_id "
                   "from public.notifications where community_message_id = %s", (msg["id"],))
    assert [(r[0], r[1], str(r[2]), str(r[3])) for r in rows] == [(None, None, cid, msg["id"])]


def test_community_levels_and_mute(svc: RunningService) -> None:
    alice, bob, carol = named(svc, "alice4"), named(svc, "bob4"), named(svc, "carol4")
    cid = community(svc, alice, bob, carol)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert svc.http.put(f"/communities/{cid}/notifications", json={"level": "all", "muted_until": later},
                        headers=bob.headers).status_code == 200
    assert svc.http.put(f"/communities/{cid}/notifications", json={"level": "all"},
                        headers=carol.headers).status_code == 200
    post(svc, alice, cid, "news for @bob4")  # Bob muted the community: not even the mention notifies
    assert feed(svc, bob)["items"] == []
    assert [n["kind"] for n in feed(svc, carol)["items"]] == ["message"]  # Carol hears everything
    # Mentions only: a plain message does not notify, a mention does.
    assert svc.http.put(f"/communities/{cid}/notifications", json={"level": "mentions"},
                        headers=bob.headers).status_code == 200
    post(svc, alice, cid, "plain news")
    assert feed(svc, bob)["items"] == []
    post(svc, alice, cid, "@bob4 look")
    assert [n["kind"] for n in feed(svc, bob)["items"]] == ["mention"]
    assert svc.http.put(f"/communities/{cid}/notifications", json={"level": "none"},
                        headers=bob.headers).status_code == 200
    post(svc, alice, cid, "@bob4 again")
    assert len(feed(svc, bob)["items"]) == 1
    prefs = svc.http.get("/notifications/preferences", headers=bob.headers).json()
    assert [(c["community_id"], c["level"]) for c in prefs["communities"]] == [(cid, "none")]
    assert svc.http.delete(f"/communities/{cid}/notifications", headers=bob.headers).status_code == 204
    assert svc.http.get("/notifications/preferences", headers=bob.headers).json()["communities"] == []
    assert svc.http.put(f"/communities/{cid}/notifications", json={"level": "all"},
                        headers=named(svc, "outsider4").headers).status_code == 404


async def test_community_notifications_arrive_as_realtime_events(svc: RunningService) -> None:
    alice, bob = named(svc, "alice5"), named(svc, "bob5")
    cid = community(svc, alice, bob)
    client = await Client.open(svc, bob)
    try:
        msg = post(svc, alice, cid, "ping @bob5")
        n = (await client.next("notification"))["notification"]
        assert (n["kind"], n["community_id"], n["message_id"], n["excerpt"]) == ("mention", cid, msg["id"],
                                                                                   "ping @bob5")
    finally:
        await client.ws.close()


def test_channel_settings_mentions_and_notifications_are_guarded_by_rls(svc: RunningService) -> None:
    alice, bob, mallory = named(svc, "alice6"), named(svc, "bob6"), named(svc, "mallory6")
    cid = community(svc, alice, bob)
    assert svc.http.put(f"/communities/{cid}/notifications", json={"level": "all"},
                        headers=bob.headers).status_code == 200
    msg = post(svc, alice, cid, "hello @bob6 and @mallory6")

    def as_user(user: User, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(svc.database_url) as conn:  # one transaction, rolled back
            conn.execute("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)",
                         (json.dumps({"sub": str(user.id), "role": "authenticated"}),))
            rows = conn.execute(query, params).fetchall()
            conn.rollback()
            return rows

    settings = "select user_id from public.community_notification_settings where community_id = %s"
    assert as_user(bob, settings, cid) == [(bob.id,)] and as_user(alice, settings, cid) == []
    mentions = "select user_id from public.community_message_mentions where community_message_id = %s"
    assert as_user(alice, mentions, msg["id"]) == [(bob.id,)] and as_user(mallory, mentions, msg["id"]) == []
    feed_rows = "select user_id from public.notifications where community_id = %s"
    assert as_user(bob, feed_rows, cid) == [(bob.id,)] and as_user(alice, feed_rows, cid) == []
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # a setting for a community one is not in
        as_user(mallory, "insert into public.community_notification_settings (user_id, community_id) "
                         "values ((select auth.uid()), %s)", cid)
