"""realtime probes: each kind passes against the reference service and fails against a service broken
in exactly that way (in-process patches of service/realtime internals, scoped to one service and undone
after each test; never a mock of the network or the database)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import jwt
import pytest
from fastapi import FastAPI
from psycopg.conninfo import conninfo_to_dict

from msgops import probes
from msgops.config import Target
from msgops.probes import Context
from msgops.probes.realtime.client import RealtimeUnavailable
from msgops.probes.realtime.events import EVENTS
from msgops.results import Outcome
from service import app as service_app
from service.auth import AuthError, Claims
from service.db import Conn, fetch_one
from service.realtime import hub as hub_module
from service.realtime import protocol
from service.realtime import session as session_module
from service.realtime.connection import Connection
from service.realtime.delivery import CONVERSATION, Batch, RoomKind
from service.realtime.hub import Hub
from service.realtime.membership import JoinCheck, RoomKey
from service.realtime.session import Session
from service.state import AppState
from tests.support import JWT_SECRET, RunningService, start_service

pytestmark = pytest.mark.timeout(120)

KINDS = ("realtime.auth_required", "realtime.delivery", "realtime.no_leak", "realtime.presence",
         "realtime.resume", "realtime.multi_tab")


async def run(kind: str, svc: RunningService, **params: Any) -> Outcome:
    ctx = Context(Target(api_url=svc.url, database_url=svc.database_url, jwt_secret=JWT_SECRET))
    implementation = probes.get(kind)
    assert implementation is not None, kind
    try:
        return await implementation.fn(ctx, **params)
    finally:
        await ctx.close()


def state_of(svc: RunningService) -> AppState:
    app = cast(FastAPI, svc.server.config.app)
    state: AppState = app.state.msgops
    return state


def hub_of(svc: RunningService) -> Hub:
    hub: Hub | None = state_of(svc).hub
    assert hub is not None, "realtime did not start"
    return hub


def on_database_of(svc: RunningService) -> Callable[[Conn], bool]:
    """Is this connection one of `svc`'s? (each test service has a database of its own): scopes a
    patch of a module-level function, which every service in this process shares, to one service."""
    name = conninfo_to_dict(svc.database_url)["dbname"]
    return lambda conn: conn.info.dbname == name


def unstate_typing_ttl(svc: RunningService, monkeypatch: pytest.MonkeyPatch) -> None:
    """`svc` sends user_typing without `expires_in`, like a server that does not state its TTL, so the probe
    has to time the expiry (its observed path). Connection is slotted: patched on the class, `svc` only."""
    state, original = state_of(svc), Connection.send

    def send(self: Connection, text: str, kind: str) -> None:
        if kind == "user_typing" and self.ws.app.state.msgops is state:
            frame = json.loads(text)
            frame.pop("expires_in", None)
            text = json.dumps(frame)
        original(self, text, kind)

    monkeypatch.setattr(Connection, "send", send)


@pytest.fixture(scope="module")
def spare(new_database: Callable[..., str]) -> Iterator[RunningService]:
    """A service to break, one way per test (rate limits off: the break-tests send a lot)."""
    running = start_service(new_database(), rate_limits={})
    yield running
    running.stop()


@pytest.fixture
def quick(make_service: Callable[..., RunningService], monkeypatch: pytest.MonkeyPatch) -> RunningService:
    """Short presence timers and a 1 s typing TTL, so the timing probes run in about a second."""
    monkeypatch.setenv("MSGOPS_TYPING_TTL", "1")
    monkeypatch.setenv("MSGOPS_OFFLINE_GRACE", "0.5")
    return make_service(rate_limits={})


# --- the reference service passes ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_kind_passes_against_the_reference_service(service: RunningService, kind: str) -> None:
    out = await run(kind, service)
    assert out.status == "pass", (out.message, out.evidence)
    assert out.evidence["protocol"] == "websocket (reference)"  # what was tested, for a reader


@pytest.mark.parametrize("event", sorted(EVENTS))
async def test_every_spec_event_passes_against_the_reference_service(service: RunningService, event: str) -> None:
    out = await run("realtime.event", service, event=event)
    assert out.status == "pass", (out.message, out.evidence)
    assert out.evidence["observed"]["type"] in {"joined", "message_sent", "message_received", "message_read",
                                                "user_typing", "heartbeat_ack", "user_online", "user_offline"}


async def test_delivery_reports_latency(service: RunningService) -> None:
    out = await run("realtime.delivery", service, budget_ms=1000)
    assert out.status == "pass"
    assert 0 < out.evidence["latency_ms"] < 1000 and out.evidence["seq"] == 1


async def test_typing_ttl_observed_on_a_short_ttl(quick: RunningService, monkeypatch: pytest.MonkeyPatch) -> None:
    unstate_typing_ttl(quick, monkeypatch)
    out = await run("realtime.typing_ttl", quick, seconds=1)
    assert out.status == "pass", (out.message, out.evidence)
    assert out.evidence["method"].startswith("observed") and 0.8 <= out.evidence["expired_after_s"] < 2.5


@pytest.mark.slow
async def test_typing_ttl_of_the_reference_is_the_seeds_10_seconds(service: RunningService,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    unstate_typing_ttl(service, monkeypatch)  # timed, not taken from the frame's word for it
    out = await run("realtime.typing_ttl", service, seconds=10)
    assert out.status == "pass", (out.message, out.evidence)
    assert out.evidence["method"].startswith("observed")


async def test_typing_ttl_read_from_the_protocol_when_stated(service: RunningService, quick: RunningService) -> None:
    out = await run("realtime.typing_ttl", service, seconds=10)
    assert out.status == "pass", (out.message, out.evidence)
    assert out.evidence["method"] == "read from user_typing.expires_in (not waited)" and out.evidence["ttl_s"] == 10
    out = await run("realtime.typing_ttl", quick, seconds=5)
    assert out.status == "fail" and "the protocol states a typing TTL of 1 s, expected 5 s" in out.message


# --- broken services fail ---------------------------------------------------------------------------


@pytest.fixture
def leaky_hub(spare: RunningService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spare's hub forgets membership: a join is granted without asking the database as the user
    (the room's last_seq is read as the owner), and neither the re-check on a membership change nor the
    still-a-member probe of each delivery read drops anyone."""
    state, on_spare = state_of(spare), on_database_of(spare)
    check_join, member_of, read_batch = session_module.check_join, hub_module.member_of, hub_module.read_batch

    async def join_unchecked(st: AppState, claims: Claims, kind: RoomKind, room_id: uuid.UUID) -> JoinCheck | None:
        if st is not state:
            return await check_join(st, claims, kind, room_id)
        async with st.db.privileged() as db:
            row = await fetch_one(db, f"select last_seq from {kind.rooms} where id = %s", (room_id,))
        return JoinCheck(int(row["last_seq"]), None) if row else None

    async def everything_allowed(st: AppState, claims: Claims, keys: list[RoomKey]) -> set[RoomKey]:
        return set(keys) if st is state else await member_of(st, claims, keys)

    async def everyone_present(db: Conn, kind: RoomKind, after: dict[uuid.UUID, int], updated: set[uuid.UUID],
                               pairs: list[tuple[uuid.UUID, uuid.UUID]], limit: int) -> Batch:
        batch = await read_batch(db, kind, after, updated, pairs, limit)
        if on_spare(db):
            batch.present = set(pairs)
        return batch

    monkeypatch.setattr(session_module, "check_join", join_unchecked)  # Session._join's membership check
    monkeypatch.setattr(hub_module, "member_of", everything_allowed)   # Hub.recheck on membership_changed
    monkeypatch.setattr(hub_module, "read_batch", everyone_present)    # Hub._deliver's re-check


@pytest.mark.usefixtures("leaky_hub")
async def test_no_leak_fails_when_the_hub_skips_membership(spare: RunningService) -> None:
    out = await run("realtime.no_leak", spare)
    assert out.status == "fail", out.message
    assert out.evidence["protocol"] == "websocket (reference)"
    leaks = out.evidence["leaks"]
    events = {(leak["event"], leak["user"].split(" ")[0]) for leak in leaks}
    assert ("joined", "stranger") in events and ("message_received", "stranger") in events
    assert ("message_received", "removed") in events
    assert all(leak["user"].split(" ")[1].strip("()") for leak in leaks)  # names the user's id
    assert "delivered to stranger" in out.message


async def test_auth_required_fails_when_tokens_are_not_verified(spare: RunningService,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def trusting(token: str) -> Claims:  # decodes, checks nothing (signature, exp, aud)
        try:
            raw = jwt.decode(token, options={"verify_signature": False, "verify_exp": False, "verify_aud": False})
        except jwt.PyJWTError:
            raise AuthError("malformed token") from None  # unreadable: refused as the real verifier does
        return Claims(sub=uuid.UUID(raw["sub"]), role=raw.get("role", "authenticated"), raw=raw)

    monkeypatch.setattr(state_of(spare).verifier, "verify", trusting)
    out = await run("realtime.auth_required", spare)
    assert out.status == "fail", out.message
    broken = {row["case"]: row for row in out.evidence["attempts"]}
    assert "invalid_signature" in out.message
    assert broken["invalid_signature"]["events"][0]["type"] == "authenticated"
    assert broken["missing"]["events"] == [] and broken["missing"]["close_code"] == protocol.CLOSE_UNAUTHORIZED


async def test_delivery_fails_when_the_bus_drops_messages(spare: RunningService,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bus = state_of(spare).bus  # service.events.publish -> bus.publish -> the hub marks the room to read
    assert bus is not None
    original = bus.publish

    async def drop_messages(event: dict[str, Any]) -> None:
        if event.get("kind") != "message_created":
            await original(event)

    monkeypatch.setattr(bus, "publish", drop_messages)
    out = await run("realtime.delivery", spare, budget_ms=500)
    assert out.status == "fail" and "never reached the recipient" in out.message
    assert out.evidence["message_id"] and out.evidence["budget_ms"] == 500


async def test_resume_fails_when_since_seq_is_ignored(spare: RunningService, monkeypatch: pytest.MonkeyPatch) -> None:
    state, original = state_of(spare), Session._join

    async def forgetful(self: Session, conn: Connection, kind: RoomKind, room_id: Any, since: int | None,
                        frame: Any) -> None:
        await original(self, conn, kind, room_id, None if self.state is state else since, frame)

    monkeypatch.setattr(Session, "_join", forgetful)
    out = await run("realtime.resume", spare)
    assert out.status == "fail"
    assert "missing seq [3, 4, 5]" in out.message and out.evidence["received_seqs"] == []


async def test_multi_tab_fails_when_sockets_are_keyed_by_user(spare: RunningService,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    hub = hub_of(spare)
    original = hub.subscribe

    def one_socket_per_user(conn: Connection, kind: RoomKind, room_id: uuid.UUID, cursor: int, last: int) -> None:
        for other in list(hub.by_user.get(conn.user_id, ())):
            if other is not conn:
                hub.unsubscribe(other, (kind.name, room_id))
        original(conn, kind, room_id, cursor, last)

    monkeypatch.setattr(hub, "subscribe", one_socket_per_user)  # this hub only: Session calls self.hub.subscribe
    out = await run("realtime.multi_tab", spare)
    assert out.status == "fail"
    assert out.evidence["deliveries_per_tab"]["reader tab 1"] == {1: 0, 2: 0}
    assert "reader tab 1 got seq 1 0 times" in out.message


async def test_presence_fails_when_broadcast_to_everyone(spare: RunningService,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    on_spare, co_members = on_database_of(spare), hub_module.co_members

    async def everyone(db: Conn, users: list[uuid.UUID]) -> list[tuple[uuid.UUID, uuid.UUID]]:
        if not on_spare(db):
            return await co_members(db, users)
        cur = await db.execute("select a.id as s, b.id as w from public.profiles a, public.profiles b "
                               "where a.id = any(%s) and b.id <> a.id", (users,))
        return [(r["s"], r["w"]) for r in await cur.fetchall()]

    monkeypatch.setattr(hub_module, "co_members", everyone)
    out = await run("realtime.presence", spare)
    assert out.status == "fail"
    assert "user_online about subject" in out.message and "delivered to the stranger" in out.message
    assert out.evidence["stranger_received"][0]["type"] == "user_online"


_FRAME_OF_EVENT = {
    "join_conversation": "joined", "send_message": "message_sent", "message_sent": "message_sent",
    "message_received": "message_received", "mark_read": "message_read", "message_read": "message_read",
    "typing_start": "user_typing", "user_typing": "user_typing", "typing_stop": "user_typing",
    "heartbeat": "heartbeat_ack", "user_online": "user_online", "user_offline": "user_offline",
}


@pytest.mark.parametrize("event", sorted(EVENTS))
async def test_event_fails_when_the_server_never_sends_it(quick: RunningService, monkeypatch: pytest.MonkeyPatch,
                                                         event: str) -> None:
    dropped, state = _FRAME_OF_EVENT[event], state_of(quick)
    original = Connection.send  # a slotted class: patched on the class, for `quick`'s sockets only

    def without(self: Connection, text: str, kind: str) -> None:
        if kind != dropped or self.ws.app.state.msgops is not state:
            original(self, text, kind)

    monkeypatch.setattr(Connection, "send", without)
    out = await run("realtime.event", quick, event=event)
    assert out.status == "fail", out.message
    assert out.evidence["event"] == event and "not observed" in out.message


async def test_typing_ttl_fails_when_typing_never_expires_in_time(make_service: Callable[..., RunningService],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSGOPS_TYPING_TTL", "4")
    slow = make_service(rate_limits={})
    unstate_typing_ttl(slow, monkeypatch)
    out = await run("realtime.typing_ttl", slow, seconds=1)
    assert out.status == "fail" and "still typing" in out.message
    assert out.evidence["method"].startswith("observed")


async def test_typing_ttl_fails_when_typing_expires_too_soon(quick: RunningService,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    unstate_typing_ttl(quick, monkeypatch)
    out = await run("realtime.typing_ttl", quick, seconds=5)
    assert out.status == "fail" and "sooner than the 5 s TTL" in out.message
    assert out.evidence["expired_after_s"] < 2


@pytest.fixture(scope="module")
def no_realtime(new_database: Callable[..., str]) -> Iterator[RunningService]:
    """A service built without the realtime route: the REST API works, /realtime does not exist."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service_app, "_include_realtime", lambda app: None)
        running = start_service(new_database(), rate_limits={})
    yield running
    running.stop()


@pytest.mark.parametrize("kind", [*KINDS, "realtime.event", "realtime.typing_ttl"])
async def test_missing_realtime_route_is_an_error_never_a_pass(no_realtime: RunningService, kind: str) -> None:
    assert no_realtime.http.get("/health").status_code == 200
    params = {"event": "heartbeat"} if kind == "realtime.event" else {}
    with pytest.raises(RealtimeUnavailable, match=r"no WebSocket at ws://.*/realtime: .*HTTP 403"):
        await run(kind, no_realtime, **params)


async def test_realtime_not_started_is_an_error(spare: RunningService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_of(spare), "hub", None)  # the route refuses the handshake
    with pytest.raises(RealtimeUnavailable, match="HTTP 403"):
        await run("realtime.delivery", spare)


def test_every_realtime_kind_and_event_is_registered() -> None:
    from msgops.checklist import probe_kinds

    assert {k for k in probe_kinds() if k.startswith("realtime.")} == {*KINDS, "realtime.event", "realtime.typing_ttl"}
    event = probes.get("realtime.event")
    assert event is not None
    assert set(event.params.model_json_schema()["properties"]["event"]["enum"]) == EVENTS
    assert CONVERSATION.name == "conversation"  # the hub's room naming the patches above rely on
