"""`msgops load` against a chat service it did not build (tests/foreign_chat): users from its personas,
conversations made and messages sent and read through its API map, deliveries timed over its
Socket.IO under its own event and field names. A map that lacks an operation the
profile needs is refused before anything is made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from rich.console import Console

from msgops import apimap
from msgops.config import Target
from msgops.embedded import free_port
from msgops.errors import UserError
from msgops.load.operations import Prepared, prepare
from msgops.load.run import LoadOptions, execute
from tests.foreign_chat import app as foreign
from tests.support import run_in_thread

pytestmark = pytest.mark.timeout(180)
SEND = "POST /api/rooms/{id}/posts"

TINY = """
name: tiny
provision: {users: 4, group_size: 2}
spawn_rate: 50
settle: 0.5s
duration: 5s
delivery_timeout: 2s
drain: 2s
users: {sender: 3, reader: 1, listener: 4}
pacing: {sender: 1s, reader: 0.2s}  # ~25 reads: each of the three kinds almost surely drawn
reader_mix: {conversations: 1, history: 1, search: 1}
thresholds:
  - http.error_rate <= 0
"""


@pytest.fixture
def chat() -> Iterator[Target]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(foreign.create_app(), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    run_in_thread(server, "foreign chat")
    yield Target(api_url=f"http://127.0.0.1:{port}", personas=foreign.PERSONAS, api=foreign.API,
                 realtime=foreign.REALTIME, env={"FOREIGN_CHAT_SECRET": foreign.SECRET})
    server.should_exit = True


def run(target: Target, tmp_path: Path, profile: str = TINY) -> tuple[Any, str]:
    path = tmp_path / "tiny.yaml"
    path.write_text(profile)
    console = Console(record=True, width=200, force_terminal=False)
    results, _ = execute(LoadOptions(profile=str(path), target=target, json_out=tmp_path / "load.json",
                                     show_progress=False), console)
    return results, console.export_text()


def test_a_short_load_run_sends_through_the_map_and_personas(chat: Target, tmp_path: Path) -> None:
    results, output = run(chat, tmp_path)
    m = results.metrics
    assert m["http.error_rate"] == 0 and m["http.failures"] == 0, output
    assert m["messages.accepted"] and m["messages.accepted"] >= 9, output  # 3 senders, about 5 s at 1/s
    assert m["ws.connections"] == 4 and m["delivery.loss_rate"] == 0, output  # over its Socket.IO adapter
    # both members of each direct room listen, the sender too
    assert m["delivery.expected"] == 2 * m["messages.accepted"] and m["delivery.p95_ms"] is not None
    send = results.endpoints[SEND]
    assert send.requests == m["messages.accepted"] and send.operation == "send_message"
    assert {"GET /api/rooms", "GET /api/rooms/{id}/posts", "GET /api/rooms/{id}/search"} <= set(results.endpoints)
    assert results.endpoints["GET /api/rooms/{id}/search"].operation == "search"
    assert "no way to erase" in output  # the foreign chat has no personas.delete: said, never silent


def test_a_map_without_send_message_is_refused_before_the_run(chat: Target, tmp_path: Path) -> None:
    api = {**foreign.API, "operations": {k: v for k, v in foreign.API["operations"].items() if k != "send_message"}}
    broken = Target(api_url=chat.api_url, personas=chat.personas, api=api, realtime=chat.realtime, env=chat.env)
    with pytest.raises(UserError) as refused:
        run(broken, tmp_path)
    assert refused.value.exit_code == 3
    message = str(refused.value)
    assert "\n" not in message and "send_message" in message and "api.operations.send_message" in message
    assert not (tmp_path / "load.json").exists()


def test_database_provisioning_is_refused_on_a_target_without_the_reference_map(chat: Target,
                                                                                tmp_path: Path) -> None:
    with pytest.raises(UserError) as refused:
        run(chat, tmp_path, TINY.replace("{users: 4,", "{via: database, users: 4,"))
    assert refused.value.exit_code == 3 and "provision.via: database" in str(refused.value)


def test_sends_the_target_refuses_are_counted_as_errors(chat: Target, tmp_path: Path) -> None:
    """The run reports what the target answered: a send_message mapped to a route it does not have fails."""
    operations = {**foreign.API["operations"], "send_message": {
        **foreign.API["operations"]["send_message"], "request": "POST /api/rooms/{conversation_id}/nope"}}
    wrong = Target(api_url=chat.api_url, personas=chat.personas, api={**foreign.API, "operations": operations},
                   realtime=chat.realtime, env=chat.env)
    results, output = run(wrong, tmp_path, TINY.replace("listener: 4", "listener: 0"))
    failed = results.endpoints["POST /api/rooms/{id}/nope"]
    assert failed.requests > 0 and failed.failures == failed.requests, output
    assert not results.metrics["messages.accepted"] and results.metrics["http.error_rate"] > 0


def test_a_profile_with_communities_needs_the_maps_community_operations(chat: Target, tmp_path: Path) -> None:
    with pytest.raises(UserError) as refused:
        run(chat, tmp_path, TINY.replace("group_size: 2}", "group_size: 2, communities: 1}"))
    assert refused.value.exit_code == 3 and "operation create_community" in str(refused.value)


def test_a_prepared_request_fills_only_what_the_workload_passes() -> None:
    op = apimap.Operation.model_validate({
        "request": "GET /r/{conversation_id}/p?limit={limit}&before={before}",
        "json": {"text": "{content}", "to": ["{conversation_id}"], "note": "re {content}", "parent": "{parent_id}"},
        "status": [201]})
    prepared = Prepared.from_dict(prepare("send_message", op, frozenset({"conversation_id", "content", "limit"}))
                                  .to_dict())  # as the plan carries it to the Locust processes
    values = {"conversation_id": "a b", "content": "hi", "limit": 5}
    assert prepared.name == "/r/{id}/p" and prepared.endpoint == "GET /r/{id}/p"
    assert prepared.url(values) == "/r/a%20b/p?limit=5"  # before= has no value: left out
    assert prepared.json(values) == {"text": "hi", "to": ["a b"], "note": "re hi"}  # parent_id not passed
    assert prepared.accepted(201) and not prepared.accepted(200)
