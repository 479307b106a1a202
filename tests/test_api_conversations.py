"""Conversations REST API against the real service: create, list, details, archive, membership."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.support import RunningService, User


def create_direct(svc: RunningService, me: User, other: User) -> httpx.Response:
    return svc.http.post("/conversations", json={"kind": "direct", "user_id": str(other.id)}, headers=me.headers)


def create_group(svc: RunningService, owner: User, *members: User, title: str = "team") -> dict[str, Any]:
    r = svc.http.post("/conversations", headers=owner.headers,
                      json={"kind": "group", "title": title, "member_ids": [str(m.id) for m in members]})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def send(svc: RunningService, user: User, conv: str, content: str = "hello") -> httpx.Response:
    return svc.http.post(f"/conversations/{conv}/messages", json={"content": content}, headers=user.headers)


# --- direct conversations -------------------------------------------------------------------------

def test_direct_get_or_create_is_201_then_200_for_both_sides(service: RunningService) -> None:
    alice, bob = service.user(), service.user()
    first = create_direct(service, alice, bob)
    assert first.status_code == 201, first.text
    again = create_direct(service, alice, bob)
    reverse = create_direct(service, bob, alice)
    assert (again.status_code, reverse.status_code) == (200, 200)
    assert first.json()["id"] == again.json()["id"] == reverse.json()["id"]
    body = first.json()
    assert body["kind"] == "direct" and body["member_count"] == 2 and body["unread_count"] == 0
    members = {m["user_id"]: m for m in body["members"]}
    assert members[str(alice.id)]["role"] == "owner" and members[str(bob.id)]["role"] == "member"
    assert "email" not in first.text and "@example.test" not in first.text


def test_direct_refusals(service: RunningService) -> None:
    attendee, dealer, other = service.user("attendee"), service.user("dealer"), service.user()
    refused = create_direct(service, attendee, dealer)
    assert refused.status_code == 403
    assert "not allowed" in refused.json()["detail"]
    assert create_direct(service, dealer, attendee).status_code == 403
    # an MVP dealer may be messaged by attendees
    mvp = service.user("mvp_dealer")
    assert create_direct(service, attendee, mvp).status_code == 201
    assert create_direct(service, other, other).status_code == 400
    unknown = service.http.post("/conversations", json={"kind": "direct", "user_id": str(uuid.uuid4())},
                                headers=other.headers)
    assert unknown.status_code == 404
    assert service.http.post("/conversations", json={"kind": "direct", "user_id": str(other.id)}).status_code == 401


def test_create_validation_is_422_with_field_errors(service: RunningService) -> None:
    user = service.user()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "channel", "title": "x"}, "kind"),
        ({"kind": "direct", "user_id": "not-a-uuid"}, "user_id"),
        ({"kind": "group", "title": "x" * 101}, "title"),
        ({"kind": "group", "title": "<b></b>"}, "title"),
        ({"kind": "group", "title": "ok", "member_ids": ["nope"]}, "member_ids"),
        ({"kind": "group", "title": "ok", "surprise": 1}, "surprise"),
    ]
    for body, field in cases:
        r = service.http.post("/conversations", json=body, headers=user.headers)
        assert r.status_code == 422, (body, r.text)
        # field errors name the field (a bad discriminator names it in the message)
        assert any(field in [str(p) for p in e["loc"]] or f"'{field}'" in e["msg"] for e in r.json()["detail"]), \
            (body, r.json())


# --- groups ----------------------------------------------------------------------------------------

def test_group_create_with_members_and_sanitized_title(service: RunningService) -> None:
    owner, a, b = service.user(), service.user(), service.user()
    body = create_group(service, owner, a, b, a, owner, title="<b>Launch</b> crew<script>x</script>")
    assert body["title"] == "Launch crew"
    assert body["kind"] == "group" and body["member_count"] == 3
    roles = {m["user_id"]: m["role"] for m in body["members"]}
    assert roles == {str(owner.id): "owner", str(a.id): "member", str(b.id): "member"}
    seen = service.http.get(f"/conversations/{body['id']}", headers=a.headers)
    assert seen.status_code == 200 and seen.json()["title"] == "Launch crew"


def test_group_refuses_unknown_members_and_dm_matrix_bypass(service: RunningService) -> None:
    attendee, dealer = service.user("attendee"), service.user("dealer")
    unknown = service.http.post("/conversations", headers=attendee.headers,
                                json={"kind": "group", "title": "t", "member_ids": [str(uuid.uuid4())]})
    assert unknown.status_code == 404
    bypass = service.http.post("/conversations", headers=attendee.headers,
                               json={"kind": "group", "title": "t", "member_ids": [str(dealer.id)]})
    assert bypass.status_code == 403
    # nothing was left behind by the refused requests
    assert service.sql("select count(*) from public.conversations where created_by = %s", (attendee.id,)) == [(0,)]


def test_create_conversation_rate_limit_is_429_with_retry_after(service: RunningService) -> None:
    user = service.user()
    peers = [service.user() for _ in range(6)]
    for peer in peers[:5]:
        assert create_direct(service, user, peer).status_code == 201
    # opening an existing conversation is not a creation
    assert create_direct(service, user, peers[0]).status_code == 200
    limited = create_direct(service, user, peers[5])
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    group = service.http.post("/conversations", json={"kind": "group", "title": "t"}, headers=user.headers)
    assert group.status_code == 429 and "Retry-After" in group.headers
    assert service.sql("select count(*) from public.conversation_members where user_id = %s", (user.id,)) == [(5,)]


# --- listing ---------------------------------------------------------------------------------------

def test_list_newest_activity_first_with_unread_counts(make_service: Callable[..., RunningService]) -> None:
    svc = make_service(rate_limits={})
    me, a, b = svc.user(), svc.user(), svc.user()
    c1 = create_direct(svc, me, a).json()["id"]
    c2 = create_direct(svc, me, b).json()["id"]
    g = create_group(svc, me, a, b)["id"]
    for _ in range(3):
        assert send(svc, a, c1).status_code == 201
    assert send(svc, b, c2).status_code == 201
    assert send(svc, me, c2).status_code == 201  # my own message marks the conversation read for me
    r = svc.http.get("/conversations", headers=me.headers)
    assert r.status_code == 200
    rows = r.json()["conversations"]
    assert [c["id"] for c in rows] == [c2, c1, g]
    by_id = {c["id"]: c for c in rows}
    assert (by_id[c1]["unread_count"], by_id[c1]["last_seq"], by_id[c1]["last_read_seq"]) == (3, 3, 0)
    assert by_id[c2]["unread_count"] == 0 and by_id[c2]["last_seq"] == 2
    assert by_id[g]["member_count"] == 3 and by_id[g]["last_message_at"] is None
    assert r.json()["next_cursor"] is None
    # the others see the same conversations from their side
    a_rows = {c["id"]: c for c in svc.http.get("/conversations", headers=a.headers).json()["conversations"]}
    assert set(a_rows) == {c1, g} and a_rows[c1]["unread_count"] == 0


def test_list_pages_with_cursor(make_service: Callable[..., RunningService]) -> None:
    svc = make_service(rate_limits={})
    me = svc.user()
    ids = [create_direct(svc, me, svc.user()).json()["id"] for _ in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = svc.http.get("/conversations", params=params, headers=me.headers).json()
        seen += [c["id"] for c in page["conversations"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert svc.http.get("/conversations", params={"cursor": "garbage!"}, headers=me.headers).status_code == 400
    assert svc.http.get("/conversations", params={"limit": 101}, headers=me.headers).status_code == 422
    assert svc.http.get("/conversations").status_code == 401


# --- details ---------------------------------------------------------------------------------------

def test_details_only_for_members(service: RunningService) -> None:
    alice, bob, eve = service.user(), service.user(), service.user()
    conv = create_direct(service, alice, bob).json()["id"]
    assert service.http.get(f"/conversations/{conv}", headers=bob.headers).status_code == 200
    hidden = service.http.get(f"/conversations/{conv}", headers=eve.headers)
    missing = service.http.get(f"/conversations/{uuid.uuid4()}", headers=eve.headers)
    # a conversation you are not in is indistinguishable from one that does not exist
    assert hidden.status_code == missing.status_code == 404 and hidden.json()["detail"] == missing.json()["detail"]
    assert service.http.get("/conversations/not-a-uuid", headers=eve.headers).status_code == 404
    assert service.http.get(f"/conversations/{conv}").status_code == 401


# --- archive ---------------------------------------------------------------------------------------

def test_archive_is_per_member(service: RunningService) -> None:
    alice, bob, eve = service.user(), service.user(), service.user()
    conv = create_direct(service, alice, bob).json()["id"]
    r = service.http.patch(f"/conversations/{conv}/archive", json={"archived": True}, headers=alice.headers)
    assert r.status_code == 200 and r.json()["archived"] is True and r.json()["archived_at"]

    def listed(user: User, archived: bool) -> list[str]:
        page = service.http.get("/conversations", params={"archived": archived}, headers=user.headers).json()
        return [c["id"] for c in page["conversations"]]

    assert conv not in listed(alice, False) and conv in listed(alice, True)
    assert conv in listed(bob, False) and conv not in listed(bob, True)
    detail = service.http.get(f"/conversations/{conv}", headers=alice.headers).json()
    assert detail["archived"] is True
    r = service.http.patch(f"/conversations/{conv}/archive", json={"archived": False}, headers=alice.headers)
    assert r.json() == {"conversation_id": conv, "archived": False, "archived_at": None}
    assert conv in listed(alice, False)
    assert service.http.patch(f"/conversations/{conv}/archive", json={"archived": True},
                              headers=eve.headers).status_code == 404
    assert service.http.patch(f"/conversations/{conv}/archive", json={"archived": "maybe"},
                              headers=alice.headers).status_code == 422


# --- membership ------------------------------------------------------------------------------------

def test_owner_adds_members_others_cannot(service: RunningService) -> None:
    owner, member, newcomer, outsider = service.user(), service.user(), service.user(), service.user()
    conv = create_group(service, owner, member)["id"]
    path = f"/conversations/{conv}/members"
    r = service.http.post(path, json={"user_id": str(newcomer.id)}, headers=owner.headers)
    assert r.status_code == 201 and r.json()["user_id"] == str(newcomer.id) and r.json()["role"] == "member"
    assert "email" not in r.text
    assert service.http.post(path, json={"user_id": str(newcomer.id)}, headers=owner.headers).status_code == 409
    assert service.http.post(path, json={"user_id": str(outsider.id)}, headers=member.headers).status_code == 403
    assert service.http.post(path, json={"user_id": str(outsider.id)}, headers=outsider.headers).status_code == 404
    assert service.http.post(path, json={"user_id": str(uuid.uuid4())}, headers=owner.headers).status_code == 404
    assert service.http.post(path, json={"user_id": str(outsider.id)}).status_code == 401
    assert service.http.get(f"/conversations/{conv}", headers=newcomer.headers).json()["member_count"] == 3


def test_owner_cannot_add_someone_outside_the_dm_rules(service: RunningService) -> None:
    owner, dealer = service.user("attendee"), service.user("dealer")
    conv = create_group(service, owner)["id"]
    r = service.http.post(f"/conversations/{conv}/members", json={"user_id": str(dealer.id)}, headers=owner.headers)
    assert r.status_code == 403 and "direct-message rules" in r.json()["detail"]


def test_leave_and_remove_members(service: RunningService) -> None:
    owner, a, b, outsider = service.user(), service.user(), service.user(), service.user()
    conv = create_group(service, owner, a, b)["id"]
    base = f"/conversations/{conv}/members"
    assert send(service, a, conv).status_code == 201
    assert service.http.delete(f"{base}/{b.id}", headers=a.headers).status_code == 403
    assert service.http.delete(f"{base}/{a.id}", headers=outsider.headers).status_code == 404
    assert service.http.delete(f"{base}/{outsider.id}", headers=owner.headers).status_code == 404
    assert service.http.delete(f"{base}/{a.id}", headers=a.headers).status_code == 204  # leave
    assert service.http.delete(f"{base}/{b.id}", headers=owner.headers).status_code == 204  # removed
    for gone in (a, b):
        assert service.http.get(f"/conversations/{conv}", headers=gone.headers).status_code == 404
        assert send(service, gone, conv).status_code == 404
        assert service.http.get(f"/conversations/{conv}/messages", headers=gone.headers).status_code == 404
    assert service.http.get(f"/conversations/{conv}", headers=owner.headers).json()["member_count"] == 1
    assert service.http.delete(f"{base}/{a.id}").status_code == 401


def test_direct_conversations_cannot_be_left(service: RunningService) -> None:
    alice, bob = service.user(), service.user()
    conv = create_direct(service, alice, bob).json()["id"]
    r = service.http.delete(f"/conversations/{conv}/members/{alice.id}", headers=alice.headers)
    assert r.status_code == 409 and "archive" in r.json()["detail"]
    assert service.http.get(f"/conversations/{conv}", headers=alice.headers).status_code == 200
