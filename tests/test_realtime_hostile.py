"""Malformed WebSocket frames: a 44xx close before authentication, an error event after, never 1011."""

from __future__ import annotations

import json
import logging

import pytest

from tests.support import RunningService
from tests.test_realtime_helpers import Client


@pytest.mark.parametrize("first", [
    {"type": ["auth"], "token": "x"},
    {"type": {"auth": 1}},
    {"type": None},
    [1, 2],
    "",
])
async def test_a_malformed_first_frame_closes_with_4401_and_no_traceback(
        service: RunningService, first: object, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="service")
    client = await Client.open(service, None, auth=False)
    await client.send_raw(first if isinstance(first, str) else json.dumps(first))
    assert await client.closed_with() == 4401
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


async def test_a_malformed_frame_after_authentication_is_an_error_event(
        service: RunningService, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="service")
    client = await Client.open(service, service.user())
    await client.send_raw(json.dumps({"type": ["heartbeat"], "ref": "r1"}))
    error = await client.next("error")
    assert error["code"] == "unknown_event" and error["ref"] == "r1"
    await client.send(type="heartbeat", ref="h")
    assert (await client.next("heartbeat_ack"))["ref"] == "h"
    await client.close()
    assert not [r for r in caplog.records if r.exc_info]
