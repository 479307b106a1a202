"""The realtime building blocks on their own: frame parsing, bus batching, presence and typing timers."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import orjson
import pytest

from service.realtime import protocol as p
from service.realtime.bus import MAX_PAYLOAD, MemoryBus, PostgresBus, coalesce, make_bus, pack
from service.realtime.presence import Directory, Local
from service.realtime.typing_state import Typists, Watchers


def _error(text: str | bytes | None, limit: int = 16 * 1024) -> p.Error:
    with pytest.raises(p.FrameError) as caught:
        p.parse_client_frame(text, limit)
    return caught.value.error


def test_parse_accepts_every_client_frame() -> None:
    conv, comm = str(uuid.uuid4()), str(uuid.uuid4())
    frames: list[dict[str, Any]] = [
        {"type": "auth", "token": "t"}, {"type": "refresh_token", "token": "t"},
        {"type": "join_conversation", "conversation_id": conv, "since_seq": 3},
        {"type": "leave_conversation", "conversation_id": conv},
        {"type": "join_community", "community_id": comm}, {"type": "leave_community", "community_id": comm},
        {"type": "send_message", "conversation_id": conv, "content": "hi", "client_msg_id": "c1"},
        {"type": "send_message", "community_id": comm, "content": "hi"},
        {"type": "mark_read", "conversation_id": conv, "seq": 4},
        {"type": "typing_start", "conversation_id": conv}, {"type": "typing_stop", "community_id": comm},
        {"type": "heartbeat", "ref": "r1"},
    ]
    assert {f["type"] for f in frames} == p.CLIENT_TYPES
    for frame in frames:
        parsed = p.parse_client_frame(json.dumps(frame), 16 * 1024)
        assert parsed.type == frame["type"]


def test_parse_explains_what_is_wrong() -> None:
    assert _error("{oops").code == "malformed_frame"
    assert _error('"a string"').code == "malformed_frame"
    assert _error(b"binary").code == "malformed_frame"
    assert _error(None).code == "malformed_frame"
    assert _error(json.dumps({"type": "heartbeat", "pad": "é" * 600}), limit=1000).code == "frame_too_large"
    unknown = _error(json.dumps({"type": "subscribe_all", "ref": "r9"}))
    assert unknown.code == "unknown_event" and unknown.ref == "r9"
    assert _error(json.dumps({"ref": "x"})).code == "unknown_event"
    invalid = _error(json.dumps({"type": "mark_read", "conversation_id": str(uuid.uuid4()), "seq": -1}))
    assert invalid.code == "invalid_frame" and invalid.details and invalid.details[0]["loc"] == ["seq"]
    # Typos in field names are refused rather than silently ignored.
    assert _error(json.dumps({"type": "join_conversation", "conversationId": str(uuid.uuid4())})).code \
        == "invalid_frame"
    # Typing names exactly one room.
    assert _error(json.dumps({"type": "typing_start"})).code == "invalid_frame"
    both = {"type": "typing_start", "conversation_id": str(uuid.uuid4()), "community_id": str(uuid.uuid4())}
    assert _error(json.dumps(both)).code == "invalid_frame"
    assert _error(json.dumps({"type": "send_message", "conversation_id": str(uuid.uuid4()),
                              "content": ""})).code == "invalid_frame"
    # A send names exactly one room; only conversations have threads.
    assert _error(json.dumps({"type": "send_message", "content": "hi"})).code == "invalid_frame"
    assert _error(json.dumps({"type": "send_message", "community_id": str(uuid.uuid4()), "content": "hi",
                              "parent_id": str(uuid.uuid4())})).code == "invalid_frame"


def test_server_frames_leave_out_what_does_not_apply() -> None:
    frame = json.loads(p.Joined(conversation_id=uuid.uuid4(), last_seq=3).encode())
    assert set(frame) == {"type", "conversation_id", "last_seq"}


def test_coalesce_keeps_the_newest_seq_per_room_and_the_order_of_the_rest() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    events = [
        {"kind": "message_created", "conversation_id": a, "seq": 1},
        {"kind": "message_read", "conversation_id": a, "user_id": "u", "seq": 1},
        {"kind": "message_created", "conversation_id": b, "seq": 7},
        {"kind": "message_created", "conversation_id": a, "seq": 3},
        {"kind": "community_message_created", "community_id": a, "seq": 2},
    ]
    out = coalesce(events)
    assert out == [
        {"kind": "message_created", "conversation_id": a, "seq": 3},
        {"kind": "message_read", "conversation_id": a, "user_id": "u", "seq": 1},
        {"kind": "message_created", "conversation_id": b, "seq": 7},
        {"kind": "community_message_created", "community_id": a, "seq": 2},
    ]
    assert events[0]["seq"] == 1  # the caller's dicts are not modified


def test_pack_fits_notify_payloads_and_drops_what_cannot_fit() -> None:
    events = [{"kind": "message_created", "conversation_id": str(uuid.uuid4()), "seq": i} for i in range(500)]
    payloads = pack(events)
    assert len(payloads) > 1
    assert all(len(x.encode()) <= MAX_PAYLOAD for x in payloads)
    assert [e for x in payloads for e in orjson.loads(x)] == events
    assert pack([{"kind": "huge", "blob": "x" * 9000}]) == []


async def test_memory_bus_delivers_to_its_handler_in_order() -> None:
    bus = MemoryBus()
    seen: list[int] = []
    await bus.start(lambda e: seen.append(int(e["n"])))
    await bus.publish({"n": 1})
    bus.publish_nowait({"n": 2})
    await bus.publish({"n": 3})
    await asyncio.sleep(0)
    assert seen == [1, 3, 2]  # publish is immediate; publish_nowait waits for the next loop turn
    await bus.stop()


async def test_postgres_bus_notifies_at_once_when_idle_and_batches_a_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    """The NOTIFY side alone (the round trip itself is covered by the realtime tests)."""
    bus = PostgresBus("postgresql://unused")
    rounds: list[tuple[float, list[Any]]] = []

    async def notify(payloads: list[str]) -> None:
        rounds.append((asyncio.get_running_loop().time(), [e for x in payloads for e in orjson.loads(x)]))

    monkeypatch.setattr(bus, "_notify", notify)
    monkeypatch.setattr("service.realtime.bus.FLUSH_INTERVAL_S", 0.05)
    flusher = asyncio.create_task(bus._flush())
    start = asyncio.get_running_loop().time()
    await bus.publish({"kind": "x", "n": 0})
    await asyncio.sleep(0.01)
    assert len(rounds) == 1 and rounds[0][0] - start < 0.04  # idle: no wait
    for n in range(1, 6):  # a burst right after: one round, one interval after the first
        await bus.publish({"kind": "x", "n": n})
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.08)
    flusher.cancel()
    assert [[e["n"] for e in events] for _, events in rounds] == [[0], [1, 2, 3, 4, 5]]
    assert rounds[1][0] - rounds[0][0] >= 0.045


async def test_postgres_bus_hands_its_own_events_to_its_hub_at_once_and_skips_them_coming_back() -> None:
    """Local sockets do not wait for the NOTIFY round; each event still reaches every hub once."""
    bus = PostgresBus("postgresql://unused")
    seen: list[Any] = []
    bus._handler = seen.append
    bus.publish_nowait({"kind": "message_created", "n": 1})
    assert seen == [] and len(bus._pending) == 1  # queued for NOTIFY, handled on the next loop turn
    await asyncio.sleep(0)
    assert [e["n"] for e in seen] == [1]
    sent = pack(coalesce(bus._pending))  # what goes out: this instance's origin travels with the event
    assert orjson.loads(sent[0])[0]["origin"] == bus.instance_id
    other = orjson.dumps([{"kind": "message_created", "n": 2, "origin": "another"}, {"kind": "typing", "n": 3}])
    bus._dispatch(sent[0])  # our own, back through PostgreSQL: already handled
    bus._dispatch(other.decode())  # another instance's (or an older one's, with no origin): handled
    assert [e["n"] for e in seen] == [1, 2, 3]


def test_auto_bus_is_memory_only_on_a_private_database_with_one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSGOPS_WORKERS", "1")
    assert isinstance(make_bus("auto", "postgresql://x", database_private=True), MemoryBus)
    assert isinstance(make_bus("auto", "postgresql://x"), PostgresBus)  # another instance may serve it too
    monkeypatch.setenv("MSGOPS_WORKERS", "4")
    assert isinstance(make_bus("auto", "postgresql://x", database_private=True), PostgresBus)
    assert isinstance(make_bus("memory", "postgresql://x"), MemoryBus)
    with pytest.raises(ValueError, match="unknown bus"):
        make_bus("redis", "postgresql://x")


def test_local_presence_online_away_offline_with_grace() -> None:
    local = Local(away_after=10, grace=2)
    user = uuid.uuid4()
    assert local.connect(user, now=0) == "online"
    assert local.connect(user, now=1) is None  # a second tab changes nothing
    assert local.tick(now=5) == []
    assert local.tick(now=11) == [(user, "away")]
    assert local.beat(user, now=12) == "online"
    local.disconnect(user, now=13)
    local.disconnect(user, now=13)
    assert local.tick(now=14) == []  # within the grace period
    assert local.connect(user, now=14.5) is None  # came back in time: no flap
    local.disconnect(user, now=20)
    assert local.tick(now=22.5) == [(user, "offline")]
    assert user not in local.users


def test_local_presence_a_normal_close_is_offline_at_once() -> None:
    local = Local(away_after=10, grace=2)
    user = uuid.uuid4()
    local.connect(user, now=0)
    local.connect(user, now=0)
    assert local.disconnect(user, now=1, leaving=True) is None  # another tab is still open
    assert local.disconnect(user, now=1, leaving=True) == "offline"
    assert user not in local.users and local.tick(now=5) == []  # announced once, not again after the grace


def test_directory_merges_instances_and_expires_silent_ones() -> None:
    directory = Directory(instance_ttl=30)
    user = uuid.uuid4()
    assert directory.announce("a", user, "online", now=0) == "online"
    assert directory.announce("b", user, "away", now=0) is None  # still online through instance a
    assert directory.announce("a", user, "offline", now=1) == "away"
    directory.alive("me", now=40)
    assert directory.expire(now=40, keep="me") == [(user, "offline")]  # instance b went silent
    assert directory.status(user) == "offline"


def test_typists_throttle_the_bus_and_expire_after_the_ttl() -> None:
    typists = Typists(ttl=10)
    key = (("conversation", uuid.uuid4()), uuid.uuid4())
    assert typists.start(key, now=0) is True
    assert typists.start(key, now=3) is False  # keystrokes within ttl/2 are not re-announced
    assert typists.start(key, now=6) is True   # refresh for the watchers
    assert typists.expired(now=15) == []
    assert typists.expired(now=16) == [key]
    assert typists.stop(key) is False


def test_watchers_report_transitions_only() -> None:
    watchers = Watchers(ttl=10)
    key = (("conversation", uuid.uuid4()), uuid.uuid4())
    assert watchers.start(key, now=0) is True
    assert watchers.start(key, now=1) is False
    assert watchers.expired(now=15) == []
    assert watchers.expired(now=17) == [key]  # the typist's instance went quiet: safety TTL
    assert watchers.stop(key) is False
