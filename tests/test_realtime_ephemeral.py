"""Typing indicators and presence: memory only, with short timers so the suite stays fast."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest

from tests.support import RunningService
from tests.test_realtime_helpers import Api, Client

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def quick(make_service: Callable[..., RunningService], monkeypatch: pytest.MonkeyPatch) -> RunningService:
    """A service whose realtime timers are short: typing 1 s, away after 1.5 s, offline grace 0.6 s."""
    monkeypatch.setenv("MSGOPS_TYPING_TTL", "1")
    monkeypatch.setenv("MSGOPS_AWAY_AFTER", "1.5")
    monkeypatch.setenv("MSGOPS_OFFLINE_GRACE", "0.6")
    return make_service(rate_limits={})


@pytest.fixture
async def api(quick: RunningService) -> AsyncIterator[Api]:
    client = Api(quick)
    yield client
    await client.aclose()


async def test_typing_reaches_others_and_expires_after_the_ttl(quick: RunningService, api: Api) -> None:
    alice, bob = quick.user(), quick.user()
    conv = await api.group(alice, bob)
    a, b = await Client.open(quick, alice), await Client.open(quick, bob)
    try:
        await a.join(conv)
        await b.join(conv)
        await a.send(type="typing_start", conversation_id=str(conv))
        started = time.monotonic()
        on = await b.next("user_typing")
        assert on == {"type": "user_typing", "conversation_id": str(conv), "user_id": str(alice.id), "typing": True,
                      "expires_in": 1.0}
        # No typing_stop: it expires on its own after the TTL (1 s here, 10 s by default).
        off = await b.next("user_typing", timeout=4)
        elapsed = time.monotonic() - started
        assert off["typing"] is False and off["user_id"] == str(alice.id)
        assert 0.8 <= elapsed < 3, elapsed
        await a.nothing("user_typing", within=0.2)  # nobody is told about their own typing

        # Keystrokes keep it alive past the TTL without repeating the event; typing_stop ends it at once.
        await a.send(type="typing_start", conversation_id=str(conv))
        assert (await b.next("user_typing"))["typing"] is True
        for _ in range(4):
            await a.send(type="typing_start", conversation_id=str(conv))
            await b.nothing("user_typing", within=0.35)
        await a.send(type="typing_stop", conversation_id=str(conv))
        assert (await b.next("user_typing", timeout=0.5))["typing"] is False
    finally:
        await a.close()
        await b.close()


async def test_typing_stops_when_the_typist_disconnects(make_service: Callable[..., RunningService],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSGOPS_TYPING_TTL", "30")  # long, so that only the disconnect can end it
    svc = make_service(rate_limits={})
    api = Api(svc)
    alice, bob = svc.user(), svc.user()
    conv = await api.group(alice, bob)
    a, b = await Client.open(svc, alice), await Client.open(svc, bob)
    try:
        await a.join(conv)
        await b.join(conv)
        await a.send(type="typing_start", conversation_id=str(conv))
        await b.next("user_typing", typing=True)
        await a.close()
        started = time.monotonic()
        assert (await b.next("user_typing", timeout=5))["typing"] is False
        assert time.monotonic() - started < 5  # not the 30 s TTL: the disconnect ends it
    finally:
        await b.close()
        await api.aclose()


async def test_presence_online_away_offline_only_to_people_who_share_a_conversation(
        quick: RunningService, api: Api) -> None:
    alice, bob, stranger = quick.user(), quick.user(), quick.user()
    await api.group(alice, bob)
    b, s = await Client.open(quick, bob), await Client.open(quick, stranger)
    try:
        a = await Client.open(quick, alice)
        online = await b.next("user_online", user_id=alice.id)
        assert online["status"] == "online"
        # Silence past away_after (1.5 s) makes Alice away; a heartbeat brings her back.
        away = await b.next("user_online", timeout=4, user_id=alice.id)
        assert away["status"] == "away"
        await a.send(type="heartbeat")
        assert (await b.next("user_online", user_id=alice.id))["status"] == "online"
        # A page reload (1001) that reconnects within the grace period does not flap.
        await a.close(1001)
        a = await Client.open(quick, alice)
        await b.nothing("user_offline", within=1.0, user_id=alice.id)
        # A dropped socket that does not come back is offline after the grace period (0.6 s) ...
        await a.close(1001)
        dropped = time.monotonic()
        gone = await b.next("user_offline", timeout=3, user_id=alice.id)
        assert gone["status"] == "offline" and time.monotonic() - dropped >= 0.5

        # The stranger shares no conversation with Alice and heard nothing about her.
        await s.drain(0.2)
        assert not [f for f in s.seen if f.get("user_id") == str(alice.id)]
    finally:
        await b.close()
        await s.close()


async def test_signing_out_is_offline_at_once_whatever_the_grace(
        make_service: Callable[..., RunningService], monkeypatch: pytest.MonkeyPatch) -> None:
    """A normal close (1000) means the client is leaving: no grace period, however long it is."""
    monkeypatch.setenv("MSGOPS_OFFLINE_GRACE", "600")
    service = make_service(rate_limits={})
    alice, bob = service.user(), service.user()
    api = Api(service)
    try:
        await api.group(alice, bob)
        b = await Client.open(service, bob)
        a = await Client.open(service, alice)
        await b.next("user_online", user_id=alice.id)
        await a.close(1000)
        gone = await b.next("user_offline", timeout=10, user_id=alice.id)  # not 600 s
        assert gone["status"] == "offline"
        await b.close()
    finally:
        await api.aclose()


async def test_join_reports_who_is_online(quick: RunningService, api: Api) -> None:
    alice, bob = quick.user(), quick.user()
    conv = await api.group(alice, bob)
    a = await Client.open(quick, alice)
    b = await Client.open(quick, bob)
    try:
        await b.next("user_online", user_id=alice.id)  # presence has propagated
        joined = await b.join(conv)
        assert joined["online"] == {str(alice.id): "online"}
    finally:
        await a.close()
        await b.close()
