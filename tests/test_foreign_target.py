"""msgops against a chat service it did not build (tests/foreign_chat): other routes and JSON fields,
Socket.IO only, described to msgops by an API map, a realtime adapter and personas. The HTTP and
realtime checks pass there, and each fails when the service is broken in exactly its way."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from msgops import apimap, probes
from msgops.config import Target
from msgops.embedded import free_port
from msgops.errors import UserError
from msgops.probes import Context
from msgops.results import Outcome
from tests.foreign_chat import app as foreign
from tests.support import run_in_thread

pytestmark = pytest.mark.timeout(120)
HEADERS = ["Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy",
           "Permissions-Policy"]


def start(breaks: foreign.Breaks | None = None) -> tuple[str, uvicorn.Server]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(foreign.create_app(breaks), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    run_in_thread(server, "foreign chat")
    return f"http://127.0.0.1:{port}", server


@pytest.fixture
def chat() -> Iterator[Any]:
    servers: list[uvicorn.Server] = []

    def make(**breaks: Any) -> Target:
        url, server = start(foreign.Breaks(**breaks))
        servers.append(server)
        return Target(api_url=url, personas=foreign.PERSONAS, api=foreign.API, realtime=foreign.REALTIME,
                      env={"FOREIGN_CHAT_SECRET": foreign.SECRET})

    yield make
    for server in servers:
        server.should_exit = True


async def run(target: Target, kind: str, **params: Any) -> tuple[Outcome, Context]:
    ctx = Context(target)
    implementation = probes.get(kind)
    assert implementation is not None
    try:
        return await implementation.fn(ctx, **params), ctx
    finally:
        await ctx.close()


CHECKS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    # kind, parameters, the break that must make it fail, what the failure names
    ("realtime.no_leak", {}, {"outsiders_enter": True}, "who is not a member"),
    ("http.no_email_leak", {}, {"leak_email": True}, "authorEmail"),
    ("http.security_headers", {"headers": HEADERS}, {"drop_header": "X-Frame-Options"}, "X-Frame-Options"),
    ("http.rate_limit", {"action": "send_message"}, {"no_rate_limit": True}, "11 of 11 attempts accepted"),
]


@pytest.mark.parametrize(("kind", "params", "breaks", "named"), CHECKS, ids=[c[0] for c in CHECKS])
def test_a_check_passes_on_the_foreign_chat_and_fails_when_it_is_broken(chat, kind, params, breaks, named):
    outcome, ctx = asyncio.run(run(chat(), kind, **params))
    assert outcome.status == "pass", outcome
    assert all("no way to erase" in line for line in ctx.leftovers)  # said, never silent
    broken, _ = asyncio.run(run(chat(**breaks), kind, **params))
    assert broken.status == "fail", broken
    assert named in broken.message + repr(broken.evidence), broken


def test_realtime_delivery_over_the_foreign_socketio(chat):
    outcome, ctx = asyncio.run(run(chat(), "realtime.delivery"))
    assert outcome.status == "pass", outcome
    assert ctx.leftovers and "no way to erase them" in ctx.leftovers[0] and "personas.delete" in ctx.leftovers[0]


def test_an_operation_the_api_lacks_is_skipped(chat):
    with pytest.raises(probes.Skip, match="not part of this API"):
        asyncio.run(run(chat(), "http.sql_injection"))


def test_a_wrong_api_map_is_a_configuration_error():
    for raw, fragment in [({"operations": {"send": {"request": "POST /x"}}}, "unknown operation"),
                          ({"operations": {"send_message": {"request": "POST /rooms/{room}/posts"}}},
                           "unknown placeholder {room}"),
                          ({"operations": {"report": {"request": "SEND /x"}}}, 'expected "METHOD /path"'),
                          ({"defaults": "nestjs"}, "api.defaults")]:
        with pytest.raises(UserError, match=fragment) as caught:
            apimap.parse(raw)
        assert caught.value.exit_code == 3 and "\n" not in str(caught.value)


def test_msgops_check_stops_on_a_wrong_api_map_or_realtime_section_with_exit_3(tmp_path):
    from tests.test_cli import assert_one_line_error, msgops

    config = tmp_path / "msgops.yaml"
    config.write_text("api_url: http://127.0.0.1:9\napi:\n  operations:\n    send_msg: {request: POST /x}\n")
    assert_one_line_error(msgops("check", "--checklist", "004-spec-msg-001", cwd=tmp_path,
                                 env={"MSGOPS_JWT_SECRET": "s"}), 3, "api: operations.send_msg", "unknown operation")
    config.write_text("api_url: http://127.0.0.1:9\nrealtime:\n  protocol: socketio\n  events: {joined_room: x}\n")
    assert_one_line_error(msgops("check", "--checklist", "004-spec-msg-001", cwd=tmp_path,
                                 env={"MSGOPS_JWT_SECRET": "s"}), 3, "realtime.events", "unknown event")


def test_an_api_map_derived_from_the_targets_openapi(chat):
    """operationIds (createRoom, sendPost, removePerson, listPosts) and JSON schemas give the map."""
    from msgops.apimap_openapi import derive

    target = chat()
    doc = httpx.get(f"{target.api_url}/openapi.json").json()
    derived = derive(doc)
    assert derived["create_group"].request == "POST /api/rooms"
    assert derived["create_group"].json_body == {"name": "{title}", "members": "{member_ids}"}
    assert derived["create_group"].response == {"id": "room.roomId"}
    assert derived["send_message"].json_body == {"text": "{content}", "nonce": "{client_msg_id}"}
    assert derived["remove_member"].request == "DELETE /api/rooms/{conversation_id}/people/{user_id}"
    assert "report" not in derived
    derived_target = Target(api_url=target.api_url, personas=target.personas, realtime=target.realtime,
                            api={"defaults": "none", "derive": "openapi"}, env=target.env)
    outcome, _ = asyncio.run(run(derived_target, "realtime.no_leak"))
    assert outcome.status == "pass", outcome
