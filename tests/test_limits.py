"""The service's edge: authentication before the body, a body limit enforced while reading, a token
cache bounded by bytes."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from service import auth
from service.auth import AuthError, TokenVerifier, mint_token
from tests.support import JWT_SECRET, RunningService


def _first_answer(service: RunningService, headers: str, within: float = 3.0) -> tuple[int, float]:
    """Send only the head of a request that announces a huge body; return the status and how fast it came."""
    url = urlsplit(service.url)
    with socket.create_connection((url.hostname, url.port), timeout=within) as sock:
        started = time.monotonic()
        sock.sendall(f"POST /conversations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 100000000\r\n{headers}\r\n".encode() + b'{"kind": ')
        head = sock.recv(4096).decode("latin-1")
        return int(head.split(" ", 2)[1]), time.monotonic() - started


def test_a_body_is_not_read_before_the_token_is_checked(service: RunningService) -> None:
    status, _ = _first_answer(service, "")
    assert status == 401
    status, _ = _first_answer(service, "Authorization: Bearer not-a-token\r\n")
    assert status == 401


def test_the_guards_refusals_carry_the_edge_headers_and_are_counted(service: RunningService) -> None:
    """A 401 or 413 from the body guard is an answer like any other: security headers, no-store, the
    request id, and a line in the request metrics."""
    def refused_count() -> dict[str, float]:
        text = service.http.get("/metrics").text
        counts: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("msgops_http_requests_total{") and 'method="POST"' in line:
                status = line.split('status="', 1)[1].split('"', 1)[0]
                counts[status] = counts.get(status, 0.0) + float(line.rsplit(" ", 1)[1])
        return counts

    before = refused_count()
    user = service.user()
    for headers, status in (({}, 401), ({"Authorization": f"Bearer {user.token}"}, 413)):
        r = service.http.post("/conversations", content=b"x" * 2_000_000,
                              headers={"Content-Type": "application/json", **headers})
        assert r.status_code == status
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["x-request-id"]
    after = refused_count()
    assert after.get("401", 0) - before.get("401", 0) >= 1
    assert after.get("413", 0) - before.get("413", 0) >= 1


def test_a_body_over_the_limit_is_refused_before_it_is_read(service: RunningService) -> None:
    user = service.user()
    status, _ = _first_answer(service, f"Authorization: Bearer {user.token}\r\n")
    assert status == 413


def test_a_chunked_body_is_cut_off_while_it_is_read(service: RunningService) -> None:
    user = service.user()
    limit = service.settings.max_body_bytes

    def chunks() -> Iterator[bytes]:
        yield b'{"kind": "group", "title": "'
        for _ in range(limit // 1000 + 2):
            yield b"x" * 1000
        yield b'"}'

    r = service.http.post("/conversations", content=chunks(), headers={**user.headers,
                                                                        "Content-Type": "application/json"})
    assert r.status_code == 413
    assert service.http.get("/health").status_code == 200


def test_the_longest_message_fits_even_fully_escaped(service: RunningService) -> None:
    user = service.user()
    conv = service.http.post("/conversations", json={"kind": "group", "title": "t"}, headers=user.headers).json()
    body = json.dumps({"content": "\U0001f600" * 5000}, ensure_ascii=True)  # 12 bytes per character
    r = service.http.post(f"/conversations/{conv['id']}/messages", content=body,
                          headers={**user.headers, "Content-Type": "application/json"})
    assert r.status_code == 201, r.text[:200]


def test_the_body_limit_is_configurable(make_service) -> None:
    small = make_service(max_body_bytes=100)
    user = small.user()
    r = small.http.post("/conversations", json={"kind": "group", "title": "t" * 90}, headers=user.headers)
    assert r.status_code == 413
    assert small.http.post("/conversations", json={"kind": "group", "title": "t"},
                           headers=user.headers).status_code == 201


def test_the_token_cache_is_bounded_by_bytes() -> None:
    verifier = TokenVerifier(JWT_SECRET, "authenticated", ("HS256",), cache_bytes=256 * 1024)
    padding = "p" * (auth.MAX_TOKEN_BYTES // 2)
    tokens = [mint_token(JWT_SECRET, uuid.uuid4(), extra={"pad": padding}) for _ in range(300)]
    for token in tokens:
        verifier.verify(token)
        assert verifier.cached_bytes <= 256 * 1024
    assert verifier.verify(tokens[-1]).sub is not None  # the newest are still there
    with pytest.raises(AuthError, match="over"):
        verifier.verify(mint_token(JWT_SECRET, uuid.uuid4(), extra={"pad": "p" * 1_000_000}))
