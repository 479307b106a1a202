"""Connection-level limits: idle and slowloris connections are closed, one client cannot hold every
descriptor, and a WebSocket consumer that stops reading still gets its 4008 close frame."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import psycopg
import pytest

from service.settings import parse_rate_limits
from tests.support import RunningService, User


def _socket(service: RunningService) -> socket.socket:
    url = urlsplit(service.url)
    return socket.create_connection((url.hostname, url.port), timeout=5)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True if the server closes the connection within `seconds` (whatever it sent before)."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if sock.recv(4096) == b"":
                return True
    except (TimeoutError, ConnectionResetError):
        return False
    return False


@pytest.fixture(scope="module")
def strict(new_database: Callable[..., str]) -> RunningService:
    from tests.support import start_service

    running = start_service(new_database(), header_timeout_s=0.5, body_timeout_s=0.5, keepalive_timeout_s=1,
                            max_connections_per_client=8)
    yield running  # type: ignore[misc]
    running.stop()


def test_an_idle_connection_is_closed(strict: RunningService) -> None:
    with _socket(strict) as sock:
        assert _closed_within(sock, 3)


def test_a_slowloris_head_is_cut_off(strict: RunningService) -> None:
    with _socket(strict) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(20):  # one header byte every 0.1 s: the head never completes
                sock.sendall(b"X")
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert _closed_within(sock, 3)
        assert time.monotonic() - started < 3


def test_a_trickled_body_is_cut_off(strict: RunningService) -> None:
    user = strict.user()
    with _socket(strict) as sock:
        sock.sendall(f"POST /conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user.token}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode())
        assert _closed_within(sock, 3)


def test_an_idle_keep_alive_connection_is_closed(strict: RunningService) -> None:
    with _socket(strict) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert _closed_within(sock, 4)


def test_one_client_cannot_hold_every_connection(strict: RunningService) -> None:
    held = [_socket(strict) for _ in range(8)]
    try:
        with _socket(strict) as extra:
            extra.settimeout(3)
            assert extra.recv(4096).startswith(b"HTTP/1.1 503")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert strict.http.get("/health").status_code == 200  # the cap counts open connections only


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _fill(service: RunningService, conversation_id: str, sender: User, n: int) -> None:
    """`n` messages of 4,000 characters from `sender`, stored in one transaction (no notification:
    the next message sent through the API delivers them all, as deliveries read `seq > cursor`)."""
    claims = json.dumps({"sub": str(sender.id), "role": "authenticated"})
    with psycopg.connect(service.database_url) as conn:
        conn.execute("select set_config('role', 'authenticated', true), "
                     "set_config('request.jwt.claims', %s, true)", (claims,))
        conn.execute("select count(*) from generate_series(1, %s) i, lateral "
                     "public.send_room_message('conversation', %s, i || repeat('x', 4000), null, null, '{}', '{}', "
                     "'{}')",
                     (n, conversation_id))


def _masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _close_code(stream: bytes) -> int | None:
    """The code of the close frame in a server's frame stream, None if it has none."""
    i = 0
    while i + 2 <= len(stream):
        opcode, length = stream[i] & 0x0F, stream[i + 1] & 0x7F
        i += 2
        if length == 126:
            length, i = int.from_bytes(stream[i:i + 2], "big"), i + 2
        elif length == 127:
            length, i = int.from_bytes(stream[i:i + 8], "big"), i + 8
        if opcode == 0x8:
            return int.from_bytes(stream[i:i + 2], "big")
        i += length
    return None


def test_a_consumer_that_stops_reading_gets_4008(make_service: Callable[..., RunningService],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSGOPS_WS_OUTBOX", "100")
    service = make_service(rate_limits=parse_rate_limits("off"))
    alice, bob = service.user(), service.user()
    conv = service.http.post("/conversations", json={"kind": "group", "title": "t", "member_ids": [str(bob.id)]},
                             headers=alice.headers).json()["id"]
    sock = _socket(service)
    sock.sendall(f"GET /realtime?token={bob.token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    received = sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 101")
    sock.sendall(_masked_text_frame(json.dumps({"type": "join_conversation", "conversation_id": conv}).encode()))
    records = _Records()
    logging.getLogger("service.realtime").addHandler(records)
    try:
        for _ in range(150):  # bob reads nothing: the socket buffers fill, then his outbox
            _fill(service, conv, alice, 40)
            service.http.post(f"/conversations/{conv}/messages", json={"content": "x"}, headers=alice.headers)
            if "slow consumer disconnected" in records.messages:
                break
        else:
            pytest.fail("bob was never found slow")
    finally:
        logging.getLogger("service.realtime").removeHandler(records)
    time.sleep(11)  # longer than a close used to wait for the peer to read
    stream = bytearray(received)
    sock.settimeout(10)
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(1 << 20):
            stream += chunk
    sock.close()
    frames = stream[stream.index(b"\r\n\r\n") + 4:]
    assert _close_code(bytes(frames)) == 4008, f"{len(frames)} bytes, no 4008 close frame"


class _RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_a_response_head_and_body_leave_in_one_write() -> None:
    import asyncio

    from service.serving import _OneWrite

    async def scenario() -> list[list[bytes]]:
        loop = asyncio.get_running_loop()
        seen = []
        # head and body in the same turn (every JSON answer): one write
        raw = _RecordingTransport()
        one = _OneWrite(raw, loop)  # type: ignore[arg-type]
        one.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        one.write(b"{}")
        seen.append(list(raw.writes))
        await asyncio.sleep(0)
        seen.append(list(raw.writes))  # nothing more at the end of the turn
        # a streamed answer: the head leaves at the end of its turn, the chunks as they come
        raw = _RecordingTransport()
        one = _OneWrite(raw, loop)  # type: ignore[arg-type]
        one.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        seen.append(list(raw.writes))
        await asyncio.sleep(0)
        seen.append(list(raw.writes))
        one.write(b"2\r\nab\r\n")
        seen.append(list(raw.writes))
        # a head followed by close (an app that failed after starting): the head is not lost
        raw = _RecordingTransport()
        one = _OneWrite(raw, loop)  # type: ignore[arg-type]
        one.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
        one.close()
        seen.append([*list(raw.writes), b"closed" if raw.closed else b"open"])
        # 100 Continue is never held: the client waits for it before sending the body
        raw = _RecordingTransport()
        one = _OneWrite(raw, loop)  # type: ignore[arg-type]
        one.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        seen.append(list(raw.writes))
        assert one.get_extra_info("peername") == "info:peername"
        return seen

    one_turn, after_turn, streamed_head, streamed_after, chunk, closed, cont = asyncio.run(scenario())
    assert one_turn == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    assert after_turn == one_turn
    assert streamed_head == []
    assert streamed_after == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
    assert chunk == [*streamed_after, b"2\r\nab\r\n"]
    assert closed == [b"HTTP/1.1 500 Internal Server Error\r\n\r\n", b"closed"]
    assert cont == [b"HTTP/1.1 100 Continue\r\n\r\n"]


def test_answers_over_a_raw_socket_are_whole_on_keep_alive(service: RunningService) -> None:
    """Three requests on one connection, each answer complete (head and body) before the next."""
    sock = _socket(service)
    with contextlib.closing(sock):
        for _ in range(3):
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(body) < length:
                body += sock.recv(65536)
            assert head.startswith(b"HTTP/1.1 200")
            assert json.loads(body)["database"] == "ok"
