"""What a client sees when something goes wrong: a generic message and a request id, never the
database's own words; and hostile input answered with 4xx, never 500."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import jwt
import psycopg
import pytest

from service import http_errors
from service.auth import mint_token
from tests.support import JWT_SECRET, RunningService


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


# --- hostile input: NUL characters and odd claims are 4xx, never 500 ----------------------------------

def _token(**claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated", "iat": now,
               "exp": now + 600, **claims}
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize("claims", [
    {"exp": 10**30},
    {"exp": "tomorrow"},
    {"iat": -5},
    {"user_metadata": "a string"},
    {"app_metadata": ["a", "list"]},
    {"name": "nul\x00inside"},
    {"user_metadata": {"full_name": "nul\x00inside"}},
    {"big": 10**40},
])
def test_signed_tokens_with_odd_claims_are_401(service: RunningService, claims: dict[str, Any]) -> None:
    r = service.http.get("/me", headers={"Authorization": f"Bearer {_token(**claims)}"})
    assert r.status_code == 401, (claims, r.status_code, r.text)
    assert service.http.get("/health").status_code == 200  # and the connection pool is fine


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("GET", "/communities", {"params": {"q": "\x00"}}),
    ("GET", "/communities", {"params": {"q": "a\x00b"}}),
    ("POST", "/communities", {"json": {"name": "n", "description": "d"}, "messages": {"client_msg_id": "\x00"}}),
    ("POST", "/conversations", {"json": {"kind": "group", "title": "\x00"}}),
])
def test_nul_characters_are_refused_not_500(service: RunningService, method: str, path: str,
                                            kwargs: dict[str, Any]) -> None:
    user = service.user()
    extra = kwargs.pop("messages", None)
    r = service.http.request(method, path, headers=user.headers, **kwargs)
    if extra is not None:  # the NUL goes to the community's message stream
        assert r.status_code == 201
        r = service.http.post(f"/communities/{r.json()['id']}/messages", json={"content": "x", **extra},
                              headers=user.headers)
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text)


def test_nul_in_a_display_name_is_refused_and_never_reaches_the_database(service: RunningService) -> None:
    user = service.user()
    before = service.http.get("/me", headers=user.headers).json()["display_name"]
    for name in ("a\x00b", "\x00"):
        r = service.http.patch("/me", json={"display_name": name}, headers=user.headers)
        assert r.status_code == 422 and "NUL" in r.text, r.text
    assert service.http.get("/me", headers=user.headers).json()["display_name"] == before


def test_a_name_claim_is_cleaned_like_any_text(service: RunningService) -> None:
    uid = uuid.uuid4()
    token = mint_token(JWT_SECRET, uid, extra={"user_metadata": {"full_name": "<b>Eve</b>\u202egnp.exe"}})
    assert service.http.get("/me", headers={"Authorization": f"Bearer {token}"}).json()["display_name"] == \
        "Evegnp.exe"


def test_a_value_the_driver_refuses_is_400(service: RunningService) -> None:
    """The net under every route: text with NUL that no validator caught answers 400, not 500."""
    with psycopg.connect(service.database_url) as conn, pytest.raises(psycopg.DataError) as refused:
        conn.execute("select %s::text", ("a\x00b",))
    status, message, _ = http_errors.answer(refused.value)
    assert status == 400 and "NUL" in message
