"""Moderation, broadcasts and admin roles through the real HTTP API, including the staging flows of
the role-based messaging plan: organizer pre-show broadcast x2 (3rd blocked), MVP broadcast to
attendees (OK) and to dealers (blocked), moderator soft-deletes a message (placeholder stays)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from service.routes.broadcasts import seconds_until_quota_reset
from tests.support import RunningService, User

Json = dict[str, Any]


def community_with_message(service: RunningService, owner: User, *members: User, private: bool = False) -> Json:
    r = service.http.post("/communities", json={"name": f"c-{uuid.uuid4().hex[:6]}", "is_private": private},
                          headers=owner.headers)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    for m in members:
        r = service.http.post(f"/communities/{cid}/members", json={"user_id": str(m.id)}, headers=owner.headers)
        assert r.status_code == 201, r.text
    r = service.http.post(f"/communities/{cid}/messages", json={"content": "offensive text"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def direct_message(service: RunningService, sender: User, recipient: User, content: str = "rude dm") -> uuid.UUID:
    """A direct conversation and one message, arranged in SQL (the conversations API is not under test)."""
    key = ":".join(sorted([str(sender.id), str(recipient.id)]))
    [(conv,)] = service.sql("insert into public.conversations (kind, created_by, direct_key) "
                            "values ('direct', %s, %s) returning id", (sender.id, key))
    service.sql("insert into public.conversation_members (conversation_id, user_id, role) "
                "values (%s, %s, 'owner'), (%s, %s, 'member')", (conv, sender.id, conv, recipient.id))
    [(mid,)] = service.sql("insert into public.messages (conversation_id, sender_id, content) "
                           "values (%s, %s, %s) returning id", (conv, sender.id, content))
    return uuid.UUID(str(mid))


# --- reports -------------------------------------------------------------------------------------

def test_report_a_community_message(service: RunningService) -> None:
    owner, member, outsider = service.user(), service.user(), service.user()
    msg = community_with_message(service, owner, member, private=True)
    r = service.http.post(f"/messages/{msg['id']}/report", json={"reason": "abusive"}, headers=member.headers)
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["community_message_id"] == msg["id"] and report["message_id"] is None
    assert report["report_status"] == "pending" and report["reason"] == "abusive"
    again = service.http.post(f"/messages/{msg['id']}/report", json={"reason": "still"}, headers=member.headers)
    assert again.status_code == 409
    # a message the caller cannot see does not exist for them
    assert service.http.post(f"/messages/{msg['id']}/report", json={"reason": "x"},
                             headers=outsider.headers).status_code == 404
    assert service.http.post(f"/messages/{uuid.uuid4()}/report", json={"reason": "x"},
                             headers=member.headers).status_code == 404
    assert service.http.post("/messages/nope/report", json={"reason": "x"}, headers=member.headers).status_code == 404
    assert service.http.post(f"/messages/{msg['id']}/report", json={"reason": "x"}).status_code == 401


@pytest.mark.parametrize("reason", ["", "r" * 1001, "<b></b>"])
def test_report_reason_validation(service: RunningService, reason: str) -> None:
    owner, member = service.user(), service.user()
    msg = community_with_message(service, owner, member)
    r = service.http.post(f"/messages/{msg['id']}/report", json={"reason": reason}, headers=member.headers)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == "reason"


def test_report_a_direct_message(service: RunningService) -> None:
    sender, recipient, stranger = service.user(), service.user(), service.user()
    mid = direct_message(service, sender, recipient)
    r = service.http.post(f"/messages/{mid}/report", json={"reason": "spam"}, headers=recipient.headers)
    assert r.status_code == 201, r.text
    assert r.json()["message_id"] == str(mid) and r.json()["community_message_id"] is None
    assert service.http.post(f"/messages/{mid}/report", json={"reason": "spam"},
                             headers=stranger.headers).status_code == 404


def test_report_queue_is_for_moderators_only(service: RunningService) -> None:
    owner, member = service.user(), service.user()
    moderator, admin = service.user("moderator"), service.user("admin")
    msg = community_with_message(service, owner, member)
    r = service.http.post(f"/messages/{msg['id']}/report", json={"reason": "hate"}, headers=member.headers)
    report_id = r.json()["id"]
    for user in (member, owner, service.user("organizer")):
        q = service.http.get("/moderation/reports", headers=user.headers)
        assert q.status_code == 403, q.text
        assert "offensive" not in q.text
    assert service.http.get("/moderation/reports").status_code == 401
    for user in (moderator, admin):
        queue = service.http.get("/moderation/reports", params={"limit": 500}, headers=user.headers)
        assert queue.status_code == 200
        mine = [x for x in queue.json() if x["report_id"] == report_id]
        assert len(mine) == 1
        assert mine[0]["content"] == "offensive text" and mine[0]["sender_id"] == str(owner.id)
        assert mine[0]["reporter_id"] == str(member.id)


# --- moderator deletes ------------------------------------------------------------------------------

def test_moderator_soft_deletes_a_community_message(service: RunningService) -> None:
    owner, member, moderator = service.user(), service.user(), service.user("moderator")
    msg = community_with_message(service, owner, member, private=True)  # the moderator is not a member
    report = service.http.post(f"/messages/{msg['id']}/report", json={"reason": "x"}, headers=member.headers).json()

    assert service.http.post(f"/moderation/messages/{msg['id']}/delete",
                             headers=member.headers).status_code == 403
    r = service.http.post(f"/moderation/messages/{msg['id']}/delete", headers=moderator.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"message_id": msg["id"], "channel": "community", "deleted": True}

    row = service.sql("select content, is_deleted, deleted_by from public.community_messages where id = %s",
                      (msg["id"],))
    assert row == [(None, True, moderator.id)]  # the content left the database
    assert service.sql("select report_status, resolved_by from public.reported_messages where id = %s",
                       (report["id"],)) == [("resolved", moderator.id)]
    assert service.sql("select count(*) from public.audit_log where action = 'message.moderator_delete' "
                       "and actor_id = %s", (moderator.id,)) == [(1,)]
    # the placeholder is what members now read
    page = service.http.get(f"/communities/{msg['community_id']}/messages", headers=member.headers).json()
    assert page["messages"][0]["id"] == msg["id"]
    assert page["messages"][0]["content"] is None and page["messages"][0]["is_deleted"] is True
    # a second delete finds nothing left to delete
    again = service.http.post(f"/moderation/messages/{msg['id']}/delete", headers=moderator.headers)
    assert again.status_code == 200 and again.json()["deleted"] is False


def test_moderator_soft_deletes_a_direct_message(service: RunningService) -> None:
    sender, recipient, admin = service.user(), service.user(), service.user("admin")
    mid = direct_message(service, sender, recipient)
    r = service.http.post(f"/moderation/messages/{mid}/delete", headers=admin.headers)
    assert r.status_code == 200 and r.json()["channel"] == "direct" and r.json()["deleted"] is True
    assert service.sql("select content, is_deleted, deleted_by from public.messages where id = %s",
                       (mid,)) == [(None, True, admin.id)]


def test_moderator_delete_of_unknown_message(service: RunningService) -> None:
    moderator = service.user("moderator")
    assert service.http.post(f"/moderation/messages/{uuid.uuid4()}/delete",
                             headers=moderator.headers).status_code == 404
    # a non-moderator gets 403 whether or not the id exists: nothing to probe
    assert service.http.post(f"/moderation/messages/{uuid.uuid4()}/delete",
                             headers=service.user().headers).status_code == 403


def test_dismiss_a_report(service: RunningService) -> None:
    owner, member, moderator = service.user(), service.user(), service.user("moderator")
    msg = community_with_message(service, owner, member)
    report = service.http.post(f"/messages/{msg['id']}/report", json={"reason": "meh"}, headers=member.headers).json()
    assert service.http.post(f"/moderation/reports/{report['id']}/dismiss",
                             headers=member.headers).status_code == 403
    r = service.http.post(f"/moderation/reports/{report['id']}/dismiss", headers=moderator.headers)
    assert r.status_code == 200, r.text
    assert r.json()["report_status"] == "dismissed" and r.json()["resolved_by"] == str(moderator.id)
    assert service.http.post(f"/moderation/reports/{report['id']}/dismiss",
                             headers=moderator.headers).status_code == 404
    queue = service.http.get("/moderation/reports", params={"limit": 500}, headers=moderator.headers).json()
    assert report["id"] not in {x["report_id"] for x in queue}
    # the message itself is untouched
    assert service.sql("select content from public.community_messages where id = %s",
                       (msg["id"],)) == [("offensive text",)]
    # after a dismissal the member may report it again
    assert service.http.post(f"/messages/{msg['id']}/report", json={"reason": "again"},
                             headers=member.headers).status_code == 201


# --- broadcasts ------------------------------------------------------------------------------------

def broadcast(service: RunningService, user: User, audience: str, phase: str = "pre_show",
              content: str = "Doors open at 9") -> Any:
    return service.http.post("/broadcasts", json={"audience": audience, "phase": phase, "content": content},
                             headers=user.headers)


def test_broadcast_flows_of_the_role_based_plan(service: RunningService) -> None:
    organizer, mvp, attendee = service.user("organizer"), service.user("mvp_dealer"), service.user()
    dealer = service.user("dealer")

    # organizer pre-show broadcast x2, the 3rd blocked until the nightly reset
    assert broadcast(service, organizer, "everyone").status_code == 201
    assert broadcast(service, organizer, "attendees").status_code == 201
    third = broadcast(service, organizer, "dealers")
    assert third.status_code == 429
    retry = int(third.headers["Retry-After"])
    assert abs(retry - seconds_until_quota_reset(datetime.now(UTC))) <= 5
    assert 0 < retry <= 86400

    # MVP dealer: to attendees OK, to dealers blocked
    r = broadcast(service, mvp, "attendees", content="Booth 12: <i>sale</i>")
    assert r.status_code == 201 and r.json()["content"] == "Booth 12: sale"
    assert broadcast(service, mvp, "dealers").status_code == 403
    # attendees and plain dealers may not broadcast at all
    assert broadcast(service, attendee, "everyone").status_code == 403
    assert broadcast(service, dealer, "attendees").status_code == 403

    assert service.sql("select count(*) from public.broadcasts where sender_id = %s", (organizer.id,)) == [(2,)]
    assert service.sql("select used from public.broadcast_quotas where user_id = %s and phase = 'pre_show'",
                       (organizer.id,)) == [(2,)]


def test_broadcasts_reach_their_audience_only(service: RunningService) -> None:
    organizer, attendee, dealer = service.user("organizer"), service.user(), service.user("dealer")
    tag = uuid.uuid4().hex[:8]
    assert broadcast(service, organizer, "attendees", "during_show", f"for attendees {tag}").status_code == 201
    assert broadcast(service, organizer, "dealers", "during_show", f"for dealers {tag}").status_code == 201

    def seen(user: User) -> set[str]:
        r = service.http.get("/broadcasts", params={"limit": 200}, headers=user.headers)
        assert r.status_code == 200
        return {b["content"] for b in r.json() if tag in b["content"]}

    assert seen(attendee) == {f"for attendees {tag}"}
    assert seen(dealer) == {f"for dealers {tag}"}
    assert seen(organizer) == {f"for attendees {tag}", f"for dealers {tag}"}
    r = service.http.get("/broadcasts", params={"audience": "dealers", "phase": "during_show", "limit": 200},
                         headers=organizer.headers)
    assert {b["audience"] for b in r.json()} == {"dealers"}
    assert service.http.get("/broadcasts").status_code == 401


def test_broadcast_quota_and_its_reset(service: RunningService) -> None:
    organizer = service.user("organizer")
    for _ in range(2):
        assert broadcast(service, organizer, "everyone").status_code == 201
    quota = service.http.get("/broadcasts/quota", headers=organizer.headers).json()
    assert quota["role"] == "organizer"
    phases = {p["phase"]: p for p in quota["phases"]}
    assert phases["pre_show"] == {"phase": "pre_show", "used": 2, "allowed": 2,
                                  "audiences": ["attendees", "dealers", "everyone"]}
    assert phases["during_show"]["used"] == 0 and phases["during_show"]["allowed"] == 10
    assert phases["post_show"]["audiences"] == ["everyone"]
    resets_at = datetime.fromisoformat(quota["resets_at"])
    assert (resets_at.hour, resets_at.minute) == (2, 0) and resets_at > datetime.now(UTC)
    assert broadcast(service, organizer, "everyone").status_code == 429

    # the nightly job, run now through the admin API, makes it possible again
    r = service.http.post("/admin/jobs/reset_broadcast_quotas/run", headers=service.service_user().headers)
    assert r.status_code == 200 and r.json()["affected"] >= 1
    assert broadcast(service, organizer, "everyone").status_code == 201
    quota = service.http.get("/broadcasts/quota", headers=organizer.headers).json()
    assert quota["phases"][0]["used"] == 1

    attendee_quota = service.http.get("/broadcasts/quota", headers=service.user().headers).json()
    assert all(p["allowed"] == 0 and p["audiences"] == [] for p in attendee_quota["phases"])


@pytest.mark.parametrize("body", [
    {"audience": "vips", "phase": "pre_show", "content": "x"},
    {"audience": "everyone", "phase": "after_party", "content": "x"},
    {"audience": "everyone", "phase": "pre_show", "content": ""},
    {"audience": "everyone", "phase": "pre_show", "content": "x" * 5001},
])
def test_broadcast_validation(service: RunningService, body: Json) -> None:
    r = service.http.post("/broadcasts", json=body, headers=service.user("organizer").headers)
    assert r.status_code == 422


# --- admin: roles ------------------------------------------------------------------------------------

def test_admin_sets_app_roles_with_the_service_role_only(service: RunningService) -> None:
    user, admin_user = service.user(), service.user("admin")
    svc = service.service_user()
    r = service.http.put(f"/admin/users/{user.id}/role", json={"role": "mvp_dealer"}, headers=svc.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": str(user.id), "display_name": "", "role": "mvp_dealer"}
    assert service.sql("select role from public.profiles where id = %s", (user.id,)) == [("mvp_dealer",)]
    # the new role takes effect: an MVP dealer may broadcast to attendees
    assert broadcast(service, user, "attendees").status_code == 201

    for headers in (user.headers, admin_user.headers):  # even an app admin is not the service role
        r = service.http.put(f"/admin/users/{user.id}/role", json={"role": "admin"}, headers=headers)
        assert r.status_code == 403
    assert service.http.put(f"/admin/users/{user.id}/role", json={"role": "admin"}).status_code == 401
    assert service.http.put(f"/admin/users/{uuid.uuid4()}/role", json={"role": "admin"},
                            headers=svc.headers).status_code == 404
    assert service.http.put(f"/admin/users/{user.id}/role", json={"role": "emperor"},
                            headers=svc.headers).status_code == 422
    assert service.sql("select role from public.profiles where id = %s", (user.id,)) == [("mvp_dealer",)]
