"""Communities through the real HTTP API: CRUD, membership, community messages, and an RLS matrix
(owner, community moderator, members, non-member, app admin/moderator, anonymous x read/send/edit/delete,
public and private)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import RunningService, User

Json = dict[str, Any]


def create_community(service: RunningService, owner: User, private: bool = False, **extra: Any) -> Json:
    body = {"name": extra.pop("name", f"c-{uuid.uuid4().hex[:8]}"), "is_private": private, **extra}
    r = service.http.post("/communities", json=body, headers=owner.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def send(service: RunningService, user: User, community_id: str, content: str = "hello", **extra: Any) -> Json:
    r = service.http.post(f"/communities/{community_id}/messages", json={"content": content, **extra},
                          headers=user.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def join(service: RunningService, user: User, community_id: str) -> None:
    r = service.http.post(f"/communities/{community_id}/join", headers=user.headers)
    assert r.status_code == 201, r.text


def add(service: RunningService, by: User, community_id: str, user: User, role: str = "member") -> None:
    r = service.http.post(f"/communities/{community_id}/members", json={"user_id": str(user.id), "role": role},
                          headers=by.headers)
    assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def open_service(new_database: Callable[..., str]) -> Any:
    """A service with rate limits off, for tests that send more than the seed limits allow."""
    from tests.support import start_service

    running = start_service(new_database(), rate_limits={})
    yield running
    running.stop()


# --- communities -----------------------------------------------------------------------------------

def test_create_community_makes_the_creator_owner(service: RunningService) -> None:
    owner = service.user()
    c = create_community(service, owner, name="Coin collectors", description="Rare coins & more")
    assert c["name"] == "Coin collectors"
    assert c["description"] == "Rare coins &amp; more"  # escaped like every text field
    assert c["created_by"] == str(owner.id)
    assert c["member_count"] == 1
    assert c["my_role"] == "owner"
    assert "email" not in str(c)
    rows = service.sql("select role from public.community_members where community_id = %s", (c["id"],))
    assert rows == [("owner",)]


def test_private_community_creation_and_visibility(service: RunningService) -> None:
    owner, outsider = service.user(), service.user()
    c = create_community(service, owner, private=True)
    assert c["is_private"] is True and c["my_role"] == "owner"
    assert service.http.get(f"/communities/{c['id']}", headers=owner.headers).status_code == 200
    r = service.http.get(f"/communities/{c['id']}", headers=outsider.headers)
    assert r.status_code == 404
    listed = service.http.get("/communities", params={"limit": 200}, headers=outsider.headers).json()
    assert c["id"] not in {x["id"] for x in listed}
    mine = service.http.get("/communities", params={"mine": "true"}, headers=owner.headers).json()
    assert [x["id"] for x in mine] == [c["id"]]


@pytest.mark.parametrize(("body", "field"), [
    ({"name": ""}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": "<script>alert(1)</script>"}, "name"),
    ({"name": "ok", "description": "d" * 1001}, "description"),
    ({"name": "ok", "is_private": "maybe"}, "is_private"),
    ({}, "name"),
])
def test_create_community_validation(service: RunningService, body: Json, field: str) -> None:
    user = service.user()
    r = service.http.post("/communities", json=body, headers=user.headers)
    assert r.status_code == 422, r.text
    assert any(e["loc"][-1] == field for e in r.json()["detail"]), r.json()


def test_communities_require_a_token(service: RunningService) -> None:
    assert service.http.post("/communities", json={"name": "x"}).status_code == 401
    assert service.http.get("/communities").status_code == 401
    assert service.http.get(f"/communities/{uuid.uuid4()}").status_code == 401


def test_community_creation_is_rate_limited(service: RunningService) -> None:
    user = service.user()
    for _ in range(3):  # seed: 3 communities per day
        create_community(service, user)
    r = service.http.post("/communities", json={"name": "fourth"}, headers=user.headers)
    assert r.status_code == 429
    assert 0 < int(r.headers["Retry-After"]) <= 86400
    assert service.sql("select count(*) from public.communities where created_by = %s", (user.id,)) == [(3,)]


def test_search_and_get(service: RunningService) -> None:
    owner = service.user()
    word = f"zq{uuid.uuid4().hex[:8]}"
    c = create_community(service, owner, name=f"Vintage {word} club", description="stamps")
    create_community(service, owner, name="Unrelated")
    found = service.http.get("/communities", params={"q": word}, headers=service.user().headers).json()
    assert [x["id"] for x in found] == [c["id"]]
    assert found[0]["my_role"] is None
    r = service.http.get(f"/communities/{c['id']}", headers=owner.headers)
    assert r.status_code == 200 and r.json()["name"] == f"Vintage {word} club"
    assert service.http.get("/communities/not-a-uuid", headers=owner.headers).status_code == 404
    assert service.http.get(f"/communities/{uuid.uuid4()}", headers=owner.headers).status_code == 404
    assert service.http.get("/communities", params={"limit": 0}, headers=owner.headers).status_code == 422


def test_update_community(service: RunningService) -> None:
    owner, member, outsider = service.user(), service.user(), service.user()
    c = create_community(service, owner)
    join(service, member, c["id"])
    r = service.http.patch(f"/communities/{c['id']}", json={"name": "Renamed", "is_private": True},
                           headers=owner.headers)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Renamed" and r.json()["is_private"] is True
    assert service.http.patch(f"/communities/{c['id']}", json={"name": "Mine now"},
                              headers=member.headers).status_code == 403
    assert service.http.patch(f"/communities/{c['id']}", json={"name": "x"},
                              headers=outsider.headers).status_code == 404  # now private: invisible
    assert service.http.patch(f"/communities/{c['id']}", json={}, headers=owner.headers).status_code == 422
    assert service.http.patch(f"/communities/{c['id']}", json={"name": None},
                              headers=owner.headers).status_code == 422
    assert service.sql("select name from public.communities where id = %s", (c["id"],)) == [("Renamed",)]


# --- membership ------------------------------------------------------------------------------------

def test_join_and_leave(service: RunningService) -> None:
    owner, user = service.user(), service.user()
    c = create_community(service, owner)
    r = service.http.post(f"/communities/{c['id']}/join", headers=user.headers)
    assert r.status_code == 201 and r.json()["role"] == "member"
    r = service.http.post(f"/communities/{c['id']}/join", headers=user.headers)
    assert r.status_code == 200  # already a member: idempotent
    assert service.http.get(f"/communities/{c['id']}", headers=user.headers).json()["member_count"] == 2
    assert service.http.post(f"/communities/{c['id']}/leave", headers=user.headers).status_code == 204
    assert service.http.post(f"/communities/{c['id']}/leave", headers=user.headers).status_code == 404
    r = service.http.post(f"/communities/{c['id']}/leave", headers=owner.headers)
    assert r.status_code == 409
    assert service.sql("select member_count from public.communities where id = %s", (c["id"],)) == [(1,)]


def test_private_community_cannot_be_joined(service: RunningService) -> None:
    owner, user = service.user(), service.user()
    c = create_community(service, owner, private=True)
    assert service.http.post(f"/communities/{c['id']}/join", headers=user.headers).status_code == 404
    assert service.sql("select count(*) from public.community_members where community_id = %s",
                       (c["id"],)) == [(1,)]


def test_invite_roles_and_kick(service: RunningService) -> None:
    owner, admin, mod, member, other, outsider = (service.user() for _ in range(6))
    c = create_community(service, owner, private=True)
    cid = c["id"]
    add(service, owner, cid, admin, "admin")
    add(service, admin, cid, mod, "moderator")  # community admins invite too, into private ones
    add(service, owner, cid, member)
    add(service, owner, cid, other)

    members = service.http.get(f"/communities/{cid}/members", headers=member.headers).json()
    assert [(m["user_id"], m["role"]) for m in members][:3] == [
        (str(owner.id), "owner"), (str(admin.id), "admin"), (str(mod.id), "moderator")]
    assert all("email" not in m for m in members)
    assert service.http.get(f"/communities/{cid}/members", headers=outsider.headers).status_code == 404

    # refusals when adding
    r = service.http.post(f"/communities/{cid}/members", json={"user_id": str(outsider.id)}, headers=member.headers)
    assert r.status_code == 403
    r = service.http.post(f"/communities/{cid}/members", json={"user_id": str(member.id)}, headers=owner.headers)
    assert r.status_code == 409
    r = service.http.post(f"/communities/{cid}/members", json={"user_id": str(uuid.uuid4())}, headers=owner.headers)
    assert r.status_code == 422
    r = service.http.post(f"/communities/{cid}/members", json={"user_id": str(outsider.id), "role": "owner"},
                          headers=admin.headers)
    assert r.status_code == 422
    r = service.http.post(f"/communities/{cid}/members", json={"user_id": str(outsider.id)},
                          headers=outsider.headers)
    assert r.status_code == 404

    # roles
    r = service.http.put(f"/communities/{cid}/members/{member.id}", json={"role": "moderator"},
                         headers=admin.headers)
    assert r.status_code == 200 and r.json()["role"] == "moderator"
    r = service.http.put(f"/communities/{cid}/members/{member.id}", json={"role": "member"}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["role"] == "member"
    r = service.http.put(f"/communities/{cid}/members/{owner.id}", json={"role": "member"}, headers=admin.headers)
    assert r.status_code == 403  # nobody demotes the owner
    r = service.http.put(f"/communities/{cid}/members/{other.id}", json={"role": "admin"}, headers=mod.headers)
    assert r.status_code == 403
    r = service.http.put(f"/communities/{cid}/members/{outsider.id}", json={"role": "admin"},
                         headers=owner.headers)
    assert r.status_code == 404
    r = service.http.put(f"/communities/{cid}/members/{member.id}", json={"role": "owner"}, headers=owner.headers)
    assert r.status_code == 422

    # kicks: owner/admin/moderator remove plain members only
    assert service.http.delete(f"/communities/{cid}/members/{other.id}", headers=member.headers).status_code == 403
    assert service.http.delete(f"/communities/{cid}/members/{admin.id}", headers=mod.headers).status_code == 403
    assert service.http.delete(f"/communities/{cid}/members/{owner.id}", headers=admin.headers).status_code == 403
    assert service.http.delete(f"/communities/{cid}/members/{other.id}", headers=mod.headers).status_code == 204
    assert service.http.delete(f"/communities/{cid}/members/{other.id}", headers=mod.headers).status_code == 404
    assert service.sql("select role from public.community_members where community_id = %s and user_id = %s",
                       (cid, owner.id)) == [("owner",)]
    assert service.sql("select member_count from public.communities where id = %s", (cid,)) == [(4,)]


# --- community messages ----------------------------------------------------------------------------

def test_send_and_read_messages(service: RunningService) -> None:
    owner, member = service.user(), service.user()
    c = create_community(service, owner)
    join(service, member, c["id"])
    m1 = send(service, owner, c["id"], "first <b>bold</b> <script>x()</script>")
    m2 = send(service, member, c["id"], "second")
    assert m1["content"] == "first bold" and m1["sender_id"] == str(owner.id)
    assert m2["seq"] == m1["seq"] + 1
    page = service.http.get(f"/communities/{c['id']}/messages", headers=member.headers).json()
    assert [m["id"] for m in page["messages"]] == [m1["id"], m2["id"]]
    assert page["has_more"] is False


@pytest.mark.parametrize(("content", "status"), [
    ("x" * 5000, 201), ("x" * 5001, 422), ("", 422), ("<p></p>", 422), ("<" * 2000, 422)])
def test_message_content_limits(service: RunningService, content: str, status: int) -> None:
    owner = service.user()
    c = create_community(service, owner)
    r = service.http.post(f"/communities/{c['id']}/messages", json={"content": content}, headers=owner.headers)
    assert r.status_code == status, r.text
    if status == 422:
        assert any(e["loc"][-1] == "content" for e in r.json()["detail"])


def test_send_is_idempotent_on_client_msg_id(service: RunningService) -> None:
    owner = service.user()
    c, other = create_community(service, owner), create_community(service, owner)
    first = service.http.post(f"/communities/{c['id']}/messages", json={"content": "hi", "client_msg_id": "k1"},
                              headers=owner.headers)
    again = service.http.post(f"/communities/{c['id']}/messages", json={"content": "hi", "client_msg_id": "k1"},
                              headers=owner.headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    r = service.http.post(f"/communities/{other['id']}/messages", json={"content": "hi", "client_msg_id": "k1"},
                          headers=owner.headers)
    assert r.status_code == 409
    assert service.sql("select count(*) from public.community_messages where sender_id = %s",
                       (owner.id,)) == [(1,)]


def test_message_sending_is_rate_limited(service: RunningService) -> None:
    owner = service.user()
    c = create_community(service, owner)
    for i in range(10):  # seed: 10 messages per minute
        send(service, owner, c["id"], f"m{i}")
    r = service.http.post(f"/communities/{c['id']}/messages", json={"content": "one too many"},
                          headers=owner.headers)
    assert r.status_code == 429
    assert 0 < int(r.headers["Retry-After"]) <= 60


def test_keyset_pagination(open_service: RunningService) -> None:
    service = open_service
    owner = service.user()
    c = create_community(service, owner)
    seqs = [send(service, owner, c["id"], f"m{i}")["seq"] for i in range(7)]
    url = f"/communities/{c['id']}/messages"

    latest = service.http.get(url, params={"limit": 3}, headers=owner.headers).json()
    assert [m["seq"] for m in latest["messages"]] == seqs[-3:] and latest["has_more"] is True
    older = service.http.get(url, params={"limit": 3, "before": seqs[-3]}, headers=owner.headers).json()
    assert [m["seq"] for m in older["messages"]] == seqs[1:4] and older["has_more"] is True
    oldest = service.http.get(url, params={"limit": 3, "before": seqs[1]}, headers=owner.headers).json()
    assert [m["seq"] for m in oldest["messages"]] == seqs[:1] and oldest["has_more"] is False

    newer = service.http.get(url, params={"after": seqs[1], "limit": 2}, headers=owner.headers).json()
    assert [m["seq"] for m in newer["messages"]] == seqs[2:4] and newer["has_more"] is True
    resumed = service.http.get(url, params={"since_seq": seqs[4]}, headers=owner.headers).json()
    assert [m["seq"] for m in resumed["messages"]] == seqs[5:] and resumed["has_more"] is False
    assert service.http.get(url, params={"limit": 201}, headers=owner.headers).status_code == 422


def test_edit_and_delete_own_message(service: RunningService) -> None:
    owner, member = service.user(), service.user()
    c = create_community(service, owner)
    join(service, member, c["id"])
    m = send(service, member, c["id"], "typo")
    r = service.http.patch(f"/community-messages/{m['id']}", json={"content": "fixed"}, headers=member.headers)
    assert r.status_code == 200 and r.json()["content"] == "fixed" and r.json()["edited_at"] is not None
    r = service.http.patch(f"/community-messages/{m['id']}", json={"content": "x" * 5001}, headers=member.headers)
    assert r.status_code == 422
    assert service.http.delete(f"/community-messages/{m['id']}", headers=member.headers).status_code == 204
    row = service.sql("select content, is_deleted, deleted_by from public.community_messages where id = %s",
                      (m["id"],))
    assert row == [(None, True, member.id)]
    page = service.http.get(f"/communities/{c['id']}/messages", headers=owner.headers).json()
    assert page["messages"][-1]["content"] is None and page["messages"][-1]["is_deleted"] is True
    assert service.http.patch(f"/community-messages/{m['id']}", json={"content": "back"},
                              headers=member.headers).status_code == 404
    assert service.http.delete(f"/community-messages/{m['id']}", headers=member.headers).status_code == 404


# --- the RLS matrix ----------------------------------------------------------------------------------

ACTORS = ("owner", "community_mod", "member", "other_member", "non_member", "app_admin", "app_moderator", "anon")

# action -> actor -> expected status, for a public and for a private community
EXPECTED: dict[bool, dict[str, dict[str, int]]] = {
    False: {
        "read":   {"owner": 200, "community_mod": 200, "member": 200, "other_member": 200, "non_member": 403,
                   "app_admin": 403, "app_moderator": 403, "anon": 401},
        "send":   {"owner": 201, "community_mod": 201, "member": 201, "other_member": 201, "non_member": 403,
                   "app_admin": 403, "app_moderator": 403, "anon": 401},
        "edit":   {"owner": 403, "community_mod": 403, "member": 200, "other_member": 403, "non_member": 404,
                   "app_admin": 404, "app_moderator": 404, "anon": 401},
        "delete": {"owner": 204, "community_mod": 204, "member": 204, "other_member": 403, "non_member": 404,
                   "app_admin": 204, "app_moderator": 204, "anon": 401},
    },
    True: {
        "read":   {"owner": 200, "community_mod": 200, "member": 200, "other_member": 200, "non_member": 404,
                   "app_admin": 404, "app_moderator": 404, "anon": 401},
        "send":   {"owner": 201, "community_mod": 201, "member": 201, "other_member": 201, "non_member": 404,
                   "app_admin": 404, "app_moderator": 404, "anon": 401},
        "edit":   {"owner": 403, "community_mod": 403, "member": 200, "other_member": 403, "non_member": 404,
                   "app_admin": 404, "app_moderator": 404, "anon": 401},
        "delete": {"owner": 204, "community_mod": 204, "member": 204, "other_member": 403, "non_member": 404,
                   "app_admin": 204, "app_moderator": 204, "anon": 401},
    },
}


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
def test_rls_matrix(open_service: RunningService, private: bool) -> None:
    service = open_service
    users = {
        "owner": service.user(), "community_mod": service.user(), "member": service.user(),
        "other_member": service.user(), "non_member": service.user(),
        "app_admin": service.user("admin"), "app_moderator": service.user("moderator"),
    }
    c = create_community(service, users["owner"], private=private)
    cid = c["id"]
    add(service, users["owner"], cid, users["community_mod"], "moderator")
    add(service, users["owner"], cid, users["member"])
    add(service, users["owner"], cid, users["other_member"])
    expected = EXPECTED[private]
    got: dict[str, dict[str, int]] = {action: {} for action in expected}

    for actor in ACTORS:
        headers = users[actor].headers if actor != "anon" else {}
        got["read"][actor] = service.http.get(f"/communities/{cid}/messages", headers=headers).status_code
        got["send"][actor] = service.http.post(f"/communities/{cid}/messages", json={"content": f"from {actor}"},
                                               headers=headers).status_code
        target = send(service, users["member"], cid, "the member's message")
        got["edit"][actor] = service.http.patch(f"/community-messages/{target['id']}", json={"content": "edited"},
                                                headers=headers).status_code
        victim = send(service, users["member"], cid, "to be deleted")
        got["delete"][actor] = service.http.delete(f"/community-messages/{victim['id']}",
                                                   headers=headers).status_code
        content = service.sql("select content, is_deleted from public.community_messages where id = %s",
                              (victim["id"],))
        deleted = expected["delete"][actor] == 204
        assert content == [(None, True)] if deleted else content == [("to be deleted", False)], (actor, content)

    assert got == expected
    # reads that succeeded saw every message; refusals leaked none
    senders = {r[0] for r in service.sql("select sender_id from public.community_messages where community_id = %s",
                                         (cid,))}
    assert senders == {users[a].id for a in ACTORS if expected["send"].get(a) == 201}


def test_private_community_is_invisible_everywhere_to_outsiders(open_service: RunningService) -> None:
    service = open_service
    owner, outsider = service.user(), service.user("admin")
    c = create_community(service, owner, private=True, name="Secret society")
    m = send(service, owner, c["id"], "secret")
    cid = c["id"]
    for method, url in [("GET", f"/communities/{cid}"), ("GET", f"/communities/{cid}/members"),
                        ("GET", f"/communities/{cid}/messages"), ("POST", f"/communities/{cid}/join"),
                        ("POST", f"/communities/{cid}/leave"), ("PATCH", f"/community-messages/{m['id']}")]:
        body = {"content": "x"} if method == "PATCH" else None
        r = service.http.request(method, url, json=body, headers=outsider.headers)
        assert r.status_code == 404, (method, url, r.status_code)
        assert "Secret" not in r.text
    found = service.http.get("/communities", params={"q": "secret society"}, headers=outsider.headers).json()
    assert found == []


# --- realtime: the events published after commit reach community subscribers --------------------------

def _frames_until(ws: Any, wanted: str, timeout: float = 5.0) -> Json:
    import json
    import time

    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        frame = json.loads(ws.recv(timeout=left))
        if frame.get("type") == wanted:
            return dict(frame)
    raise AssertionError(f"no {wanted!r} frame within {timeout}s")


def test_community_events_reach_realtime_subscribers(service: RunningService) -> None:
    import json

    from websockets.sync.client import connect

    owner, member = service.user(), service.user()
    c = create_community(service, owner)
    join(service, member, c["id"])
    with connect(f"{service.ws_url}/realtime", compression=None) as ws:
        ws.send(json.dumps({"type": "auth", "token": member.token}))
        _frames_until(ws, "authenticated")
        ws.send(json.dumps({"type": "join_community", "community_id": c["id"]}))
        _frames_until(ws, "joined")

        m = send(service, owner, c["id"], "live news")
        received = _frames_until(ws, "message_received")
        assert received["community_id"] == c["id"] and received["message"]["content"] == "live news"

        assert service.http.delete(f"/community-messages/{m['id']}", headers=owner.headers).status_code == 204
        frame = json.loads(ws.recv(timeout=5))
        while frame["type"] not in ("message_deleted", "message_updated"):
            frame = json.loads(ws.recv(timeout=5))
        assert frame.get("message_id", frame.get("message", {}).get("id")) == m["id"]

        # a kicked member's subscription ends at once
        r = service.http.delete(f"/communities/{c['id']}/members/{member.id}", headers=owner.headers)
        assert r.status_code == 204
        left = _frames_until(ws, "left")
        assert left["community_id"] == c["id"] and left["reason"] == "removed"
