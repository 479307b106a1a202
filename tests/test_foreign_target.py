"""msgops against a chat service it did not build (tests/foreign_chat): other routes and JSON fields,
Socket.IO only, described to msgops by an API map, a realtime adapter and personas. The HTTP and
realtime checks pass there, and each fails when the service is broken in exactly its way."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from msgops import apimap, probes
from msgops.config import Target
from msgops.embedded import free_port
from msgops.errors import UserError
from msgops.probes.context import CannotEvaluate
from tests.foreign_chat import app as foreign
from tests.support import run_in_thread
from tests.support import run_probe as run

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


FLOWS: list[tuple[str, dict[str, Any], str]] = [
    # flow, the break that must make it fail, the step that fails
    ("send_message", {"unseen_stays_zero": True}, "attendee2's list shows the conversation with 1 unread"),
    ("edit_delete_message", {"anyone_edits": True}, "attendee2 cannot edit it"),
    ("search_messages", {"search_everywhere": True}, "exactly the matching message is found"),
    ("pagination", {"page_repeats": True}, "then seq 3..7, more before it"),
    ("unread_counts", {"unseen_stays_zero": True}, "attendee2 has 3 unread"),
]


@pytest.mark.parametrize(("flow", "breaks", "step"), FLOWS, ids=[f[0] for f in FLOWS])
def test_a_messaging_flow_passes_on_the_foreign_chat_and_fails_when_it_is_broken(chat, flow, breaks, step):
    outcome, _ = asyncio.run(run(chat(), "http.flow", flow=flow))
    assert outcome.status == "pass", outcome
    requests = [s["request"] for s in outcome.evidence["steps"] if "request" in s]
    assert requests and all(r.split(" ", 1)[1].startswith("/api/rooms") for r in requests), requests
    broken, _ = asyncio.run(run(chat(**breaks), "http.flow", flow=flow))
    assert broken.status == "fail", broken
    failing = [s for s in broken.evidence["steps"] if not s["ok"]]
    assert [s["step"] for s in failing] == [step] and step in broken.message, broken


def test_probes_that_scan_the_api_read_through_the_map(chat):
    """SQL payloads go through the chat's posts, search and ids; it keeps markup, which the XSS check names."""
    target = chat()
    injection, _ = asyncio.run(run(target, "http.sql_injection"))
    assert injection.status == "pass", injection
    assert any(s.startswith("query:") for s in injection.evidence["statuses"]), injection.evidence
    xss, _ = asyncio.run(run(target, "http.xss_sanitized"))
    assert xss.status == "fail" and "content returned by POST /api/rooms/" in xss.message, xss


def test_endpoints_a_checklist_names_are_looked_up_through_the_map(chat):
    named = ["POST /conversations/:id/messages", "GET /conversations/:id/messages", "PATCH /messages/:id"]
    outcome, _ = asyncio.run(run(chat(), "http.endpoints", endpoints=named))
    assert outcome.status == "pass", outcome
    assert [e["as"] for e in outcome.evidence["endpoints"]] == [
        "POST /api/rooms/{room_id}/posts", "GET /api/rooms/{room_id}/posts", "PUT /api/rooms/{room_id}/posts/{post_id}"]
    with pytest.raises(probes.Skip, match=r"POST /communities \(operation create_community\)"):
        asyncio.run(run(chat(), "http.endpoints", endpoints=[*named, "POST /communities"]))


def test_what_the_map_lacks_is_skipped_or_named(chat):
    with pytest.raises(probes.Skip, match=r"operation create_community is not in msgops\.yaml api\.operations"):
        asyncio.run(run(chat(), "http.flow", flow="create_community"))
    target = chat()
    operations = {**foreign.API["operations"], "list_messages": {"request": "GET /api/rooms/{conversation_id}/posts",
                                                                 "response": {"messages": "posts"}}}
    paging_unknown = Target(api_url=target.api_url, personas=target.personas, env=target.env,
                            api={"defaults": "none", "operations": operations})
    with pytest.raises(probes.Skip, match=r"operation list_messages .* has no \{limit\} placeholder"):
        asyncio.run(run(paging_unknown, "http.flow", flow="pagination"))
    bare = {**foreign.API["operations"], "list_conversations": {"request": "GET /api/rooms"}}  # rooms not mapped
    unmapped_list = Target(api_url=target.api_url, personas=target.personas, env=target.env,
                           api={"defaults": "none", "operations": bare})
    with pytest.raises(CannotEvaluate, match=r"list_conversations \(GET /api/rooms answered 200\) has no field "
                                             r"'conversations'.*api\.operations\.list_conversations\.response"):
        asyncio.run(run(unmapped_list, "http.flow", flow="send_message"))


def test_a_wrong_api_map_is_a_configuration_error():
    for raw, fragment in [({"operations": {"send": {"request": "POST /x"}}}, "unknown operation"),
                          ({"operations": {"send_message": {"request": "POST /rooms/{room}/posts"}}},
                           "unknown placeholder {room}"),
                          ({"operations": {"report": {"request": "SEND /x"}}}, 'expected "METHOD /path"'),
                          ({"defaults": "nestjs"}, "api.defaults"),
                          ({"operations": {"search": {"request": "GET /s", "items": {"hits": {"id": "postId"}}}}},
                           "items.hits: not a list this operation returns (it returns results)"),
                          ({"operations": {"search": {"request": "GET /s", "items": {"results": {"ID": "postId"}}}}},
                           "items.results.ID: msgops reads no field 'ID'"),
                          ({"operations": {"search": {"request": "GET /s", "response": {"results": "hits..x"}}}},
                           "'hits..x' is not a dotted path"),
                          ({"operations": {"mark_read": {"request": "POST /s", "response": {"unread": "n"}}}},
                           "response.unread: msgops reads no field 'unread'")]:
        with pytest.raises(UserError, match=re.escape(fragment)) as caught:
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
    assert derived["get_message"].request == "GET /api/rooms/{conversation_id}/posts/{message_id}"
    assert derived["get_conversation"].request == "GET /api/rooms/{conversation_id}"
    assert derived["list_conversations"].request == "GET /api/rooms"
    assert derived["list_messages"].request == ("GET /api/rooms/{conversation_id}/posts?limit={limit}&before={before}"
                                                "&after={after}&since={since_seq}")
    assert "report" not in derived
    derived_target = Target(api_url=target.api_url, personas=target.personas, realtime=target.realtime,
                            api={"defaults": "none", "derive": "openapi"}, env=target.env)
    outcome, _ = asyncio.run(run(derived_target, "realtime.no_leak"))
    assert outcome.status == "pass", outcome
