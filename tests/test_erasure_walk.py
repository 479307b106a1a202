"""After a user of any role is erased, every read endpoint still answers everyone else without a 5xx."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support import RunningService, User

ROLES = ("conversation_creator", "community_owner", "community_admin", "community_moderator", "member",
         "app_moderator", "organizer")


def _world(service: RunningService) -> tuple[dict[str, User], dict[str, str]]:
    """Five users with every role there is, content from each, and the ids a walk needs."""
    users = {
        "owner": service.user("organizer"),
        "admin": service.user(),
        "mod": service.user("moderator"),
        "member": service.user(),
        "other": service.user(),
    }
    owner = users["owner"]
    conv = service.http.post("/conversations", json={
        "kind": "group", "title": "erasure", "member_ids": [str(u.id) for k, u in users.items() if k != "owner"]},
        headers=owner.headers)
    assert conv.status_code == 201, conv.text
    conversation_id = conv.json()["id"]
    community = service.http.post("/communities", json={"name": "erasure walk", "description": "d"},
                                  headers=owner.headers)
    assert community.status_code == 201, community.text
    community_id = community.json()["id"]
    for key, role in (("admin", "admin"), ("mod", "moderator"), ("member", "member"), ("other", "member")):
        r = service.http.post(f"/communities/{community_id}/members", json={"user_id": str(users[key].id),
                                                                          "role": role}, headers=owner.headers)
        assert r.status_code == 201, r.text
    message_id = ""
    for user in users.values():
        sent = service.http.post(f"/conversations/{conversation_id}/messages", json={"content": "hi"},
                                 headers=user.headers)
        assert sent.status_code == 201, sent.text
        message_id = message_id or sent.json()["id"]
        r = service.http.post(f"/communities/{community_id}/messages", json={"content": "hi all"},
                              headers=user.headers)
        assert r.status_code == 201, r.text
        service.http.post(f"/messages/{sent.json()['id']}/reactions", json={"emoji": "👍"}, headers=user.headers)
    reply = service.http.post(f"/conversations/{conversation_id}/messages",
                              json={"content": "a reply", "parent_id": message_id}, headers=users["member"].headers)
    assert reply.status_code == 201, reply.text
    report = service.http.post(f"/messages/{message_id}/report", json={"reason": "spam"},
                               headers=users["member"].headers)
    assert report.status_code == 201, report.text
    service.http.post("/broadcasts", json={"audience": "everyone", "phase": "pre_show", "content": "welcome"},
                      headers=owner.headers)
    ids = {"conversation_id": conversation_id, "community_id": community_id, "message_id": message_id,
           "user_id": str(users["member"].id)}
    return users, ids


def _victim(role: str) -> str:
    return {"conversation_creator": "owner", "community_owner": "owner", "community_admin": "admin",
            "community_moderator": "mod", "member": "member", "app_moderator": "mod", "organizer": "owner"}[role]


def _read_endpoints(service: RunningService) -> list[str]:
    spec: dict[str, Any] = service.http.get("/openapi.json").json()
    return sorted(path for path, ops in spec["paths"].items() if "get" in ops)


def _walk(service: RunningService, as_user: User, ids: dict[str, str]) -> dict[str, int]:
    answers: dict[str, int] = {}
    for template in _read_endpoints(service):
        path = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], template)
        params = {"q": "hi"} if path.endswith("/search") else None
        answers[template] = service.http.get(path, params=params, headers=as_user.headers).status_code
    return answers


@pytest.mark.parametrize("role", ROLES)
def test_every_read_answers_after_an_erasure(service: RunningService, role: str) -> None:
    users, ids = _world(service)
    victim = users.pop(_victim(role))
    if role == "conversation_creator" or role == "community_owner":
        erased = service.http.delete("/me", headers=victim.headers)
    else:
        erased = service.http.delete(f"/admin/users/{victim.id}", headers=service.service_user().headers)
    assert erased.status_code == 200, erased.text
    if ids["user_id"] == str(victim.id):
        ids["user_id"] = str(users["other"].id)
    walkers = [*users.values(), service.service_user()]
    for user in walkers:
        answers = _walk(service, user, ids)
        errors = {path: status for path, status in answers.items() if status >= 500}
        assert not errors, f"{role} erased; as {user.role} {user.id}: {errors}"
    # The lists still show what the erased user created, with nobody as its creator.
    creator = None if _victim(role) == "owner" else str(users["owner"].id)
    communities = service.http.get("/communities", params={"mine": True}, headers=users["other"].headers).json()
    assert [c["created_by"] for c in communities if c["id"] == ids["community_id"]] == [creator]
    page = service.http.get("/conversations", headers=users["other"].headers).json()
    assert ids["conversation_id"] in [c["id"] for c in page["conversations"]]


async def test_a_resume_over_the_socket_after_an_erasure(service: RunningService) -> None:
    """Realtime backfill serves the erased sender's placeholders too (sender null, content null)."""
    from tests.test_realtime_helpers import Client

    users, ids = _world(service)
    victim = users.pop("member")
    assert service.http.delete("/me", headers=victim.headers).status_code == 200
    client = await Client.open(service, users["other"])
    await client.join(ids["conversation_id"], since_seq=0)
    page = service.http.get(f"/conversations/{ids['conversation_id']}/messages", headers=users["other"].headers)
    expected = len(page.json()["messages"])
    frames = [await client.next("message_received") for _ in range(expected)]
    assert any(f["message"].get("sender_id") is None and f["message"].get("is_deleted") for f in frames)
    await client.close()
