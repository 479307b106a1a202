"""http.attachments and http.notifications on a chat service msgops did not build (tests/foreign_chat):
multipart uploads, signed links and an alert feed under routes and JSON fields of its own, described by
its API map. Each check passes there and fails when the service is broken in exactly its way."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from msgops import apimap, probes
from msgops.config import Target
from msgops.errors import UserError
from tests.foreign_chat import app as foreign
from tests.foreign_chat import files
from tests.test_foreign_target import run, start

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def chat() -> Iterator[Any]:
    servers: list[Any] = []

    def make(api: dict[str, Any] | None = None, **breaks: Any) -> Target:
        url, server = start(files.Breaks(**breaks))
        servers.append(server)
        return Target(api_url=url, personas=foreign.PERSONAS, api=api or files.API, realtime=foreign.REALTIME,
                      env={"FOREIGN_CHAT_SECRET": foreign.SECRET})

    yield make
    for server in servers:
        server.should_exit = True


CHECKS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    # kind, parameters, the break that must make it fail, what the failure names
    ("http.attachments", {"check": "size_limit", "limit_bytes": files.MAX_BYTES}, {"no_size_limit": True},
     "not 413"),
    ("http.attachments", {"check": "type_sniffing"}, {"trust_file_name": True}, "msgops-probe.png"),
    ("http.attachments", {"check": "member_only_urls"}, {"outsiders_get_links": True},
     "a non-member obtained attachment"),
    ("http.notifications", {"check": "mention_members_only"}, {"mention_anyone": True}, "not in the conversation"),
]


@pytest.mark.parametrize(("kind", "params", "breaks", "named"), CHECKS, ids=[c[1]["check"] for c in CHECKS])
def test_a_feature_check_passes_on_the_foreign_chat_and_fails_when_it_is_broken(chat, kind, params, breaks, named):
    outcome, _ = asyncio.run(run(chat(), kind, **params))
    assert outcome.status == "pass", outcome
    broken, _ = asyncio.run(run(chat(**breaks), kind, **params))
    assert broken.status == "fail", broken
    assert named in broken.message, broken


def test_a_muted_room_is_silent_on_the_foreign_chat(chat):
    outcome, _ = asyncio.run(run(chat(), "http.notifications", check="muted_room_silent"))
    assert outcome.status == "pass", outcome


def test_probe_uploads_are_deleted_when_the_run_ends(chat):
    target = chat()
    outcome, ctx = asyncio.run(run(target, "http.attachments", check="type_sniffing"))
    assert outcome.status == "pass", outcome
    assert not any("attachment" in line for line in ctx.leftovers), ctx.leftovers


@pytest.mark.parametrize(("kind", "check", "operation"), [
    ("http.attachments", "member_only_urls", "upload_attachment"),
    ("http.attachments", "deleted_message_files", "attach_attachment"),
    ("http.notifications", "mention_members_only", "list_notifications"),
    ("http.notifications", "channel_notifications", "set_community_notifications"),
])
def test_an_operation_the_foreign_map_lacks_skips_the_check(chat, kind, check, operation):
    api = {**files.API, "operations": {k: v for k, v in files.API["operations"].items() if k != operation}}
    with pytest.raises(probes.Skip, match=f"not part of this API: operation {operation} "):
        asyncio.run(run(chat(api), kind, check=check))


def test_a_wrong_file_body_in_the_map_is_a_configuration_error():
    upload = "POST /api/rooms/{conversation_id}/files"
    for op, fragment in [({"request": upload, "multipart": {"blob": "{file}"}, "json": {"a": 1}},
                          "json, multipart and content are different bodies"),
                         ({"request": upload, "multipart": {"blob": "{blob}"}}, "unknown placeholder {blob}"),
                         ({"request": upload, "content": "{file}", "headers": {"X-Name": "{name}"}},
                          "unknown placeholder {name}"),
                         ({"request": upload, "content": "{filename}"}, "upload_attachment.content")]:
        with pytest.raises(UserError, match=fragment) as caught:
            apimap.parse({"operations": {"upload_attachment": op}})
        assert caught.value.exit_code == 3 and "\n" not in str(caught.value)
