"""Realtime delivery over real WebSockets on loopback: who receives what, and who never does."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.support import RunningService
from tests.test_realtime_helpers import Api, Client

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def api(service: RunningService) -> AsyncIterator[Api]:
    client = Api(service)
    yield client
    await client.aclose()


async def test_member_receives_rest_message_and_outsider_never_does(service: RunningService, api: Api) -> None:
    alice, bob, carol = service.user(), service.user(), service.user()
    conv = await api.group(alice, bob)
    a, b, c = [await Client.open(service, u) for u in (alice, bob, carol)]
    try:
        await a.join(conv)
        joined = await b.join(conv)
        assert joined["last_seq"] == 0
        # Carol is not a member: refused with the same answer as for a conversation that does not exist.
        await c.send(type="join_conversation", conversation_id=str(conv), ref="j1")
        refused = await c.next("error")
        assert refused["code"] == "not_found" and refused["ref"] == "j1"
        await c.send(type="join_conversation", conversation_id=str(uuid.uuid4()))
        assert (await c.next("error"))["code"] == "not_found"

        sent = await api.send(alice, conv, "hello <b>team</b>", client_msg_id="m-1")
        got = await b.next("message_received")
        assert got["conversation_id"] == str(conv) and got["seq"] == sent["seq"] == 1
        assert got["message"]["id"] == sent["id"] and got["message"]["sender_id"] == str(alice.id)
        assert got["message"]["content"] == sent["content"] and "<b>" not in got["message"]["content"]
        assert "client_msg_id" not in got["message"]  # the sender's own id is only echoed to the sender
        mine = await a.next("message_received")
        assert mine["message"]["client_msg_id"] == "m-1"

        await c.nothing("message_received", within=0.5)
        assert all(f["type"] != "message_received" for f in c.seen)

        exposition = (await api.http.get("/metrics")).text
        assert 'msgops_ws_events_total{event="message_received"}' in exposition
        assert "msgops_ws_connections " in exposition
    finally:
        for client in (a, b, c):
            await client.close()


async def test_send_over_socket_acks_with_seq_and_is_idempotent(service: RunningService, api: Api) -> None:
    alice, bob = service.user(), service.user()
    conv = await api.group(alice, bob)
    a, b = await Client.open(service, alice), await Client.open(service, bob)
    try:
        await b.join(conv)
        await a.send(type="send_message", conversation_id=str(conv), content="over the socket",
                     client_msg_id="ws-1", ref="s1")
        ack = await a.next("message_sent")
        assert ack["client_msg_id"] == "ws-1" and ack["seq"] == 1 and ack["ref"] == "s1"
        assert ack["duplicate"] is False
        got = await b.next("message_received")
        assert got["message"]["id"] == ack["id"] and got["message"]["content"] == "over the socket"

        await a.send(type="send_message", conversation_id=str(conv), content="over the socket",
                     client_msg_id="ws-1")
        again = await a.next("message_sent")
        assert again["id"] == ack["id"] and again["duplicate"] is True
        await b.nothing("message_received", within=0.4)

        # Not a member: the same refusal as REST (404), as an error event naming the message.
        other = await api.group(bob)
        await a.send(type="send_message", conversation_id=str(other), content="hi", client_msg_id="ws-2")
        err = await a.next("error")
        assert err["code"] == "not_found" and err["client_msg_id"] == "ws-2"
    finally:
        await a.close()
        await b.close()


async def test_removed_member_stops_receiving_at_once(service: RunningService, api: Api) -> None:
    alice, bob, carol = service.user(), service.user(), service.user()
    conv = await api.group(alice, bob, carol)
    b, c = await Client.open(service, bob), await Client.open(service, carol)
    try:
        await b.join(conv)
        await c.join(conv)
        await api.send(alice, conv, "before")
        assert (await b.next("message_received"))["seq"] == 1
        await api.remove(alice, conv, bob)
        # The very next message is not delivered to Bob, and he is told he was removed.
        await api.send(alice, conv, "after")
        assert (await c.next("message_received", seq=2))["message"]["content"] == "after"
        left = await b.next("left")
        assert left["reason"] == "removed" and left["conversation_id"] == str(conv)
        await b.nothing("message_received", within=0.5)
        # And he cannot come back in.
        await b.send(type="join_conversation", conversation_id=str(conv))
        assert (await b.next("error"))["code"] == "not_found"
        assert not [f for f in b.seen if f["type"] == "message_received" and f["seq"] == 2]
    finally:
        await b.close()
        await c.close()


async def test_removal_is_enforced_even_before_its_notification(service: RunningService, api: Api) -> None:
    """The delivery read re-checks membership in the same snapshot as the rows, so a removal that
    committed before a message can never let that message through, whatever order events arrive in."""
    alice, bob = service.user(), service.user()
    conv = await api.group(alice, bob)
    b = await Client.open(service, bob)
    try:
        await b.join(conv)
        # Remove Bob behind the API's back (no membership_changed event), then send.
        service.sql("delete from public.conversation_members where conversation_id = %s and user_id = %s",
                    (conv, bob.id))
        await api.send(alice, conv, "secret")
        left = await b.next("left")
        assert left["reason"] == "removed"
        assert not [f for f in b.seen if f["type"] == "message_received"]
    finally:
        await b.close()


async def test_community_channel_reaches_members_only(service: RunningService, api: Api) -> None:
    owner, member, outsider = service.user(), service.user(), service.user()
    community = await api.community(owner, name=f"chan-{uuid.uuid4().hex[:6]}")
    await api.join_community(member, community)
    m, o = await Client.open(service, member), await Client.open(service, outsider)
    try:
        await m.send(type="join_community", community_id=str(community))
        joined = await m.next("joined")
        assert joined["community_id"] == str(community)
        await o.send(type="join_community", community_id=str(community))
        assert (await o.next("error"))["code"] == "not_found"

        posted = await api.post_community(owner, community, "welcome")
        got = await m.next("message_received")
        assert got["community_id"] == str(community) and got["message"]["id"] == posted["id"]
        await o.nothing("message_received", within=0.5)
    finally:
        await m.close()
        await o.close()


async def test_send_to_a_community_over_the_socket(service: RunningService, api: Api) -> None:
    """The socket sends to communities through the same path as REST: ack with seq, delivery, replay,
    and the REST refusals (visible but not joined: forbidden)."""
    owner, member, outsider = service.user(), service.user(), service.user()
    community = await api.community(owner, name=f"ws-{uuid.uuid4().hex[:6]}")
    await api.join_community(member, community)
    m, o = await Client.open(service, member), await Client.open(service, outsider)
    try:
        await m.send(type="join_community", community_id=str(community))
        await m.next("joined")
        await m.send(type="send_message", community_id=str(community), content="<b>hi</b> all",
                     client_msg_id="c-1", ref="s1")
        ack = await m.next("message_sent")
        assert ack["community_id"] == str(community) and "conversation_id" not in ack
        assert ack["seq"] == 1 and ack["duplicate"] is False and ack["ref"] == "s1"
        got = await m.next("message_received")
        assert got["message"]["id"] == ack["id"] and got["message"]["content"] == "hi all"

        await m.send(type="send_message", community_id=str(community), content="<b>hi</b> all", client_msg_id="c-1")
        again = await m.next("message_sent")
        assert again["id"] == ack["id"] and again["duplicate"] is True

        await o.send(type="send_message", community_id=str(community), content="hi", client_msg_id="c-2")
        err = await o.next("error")
        assert err["code"] == "forbidden" and err["client_msg_id"] == "c-2"
        await o.send(type="send_message", community_id=str(uuid.uuid4()), content="hi", client_msg_id="c-3")
        assert (await o.next("error"))["code"] == "not_found"
    finally:
        await m.close()
        await o.close()


async def test_edits_and_deletes_reach_members(service: RunningService, api: Api) -> None:
    alice, bob = service.user(), service.user()
    conv = await api.group(alice, bob)
    b = await Client.open(service, bob)
    try:
        await b.join(conv)
        sent = await api.send(alice, conv, "first draft")
        await b.next("message_received")
        r = await api.http.patch(f"/messages/{sent['id']}", headers=alice.headers, json={"content": "final"})
        assert r.status_code == 200, r.text
        updated = await b.next("message_updated")
        assert updated["message"]["content"] == "final" and updated["message"]["edited_at"]
        r = await api.http.delete(f"/messages/{sent['id']}", headers=alice.headers)
        assert r.status_code == 204, r.text
        deleted = await b.next("message_deleted")
        assert deleted["message_id"] == sent["id"] and deleted["seq"] == sent["seq"]
    finally:
        await b.close()


async def test_read_receipts_reach_the_room_and_the_readers_other_sockets(service: RunningService,
                                                                          api: Api) -> None:
    alice, bob = service.user(), service.user()
    conv = await api.group(alice, bob)
    a, b, b_phone = [await Client.open(service, u) for u in (alice, bob, bob)]
    try:
        await a.join(conv)
        await b.join(conv)
        await api.send(alice, conv, "one")
        await api.send(alice, conv, "two")
        await b.next("message_received", seq=2)
        await b.send(type="mark_read", conversation_id=str(conv), seq=2)
        receipt = await a.next("message_read")
        assert receipt == {"type": "message_read", "conversation_id": str(conv), "user_id": str(bob.id), "seq": 2}
        # Bob's phone has not joined the conversation but still learns he read it (unread badges).
        assert (await b_phone.next("message_read"))["seq"] == 2
        # Over REST too.
        third = await api.send(alice, conv, "three")
        r = await api.http.patch(f"/messages/{third['id']}/read", headers=bob.headers)
        assert r.status_code == 200, r.text
        assert (await a.next("message_read", seq=3))["user_id"] == str(bob.id)
    finally:
        for client in (a, b, b_phone):
            await client.close()


async def test_leave_stops_delivery(service: RunningService, api: Api) -> None:
    alice, bob = service.user(), service.user()
    conv = await api.group(alice, bob)
    b = await Client.open(service, bob)
    try:
        await b.join(conv)
        await b.send(type="leave_conversation", conversation_id=str(conv), ref="l1")
        left = await b.next("left")
        assert left["reason"] == "left" and left["ref"] == "l1"
        await api.send(alice, conv, "after leave")
        await b.nothing("message_received", within=0.5)
    finally:
        await b.close()


# Authentication ---------------------------------------------------------------------------------

async def test_query_token_authenticates(service: RunningService) -> None:
    user = service.user()
    client = await Client.open(service, user, query_token=True)
    await client.send(type="heartbeat", ref="h")
    assert (await client.next("heartbeat_ack"))["ref"] == "h"
    await client.close()


@pytest.mark.parametrize("first", [
    {"type": "auth", "token": "not-a-jwt"},
    {"type": "heartbeat"},
    "not json",
])
async def test_bad_or_missing_authentication_closes_with_4401(service: RunningService, first: object) -> None:
    client = await Client.open(service, None, auth=False)
    await client.send_raw(first if isinstance(first, str) else json.dumps(first))
    assert await client.closed_with() == 4401
    assert not [f for f in client.seen if f["type"] not in ("error",)]


async def test_expired_or_service_tokens_are_refused(service: RunningService) -> None:
    from service.auth import mint_token
    from tests.support import JWT_SECRET

    expired = mint_token(JWT_SECRET, uuid.uuid4(), ttl=-10)
    client = await Client.open(service, None, auth=False)
    await client.send(type="auth", token=expired)
    assert await client.closed_with() == 4401
    client = await Client.open(service, None, auth=False)
    await client.send(type="auth", token=service.service_user().token)
    assert await client.closed_with() == 4401


async def test_token_expiry_closes_the_socket_unless_refreshed(service: RunningService) -> None:
    user = service.user()
    short = service.user(ttl=2)
    expiring = await Client.open(service, short)
    assert await expiring.closed_with(timeout=6) == 4001

    from service.auth import mint_token
    from tests.support import JWT_SECRET

    first = mint_token(JWT_SECRET, user.id, ttl=2)
    client = await Client.open(service, type(user)(user.id, first, user.role))
    await client.send(type="refresh_token", token=mint_token(JWT_SECRET, user.id, ttl=60), ref="r")
    refreshed = await client.next("token_refreshed")
    assert refreshed["ref"] == "r" and refreshed["expires_at"] > 0
    # A token for somebody else is refused, and the socket keeps the current one.
    await client.send(type="refresh_token", token=mint_token(JWT_SECRET, uuid.uuid4(), ttl=60))
    assert (await client.next("error"))["code"] == "invalid_token"
    await asyncio.sleep(3)
    await client.send(type="heartbeat")
    await client.next("heartbeat_ack")
    await client.close()


# Robustness -------------------------------------------------------------------------------------

async def test_malformed_frames_get_error_events_and_the_socket_survives(service: RunningService) -> None:
    client = await Client.open(service, service.user())
    try:
        await client.send_raw("{not json")
        assert (await client.next("error"))["code"] == "malformed_frame"
        await client.send_raw("[1, 2]")
        assert (await client.next("error"))["code"] == "malformed_frame"
        await client.send_raw(b"\x00\x01binary")
        assert (await client.next("error"))["code"] == "malformed_frame"
        await client.send_raw(json.dumps({"type": "heartbeat", "pad": "x" * 20_000}))
        assert (await client.next("error"))["code"] == "frame_too_large"
        await client.send(type="launch_missiles", ref="x")
        unknown = await client.next("error")
        assert unknown["code"] == "unknown_event" and unknown["ref"] == "x"
        await client.send(type="join_conversation", conversation_id="nope", ref="bad")
        invalid = await client.next("error")
        assert invalid["code"] == "invalid_frame" and invalid["details"][0]["loc"] == ["conversation_id"]
        await client.send(type="send_message", conversation_id=str(uuid.uuid4()), content="x" * 5001)
        assert (await client.next("error"))["code"] == "invalid_frame"
        await client.send(type="typing_start", conversation_id=str(uuid.uuid4()))
        assert (await client.next("error"))["code"] == "not_found"  # not joined
        await client.send(type="heartbeat", ref="alive")
        assert (await client.next("heartbeat_ack"))["ref"] == "alive"
    finally:
        await client.close()


async def test_frame_flood_is_rate_limited_not_fatal(service: RunningService) -> None:
    client = await Client.open(service, service.user())
    try:
        for _ in range(150):
            await client.send(type="heartbeat")
        await client.drain(1.0)
        limited = client.take_all("error")
        assert limited and all(e["code"] == "rate_limited" for e in limited)
        assert 0 < len(client.take_all("heartbeat_ack")) < 150
        await asyncio.sleep(1.0)
        await client.send(type="heartbeat", ref="later")
        await client.next("heartbeat_ack", ref="later")
    finally:
        await client.close()
