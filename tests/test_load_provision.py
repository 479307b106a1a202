"""Provisioning for load runs, through the API and directly in the database: what it makes works
for real clients (tokens, memberships, sends), and cleanup leaves nothing behind."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from msgops.load.identities import LoadSigner
from msgops.load.plan import organizers_needed
from msgops.load.profile import parse_profile
from msgops.load.provision import Provisioned, Provisioner
from msgops.tokens import Minting
from tests.support import JWT_SECRET, RunningService

PROFILE = """
name: p
duration: 10s
provision: {{via: {via}, users: 7, group_size: 3, communities: 2}}
users: {{listener: 7, broadcaster: 1}}
pacing: {{broadcaster: 1s}}
"""


def counts(svc: RunningService, p: Provisioned) -> tuple[int, int, int]:
    ids = p.user_ids()
    profiles = svc.sql("select count(*) from public.profiles where id = any(%s::uuid[])", (ids,))[0][0]
    conversations = svc.sql("select count(*) from public.conversations where id = any(%s::uuid[])",
                            (p.conversations,))[0][0]
    communities = svc.sql("select count(*) from public.communities where id = any(%s::uuid[])",
                          (p.communities,))[0][0]
    return int(profiles), int(conversations), int(communities)


@pytest.mark.parametrize("via", ["api", "database"])
def test_provisioned_users_can_talk_and_cleanup_removes_them(make_service: Any, via: str) -> None:
    svc = make_service()  # seed rate limits on: provisioning stays within them
    profile = parse_profile(PROFILE.format(via=via), "p")
    signer = LoadSigner(Minting(), JWT_SECRET, ttl_s=600, label="msgops load t3st")
    provisioner = Provisioner(svc.url, signer, "t3st", database_url=svc.database_url)
    organizers = organizers_needed(profile)
    assert organizers == 2  # 10 planned broadcasts (+20 %) at 10 per organizer
    made = asyncio.run(provisioner.provision(profile, organizers))
    assert made.via == via
    everyone = [provisioner.identity(made.layout, n) for n in range(made.layout.total)]
    members = [i for i in everyone if i.role != "organizer"]
    # 7 users in groups of 3: the last group of one is folded into the one before it.
    assert len(members) == 7 and len(made.conversations) == 2
    assert sorted(sum(1 for m in members if m.conversation == c) for c in range(2)) == [3, 4]
    assert {i.role for i in everyone} == {"attendee", "organizer"}
    assert counts(svc, made) == (9, 2, 2)

    alice, bob = members[0], next(m for m in members[1:] if m.conversation == members[0].conversation)
    listed = svc.http.get("/conversations", headers={"Authorization": f"Bearer {bob.token}"}).json()
    assert made.conversations[bob.conversation] in [c["id"] for c in listed["conversations"]]
    sent = svc.http.post(f"/conversations/{made.conversations[alice.conversation]}/messages",
                         headers={"Authorization": f"Bearer {alice.token}"},
                         json={"content": "hello", "client_msg_id": "t1"})
    assert sent.status_code == 201, sent.text
    community = made.communities[alice.community]
    page = svc.http.get(f"/communities/{community}/messages", headers={"Authorization": f"Bearer {alice.token}"})
    assert page.status_code == 200, page.text
    organizer = next(i for i in everyone if i.role == "organizer")
    broadcast = svc.http.post("/broadcasts", headers={"Authorization": f"Bearer {organizer.token}"},
                              json={"audience": "attendees", "phase": "during_show", "content": "hi all"})
    assert broadcast.status_code == 201, broadcast.text

    assert asyncio.run(provisioner.cleanup(made)) == 9
    assert counts(svc, made) == (0, 0, 0)
    leftover = svc.sql("select count(*) from public.messages where client_msg_id = 't1' and sender_id = %s",
                       (alice.id,))[0][0]
    assert leftover == 0
