"""Sends served before FastAPI's routing (service/send_path.py): well-formed sends never reach the
router; everything else does, with its body, and is answered exactly as before."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from service.send_path import SendFastPath
from tests.support import RunningService, User


class CountingApp:
    """Counts the requests that go on past the fast path (to the router), and passes them on."""

    def __init__(self, app: Any) -> None:
        self.app, self.paths = app, []  # type: list[str]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.paths.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


@pytest.fixture
def routed(make_service: Callable[..., RunningService]) -> Iterator[tuple[RunningService, CountingApp]]:
    svc = make_service(rate_limits={})
    svc.http.get("/health")  # builds the middleware stack
    layer: Any = svc.server.config.loaded_app
    while not isinstance(layer, SendFastPath):
        layer = getattr(layer, "app", None) or layer.middleware_stack
    counter = CountingApp(layer.app)
    layer.app = counter
    yield svc, counter


def group(svc: RunningService, owner: User, *members: User) -> str:
    r = svc.http.post("/conversations", headers=owner.headers,
                      json={"kind": "group", "title": "t", "member_ids": [str(m.id) for m in members]})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_a_well_formed_send_is_served_before_the_router(routed: tuple[RunningService, CountingApp]) -> None:
    svc, router = routed
    alice, bob = svc.user(), svc.user()
    conv = group(svc, alice, bob)
    before = len(router.paths)
    r = svc.http.post(f"/conversations/{conv}/messages", headers=alice.headers,
                      json={"content": "<i>fast</i>", "client_msg_id": "f-1"})
    assert r.status_code == 201, r.text
    assert r.json()["content"] == "fast" and r.json()["seq"] == 1 and r.json()["reactions"] == {}
    again = svc.http.post(f"/conversations/{conv}/messages", headers=alice.headers,
                          json={"content": "<i>fast</i>", "client_msg_id": "f-1"})
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    # Refusals of the send itself are answered here too, by the app's handlers.
    outsider = svc.user()
    assert svc.http.post(f"/conversations/{conv}/messages", headers=outsider.headers,
                         json={"content": "hi"}).status_code == 404
    community = svc.http.post("/communities", headers=alice.headers, json={"name": f"f-{uuid.uuid4().hex[:6]}"})
    cid = community.json()["id"]
    posted = svc.http.post(f"/communities/{cid}/messages", headers=alice.headers, json={"content": "a & b"})
    assert posted.status_code == 201 and posted.json()["content"] == "a &amp; b"  # cleaned once, not twice
    assert svc.http.post(f"/communities/{cid}/messages", headers=bob.headers,
                         json={"content": "hi"}).status_code == 403
    assert [p for p in router.paths[before:] if p.endswith("/messages")] == []
    # The route stays the label of metrics.
    metrics = svc.http.get("/metrics").text
    assert 'route="/conversations/{conversation_id}/messages",status="201"' in metrics


def test_anything_else_goes_to_the_route_with_its_body(routed: tuple[RunningService, CountingApp]) -> None:
    svc, router = routed
    alice = svc.user()
    conv = group(svc, alice)
    path = f"/conversations/{conv}/messages"
    cases = [
        ({}, {"content": "no token"}, 401),
        ({"Authorization": "Bearer not-a-jwt"}, {"content": "bad token"}, 401),
        (alice.headers, {"content": ""}, 422),
        (alice.headers, {"content": "x", "unknown": 1}, 422),
    ]
    for headers, body, status in cases:
        before = len(router.paths)
        r = svc.http.post(path, headers=headers, json=body)
        assert r.status_code == status, (body, r.text)
        assert router.paths[before:] == [f"POST {path}"], body
    before = len(router.paths)
    r = svc.http.post(path, headers={**alice.headers, "Content-Type": "text/plain"}, content=b"not json")
    assert r.status_code == 422 and router.paths[before:] == [f"POST {path}"]
    before = len(router.paths)
    assert svc.http.post("/conversations/not-a-uuid/messages", headers=alice.headers,
                         json={"content": "x"}).status_code == 404
    assert router.paths[before:] == ["POST /conversations/not-a-uuid/messages"]
