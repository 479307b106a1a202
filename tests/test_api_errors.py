"""What a client sees when something goes wrong: a generic message and a request id, never the
database's own words; and hostile input answered with 4xx, never 500."""

from __future__ import annotations

import logging

import pytest

from tests.support import RunningService


def test_a_policy_violation_is_a_generic_403_with_the_detail_in_the_log(
        service: RunningService, caplog: pytest.LogCaptureFixture) -> None:
    owner, outsider = service.user(), service.user()
    community = service.http.post("/communities", json={"name": "open"}, headers=owner.headers).json()
    caplog.set_level(logging.INFO, logger="service.errors")
    r = service.http.post(f"/communities/{community['id']}/messages", json={"content": "hi"},
                          headers={**outsider.headers, "X-Request-ID": "client-chosen-id-1"})
    assert r.status_code == 403
    assert "row-level security" not in r.text and "community_messages" not in r.text
    assert r.json()["request_id"] == "client-chosen-id-1" == r.headers["x-request-id"]
    logged = [rec for rec in caplog.records if getattr(rec, "sqlstate", None) == "42501"]
    assert logged and "row-level security" in logged[-1].error
    assert logged[-1].request_id == "client-chosen-id-1"


def test_every_answer_carries_a_request_id(service: RunningService) -> None:
    first, second = service.http.get("/health"), service.http.get("/health")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    # an id that could forge log lines is replaced
    r = service.http.get("/health", headers={"X-Request-ID": "x\"} evil"})
    assert r.headers["x-request-id"] != "x\"} evil"


def test_our_own_functions_still_explain_themselves(service: RunningService) -> None:
    """A RAISE in the service's SQL writes a message meant for the client: that one is kept."""
    attendee = service.user()
    r = service.http.post("/broadcasts", json={"audience": "everyone", "phase": "pre_show", "content": "hi"},
                          headers=attendee.headers)
    assert r.status_code == 403 and r.json()["detail"] == "role attendee may not broadcast to everyone in pre_show"
