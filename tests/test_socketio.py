"""The reference speaks Socket.IO at namespace /messaging with `auth: {token}` (seed 004's gateway), beside
/realtime, on the same hub: real Socket.IO clients over loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from msgops import probes
from msgops.probes.realtime.client import RealtimeUnavailable
from tests.support import RunningService

pytestmark = pytest.mark.timeout(60)


class Client:
    """A Socket.IO client that records every event it receives."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.news = asyncio.Event()

        @self.sio.on("*", namespace="/messaging")
        async def any_event(name: str, data: Any = None) -> None:
            self.events.append((name, data))
            self.news.set()

    async def connect(self, svc: RunningService, token: str | None) -> None:
        await self.sio.connect(svc.url, namespaces=["/messaging"], socketio_path="socket.io",
                               auth={"token": token} if token else None, transports=["websocket"],
                               wait_timeout=5)

    async def wait(self, name: str, timeout: float = 3.0, **fields: Any) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for event, data in self.events:
                if event == name and all(str(data.get(k)) == str(v) for k, v in fields.items()):
                    return data
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            self.news.clear()
            try:
                await asyncio.wait_for(self.news.wait(), left)
            except TimeoutError:
                return None


async def test_websocket_connection_with_auth_token_joins_sends_and_receives(service: RunningService) -> None:
    """Seed 004: "Test WebSocket connection" — connect to /messaging with auth token."""
    a, b, stranger = service.user(), service.user(), service.user()
    conv = service.http.post("/conversations", json={"kind": "group", "title": "sio", "member_ids": [str(b.id)]},
                             headers=a.headers).json()["id"]
    ca, cb, cs = Client(), Client(), Client()
    try:
        await asyncio.gather(ca.connect(service, a.token), cb.connect(service, b.token),
                             cs.connect(service, stranger.token))
        assert await ca.wait("authenticated", user_id=a.id)
        joined = await ca.sio.call("join_conversation", {"conversation_id": conv}, namespace="/messaging")
        assert joined["type"] == "joined" and joined["conversation_id"] == conv
        await cb.sio.call("join_conversation", {"conversation_id": conv}, namespace="/messaging")
        refused = await cs.sio.call("join_conversation", {"conversation_id": conv}, namespace="/messaging")
        assert refused["type"] == "error" and refused["code"] == "not_found"

        ack = await ca.sio.call("send_message", {"conversation_id": conv, "content": "hello over socket.io",
                                                 "client_msg_id": "sio-1"}, namespace="/messaging")
        assert ack["type"] == "message_sent" and ack["client_msg_id"] == "sio-1"
        got = await cb.wait("message_received", conversation_id=conv)
        assert got and got["message"]["content"] == "hello over socket.io"

        await cb.sio.emit("typing_start", {"conversation_id": conv}, namespace="/messaging")
        assert await ca.wait("user_typing", user_id=b.id, typing=True)
        await cb.sio.emit("mark_read", {"conversation_id": conv, "seq": ack["seq"]}, namespace="/messaging")
        assert await ca.wait("message_read", user_id=b.id, seq=ack["seq"])
        beat = await ca.sio.call("heartbeat", {}, namespace="/messaging")
        assert beat["type"] == "heartbeat_ack"

        await cb.sio.disconnect()
        assert await ca.wait("user_offline", user_id=b.id, timeout=8)
        assert not [e for e, d in cs.events if conv in repr(d) and e != "error"]  # the stranger heard nothing
    finally:
        for client in (ca, cb, cs):
            await client.sio.disconnect()


async def test_a_connection_without_a_valid_token_is_refused(service: RunningService) -> None:
    for token in (None, "not-a-jwt"):
        client = Client()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(service, token)
        await client.sio.disconnect()


# --- the realtime probes over Socket.IO --------------------------------------------------------------

async def test_every_realtime_check_passes_over_socketio(service: RunningService) -> None:
    """Every realtime item of the built-in checklists, through the Socket.IO adapter."""
    from msgops import api
    from msgops.config import Target
    from msgops.engine import RunOptions, run_items
    from msgops.probes import Context
    from tests.support import JWT_SECRET

    target = Target(api_url=service.url, database_url=service.database_url, jwt_secret=JWT_SECRET,
                    realtime={"protocol": "socketio", "namespace": "/messaging"})
    _, _, items = api.select_items(target)
    items = [i for i in items if i.check and i.check.family == "realtime"]
    ctx = Context(target)
    try:
        results = await run_items(items, ctx, RunOptions(concurrency=8, timeout_s=60))
    finally:
        await ctx.close()
    assert ctx.leftovers == []  # the run's users, who share conversations, all erased at once
    bad = [f"{r.id} {r.status} {r.message[:200]}" for r in results if r.status != "pass"]
    assert not bad, bad
    assert {r.evidence["protocol"] for r in results} == {"socketio (namespace /messaging)"}
    assert len(results) >= 20

    # the adapter really speaks Socket.IO: a namespace the server does not have is refused, named
    wrong = Target(api_url=service.url, jwt_secret=JWT_SECRET, realtime={"protocol": "socketio", "namespace": "/chat"})
    ctx = Context(wrong)
    try:
        with pytest.raises(RealtimeUnavailable, match="namespace /chat"):
            await probes.get("realtime.delivery").fn(ctx)  # type: ignore[union-attr]
    finally:
        await ctx.close()


async def test_a_socketio_endpoint_that_cannot_be_right_is_named_before_the_run(service: RunningService) -> None:
    from msgops.probes.realtime.sio_adapter import refusal
    from msgops.realtimemap import parse
    from msgops.tokens import mint_token
    from tests.support import JWT_SECRET

    token = mint_token(JWT_SECRET, "4b7c5a8e-2f0d-4d5e-9c1a-0e3f2b6a7d91")
    assert await refusal(parse({"protocol": "socketio"}), service.url) is None  # refused only for want of a token
    assert await refusal(parse({"protocol": "socketio"}), service.url, token) is None
    wrong_path = await refusal(parse({"protocol": "socketio", "path": "/sockets"}), service.url, token)
    assert wrong_path and wrong_path.no_server and "fix realtime.url and realtime.path" in wrong_path.why
    # python-socketio answers a CONNECT to a namespace it does not serve with "Unable to connect"
    for given in (token, None):
        wrong_ns = await refusal(parse({"protocol": "socketio", "namespace": "/chat"}), service.url, given)
        assert wrong_ns and not wrong_ns.no_server, wrong_ns
        assert "namespace /chat" in wrong_ns.why and "'Unable to connect'" in wrong_ns.why
        assert "realtime.namespace in msgops.yaml" in wrong_ns.why
    # a handshake refusing a test user's token names personas
    forged = mint_token(JWT_SECRET[::-1], "4b7c5a8e-2f0d-4d5e-9c1a-0e3f2b6a7d91")
    refused = await refusal(parse({"protocol": "socketio"}), service.url, forged)
    assert refused and not refused.no_server and "refused a test user's connection" in refused.why
    assert "personas" in refused.why and "realtime.auth" in refused.why


def test_msgops_check_with_a_namespace_or_tokens_the_server_refuses(service: RunningService, tmp_path) -> None:
    """One line in the preflight naming the namespace, the answer and the fix; the realtime items are not
    evaluated (error, with that line), so the run is INCOMPLETE (exit 2) without a per-check timeout."""
    import json

    from tests.support import JWT_SECRET
    from tests.test_cli import msgops

    (tmp_path / "msgops.yaml").write_text(f"api_url: {service.url}\nrealtime:\n  protocol: socketio\n"
                                          "  namespace: /chat\n")
    proc = msgops("check", "--checklist", "004-spec-msg-001", "--tags", "realtime", "--json", "out.json",
                  cwd=tmp_path, env={"MSGOPS_JWT_SECRET": JWT_SECRET, "COLUMNS": "400"})
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    reason = (f"the Socket.IO server at {service.url} path /socket.io refused the namespace /chat (it answered "
              "'Unable to connect', a namespace it does not serve): set realtime.namespace in msgops.yaml")
    assert [line for line in proc.stdout.splitlines() if line.startswith("realtime (") and reason in line], proc.stdout
    results = json.loads((tmp_path / "out.json").read_text())["results"]
    realtime = [r for r in results if (r["kind"] or "").startswith("realtime.")]
    assert realtime and all(r["status"] == "error" and reason in r["message"] for r in realtime), realtime
    assert all(r["duration_ms"] < 1000 for r in realtime), realtime  # stopped by the preflight, not timeouts

    # the handshake refuses the test users' tokens (CONNECT_ERROR): one line naming personas
    (tmp_path / "msgops.yaml").write_text(f"api_url: {service.url}\nrealtime:\n  protocol: socketio\n")
    proc = msgops("check", "--checklist", "004-spec-msg-001", "--tags", "realtime", cwd=tmp_path,
                  env={"MSGOPS_JWT_SECRET": JWT_SECRET[::-1], "COLUMNS": "400"})
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr, (proc.stdout, proc.stderr)
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("realtime (")]
    assert "refused a test user's connection (it answered 'token signature is invalid')" in line, line
    assert "fix personas in msgops.yaml" in line, line


def test_msgops_check_stops_on_a_socketio_path_with_no_server_with_exit_3(service: RunningService, tmp_path) -> None:
    from tests.support import JWT_SECRET
    from tests.test_cli import assert_one_line_error, msgops

    (tmp_path / "msgops.yaml").write_text(f"api_url: {service.url}\nrealtime:\n  protocol: socketio\n"
                                          "  path: /sockets\n")
    proc = msgops("check", "--checklist", "004-spec-msg-001", cwd=tmp_path, env={"MSGOPS_JWT_SECRET": JWT_SECRET})
    assert_one_line_error(proc, 3, "no Socket.IO server answers", "fix realtime.url and realtime.path")
