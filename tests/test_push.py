"""Web push to offline users: a real push endpoint on loopback decrypts what the service sends."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Iterator

import jwt
import pytest

from service.notifications.config import PushSettings, new_private_pem, public_key_b64
from tests.push_endpoint import PushEndpoint
from tests.support import RunningService, start_service
from tests.test_attachments import group
from tests.test_notifications import direct, named, send
from tests.test_realtime_helpers import Client

PEM = new_private_pem()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[PushEndpoint]:
    server = PushEndpoint()
    yield server
    server.close()


@pytest.fixture(scope="module")
def svc(new_database: Callable[..., str]) -> Iterator[RunningService]:
    running = start_service(new_database(), rate_limits={},
                            push=PushSettings(vapid_private_pem=PEM, allow_http_endpoints=True,
                                              subject="mailto:ops@example.test"))
    yield running
    running.stop()


def test_offline_user_gets_an_encrypted_push_signed_with_vapid(svc: RunningService, endpoint: PushEndpoint) -> None:
    alice, bob = named(svc, "alicep"), named(svc, "bobp")
    device = endpoint.device()
    key = svc.http.get("/push/vapid-public-key", headers=bob.headers).json()["public_key"]
    assert key == public_key_b64(PEM)
    r = svc.http.post("/push/subscriptions", json=device.subscription(endpoint.url), headers=bob.headers)
    assert r.status_code == 201, r.text
    dm = direct(svc, alice, bob)
    msg = send(svc, alice, dm, "are you there?")
    push = endpoint.received.get(timeout=10)
    body = json.loads(push.plaintext)
    assert (body["kind"], body["message_id"], body["body"], body["title"]) == \
        ("direct", msg["id"], "are you there?", "Message from alicep")
    # RFC 8292: the service signs a JWT for this push service with its VAPID key.
    scheme, _, params = push.headers["authorization"].partition(" ")
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert scheme == "vapid" and fields["k"] == key
    claims = jwt.decode(fields["t"], options={"verify_signature": False})
    assert claims["aud"] == endpoint.url and claims["sub"] == "mailto:ops@example.test"
    assert push.headers["content-encoding"] == "aes128gcm"
    listed = svc.http.get("/push/subscriptions", headers=bob.headers).json()
    assert [s["endpoint"] for s in listed] == [device.subscription(endpoint.url)["endpoint"]]


async def test_online_users_and_muted_rooms_get_no_push(svc: RunningService, endpoint: PushEndpoint) -> None:
    alice, bob, carol = named(svc, "alicq"), named(svc, "bobq"), named(svc, "carolq")
    for user in (bob, carol):
        sub = endpoint.device().subscription(endpoint.url)
        assert svc.http.post("/push/subscriptions", json=sub, headers=user.headers).status_code == 201
    conv = group(svc, alice, bob, carol)
    assert svc.http.put(f"/conversations/{conv}/notifications", json={"level": "none"},
                        headers=carol.headers).status_code == 200
    client = await Client.open(svc, bob)
    try:
        send(svc, alice, conv, "hi @bobq @carolq")
        assert (await client.next("notification"))["notification"]["kind"] == "mention"
        with pytest.raises(queue.Empty):
            endpoint.received.get(timeout=1.5)  # bob is online, carol muted the room
    finally:
        await client.ws.close()


def test_gone_subscriptions_are_removed(svc: RunningService, endpoint: PushEndpoint) -> None:
    alice, bob = svc.user(), svc.user()
    device = endpoint.device()
    endpoint.gone.add(device.path)
    assert svc.http.post("/push/subscriptions", json=device.subscription(endpoint.url),
                         headers=bob.headers).status_code == 201
    send(svc, alice, direct(svc, alice, bob), "hello?")
    deadline = time.monotonic() + 10
    while svc.http.get("/push/subscriptions", headers=bob.headers).json():
        assert time.monotonic() < deadline, "the subscription the push service answered 410 for was kept"
        time.sleep(0.1)


def test_subscriptions_are_per_user_and_https_only_by_default(new_database: Callable[..., str],
                                                              endpoint: PushEndpoint) -> None:
    svc = start_service(new_database(), push=PushSettings(vapid_private_pem=PEM))
    try:
        bob, eve = svc.user(), svc.user()
        sub = endpoint.device().subscription(endpoint.url)
        r = svc.http.post("/push/subscriptions", json=sub, headers=bob.headers)
        assert r.status_code == 422 and "https" in r.json()["detail"]
        sub["endpoint"] = "https://push.example.test/abc"
        loose = start_service(new_database(), push=PushSettings(vapid_private_pem=PEM, allow_http_endpoints=True))
        try:
            outside = {**sub, "endpoint": "http://push.example.test/abc"}
            r = loose.http.post("/push/subscriptions", json=outside, headers=loose.user().headers)
            assert r.status_code == 422 and "loopback" in r.json()["detail"]
        finally:
            loose.stop()
        made = svc.http.post("/push/subscriptions", json=sub, headers=bob.headers).json()
        assert svc.http.delete(f"/push/subscriptions/{made['id']}", headers=eve.headers).status_code == 404
        assert svc.http.delete(f"/push/subscriptions/{made['id']}", headers=bob.headers).status_code == 204
    finally:
        svc.stop()


def test_health_lists_the_capabilities(svc: RunningService) -> None:
    caps = svc.http.get("/health").json()["capabilities"]
    assert caps["push"]["vapid_public_key"] == public_key_b64(PEM)
    assert caps["attachments"]["max_bytes"] == 10 * 1024 * 1024 and "image/png" in caps["attachments"]["types"]
    assert caps["notifications"]["feed"] == "GET /notifications"
    paths = svc.http.get("/openapi.json").json()["paths"]
    for path in ("/conversations/{conversation_id}/attachments", "/notifications", "/push/subscriptions"):
        assert path in paths


def test_a_mention_in_a_community_is_pushed_with_the_community(svc: RunningService, endpoint: PushEndpoint) -> None:
    from tests.test_notifications import community, post

    alice, bob = named(svc, "alicecp"), named(svc, "bobcp")
    device = endpoint.device()
    assert svc.http.post("/push/subscriptions", json=device.subscription(endpoint.url),
                         headers=bob.headers).status_code == 201
    cid = community(svc, alice, bob)
    msg = post(svc, alice, cid, "over here @bobcp")
    body = json.loads(endpoint.received.get(timeout=10).plaintext)
    while body["message_id"] != msg["id"]:  # pushes of earlier tests' messages may still be queued
        body = json.loads(endpoint.received.get(timeout=10).plaintext)
    assert (body["kind"], body["community_id"], body["message_id"], body["title"]) == \
        ("mention", cid, msg["id"], "alicecp mentioned you")
    assert "conversation_id" not in body
