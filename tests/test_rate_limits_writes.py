"""Every write a user can repeat is rate limited: edits, reactions, member additions, reports.
Reactions are one emoji."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from service.settings import parse_rate_limits
from tests.support import RunningService, User

TIGHT = "edit_message=2/60,add_reaction=2/60,add_member=2/60,report_message=2/60"


@pytest.fixture(scope="module")
def tight(new_database: Callable[..., str]) -> Any:
    from tests.support import start_service

    running = start_service(new_database(), rate_limits=parse_rate_limits(TIGHT))
    yield running
    running.stop()


def _third_is_429(attempt: Callable[[int], Any]) -> None:
    answers = [attempt(i) for i in range(3)]
    assert [a.status_code < 300 for a in answers[:2]] == [True, True], [a.text for a in answers]
    assert answers[2].status_code == 429 and int(answers[2].headers["Retry-After"]) > 0, answers[2].text


def _group(service: RunningService, owner: User, *members: User) -> str:
    r = service.http.post("/conversations", json={"kind": "group", "title": "t",
                                                  "member_ids": [str(m.id) for m in members]}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_edits(tight: RunningService) -> None:
    alice = tight.user()
    conv = _group(tight, alice)
    msg = tight.http.post(f"/conversations/{conv}/messages", json={"content": "m"}, headers=alice.headers).json()
    _third_is_429(lambda i: tight.http.patch(f"/messages/{msg['id']}", json={"content": f"v{i}"},
                                             headers=alice.headers))
    community = tight.http.post("/communities", json={"name": "c"}, headers=alice.headers).json()
    posted = tight.http.post(f"/communities/{community['id']}/messages", json={"content": "m"},
                             headers=alice.headers).json()
    r = tight.http.patch(f"/community-messages/{posted['id']}", json={"content": "w"}, headers=alice.headers)
    assert r.status_code == 429  # the same budget as direct-message edits


def test_reactions(tight: RunningService) -> None:
    alice = tight.user()
    conv = _group(tight, alice)
    msg = tight.http.post(f"/conversations/{conv}/messages", json={"content": "m"}, headers=alice.headers).json()
    _third_is_429(lambda i: tight.http.post(f"/messages/{msg['id']}/reactions", json={"emoji": "👍🎉😀"[i]},
                                            headers=alice.headers))


def test_member_additions(tight: RunningService) -> None:
    alice = tight.user()
    conv = _group(tight, alice)
    _third_is_429(lambda i: tight.http.post(f"/conversations/{conv}/members", json={"user_id": str(tight.user().id)},
                                            headers=alice.headers))
    bob = tight.user()
    community = tight.http.post("/communities", json={"name": "c"}, headers=bob.headers).json()
    _third_is_429(lambda i: tight.http.post(f"/communities/{community['id']}/members",
                                            json={"user_id": str(tight.user().id)}, headers=bob.headers))


def test_reports(tight: RunningService) -> None:
    alice, bob = tight.user(), tight.user()
    conv = _group(tight, alice, bob)
    ids = [tight.http.post(f"/conversations/{conv}/messages", json={"content": f"m{i}"},
                           headers=alice.headers).json()["id"] for i in range(3)]
    _third_is_429(lambda i: tight.http.post(f"/messages/{ids[i]}/report", json={"reason": "spam"},
                                            headers=bob.headers))


def test_the_defaults_limit_every_repeatable_write() -> None:
    from service.settings import Settings

    assert {"edit_message", "add_reaction", "add_member", "report_message"} <= set(Settings("x").rate_limits)


@pytest.mark.parametrize(("emoji", "ok"), [
    ("👍", True), ("👍🏽", True), ("👨‍👩‍👧‍👦", True), ("🇫🇷", True), ("1️⃣", True), ("❤️", True), ("©", True),
    ("lol", False), ("+1", False), ("a", False), ("<b>", False), ("👍 ", False), ("1", False),
    ("👍" * 8, False), ("\u202e👍", False), ("", False),
])
def test_a_reaction_is_one_emoji(service: RunningService, emoji: str, ok: bool) -> None:
    user = service.user()
    conv = _group(service, user)
    msg = service.http.post(f"/conversations/{conv}/messages", json={"content": "m"}, headers=user.headers).json()
    r = service.http.post(f"/messages/{msg['id']}/reactions", json={"emoji": emoji}, headers=user.headers)
    assert (r.status_code == 201) is ok, (emoji, r.status_code, r.text)
