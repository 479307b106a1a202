"""The load workload's HTTP client (loadtests/msgload/http.py) against real loopback servers that
answer in each way HTTP/1.1 allows, and in ways it does not."""

from __future__ import annotations

import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from msgops.paths import loadtests_dir
from tests.certs import certificates

sys.path.insert(0, str(loadtests_dir()))

from msgload import http

Answer = Callable[[int, bytes, socket.socket], bytes | None]  # (request number, request, socket) -> reply


class Server:
    """A TCP server on loopback that reads each request (head and Content-Length body) and writes
    what `answer` returns for it; None closes the connection without a reply."""

    def __init__(self, answer: Answer, tls: ssl.SSLContext | None = None) -> None:
        self.answer, self.tls = answer, tls
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    key, _, value = line.partition(b":")
                    if key.strip().lower() == b"content-length":
                        length = int(value)
                while len(data) < length:
                    data += sock.recv(65536)
                request, data = head + b"\r\n\r\n" + data[:length], data[length:]
                self.requests.append(request)
                reply = self.answer(len(self.requests), request, sock)
                if reply is None:
                    return
                sock.sendall(reply)
        except OSError:
            return
        finally:
            sock.close()

    def close(self) -> None:
        self.listener.close()


class Events:
    """Stands in for Locust's request event: keeps what each request fired."""

    def __init__(self) -> None:
        self.fired: list[dict[str, Any]] = []

    def fire(self, **kwargs: Any) -> None:
        self.fired.append(kwargs)


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(answer: Answer, tls: ssl.SSLContext | None = None) -> Server:
        servers.append(Server(answer, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def ok(body: bytes = b'{"ok": true}', extra: str = "") -> bytes:
    return (f"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra}\r\n").encode() + body


def test_keeps_one_connection_alive_and_sends_what_it_was_given(serve: Callable[..., Server]) -> None:
    server = serve(lambda n, req, sock: ok(f'{{"n": {n}}}'.encode()))
    events = Events()
    client = http.Client(server.url + "/api", events)
    first = client.request("POST", "/conversations/c1/messages", name="POST /conversations/{id}/messages",
                           headers={"Authorization": "Bearer t1"}, json={"content": "hello"},
                           context={"msgops_intended": 1.5})
    second = client.request("GET", "/conversations?limit=20")
    assert (first.status_code, first.json(), first.error) == (201, {"n": 1}, None)
    assert (second.status_code, second.json()) == (201, {"n": 2})
    assert first.headers["content-type"] == "application/json"
    assert server.connections == 1
    post, get = server.requests
    assert post.startswith(b"POST /api/conversations/c1/messages HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in post
    assert b"Authorization: Bearer t1\r\n" in post and b"Content-Type: application/json\r\n" in post
    assert post.endswith(b'\r\n\r\n{"content":"hello"}') and b"Content-Length: 19\r\n" in post
    assert get.startswith(b"GET /api/conversations?limit=20 HTTP/1.1\r\n") and b"Content-Length" not in get
    assert [e["name"] for e in events.fired] == ["POST /conversations/{id}/messages", "/conversations?limit=20"]
    assert events.fired[0]["context"] == {"msgops_intended": 1.5} and events.fired[0]["exception"] is None
    assert events.fired[0]["response_length"] == len(b'{"n": 1}') and events.fired[0]["response_time"] > 0


def test_reads_chunked_bodies_with_extensions_and_trailers(serve: Callable[..., Server]) -> None:
    reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5;note=x\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    server = serve(lambda n, req, sock: reply)
    client = http.Client(server.url, Events())
    assert client.request("GET", "/a").content == b"hello, world"
    assert client.request("GET", "/b").content == b"hello, world"  # nothing of the first was left behind
    assert server.connections == 1


def test_a_body_to_the_end_of_the_connection_and_connection_close(serve: Callable[..., Server]) -> None:
    def answer(n: int, req: bytes, sock: socket.socket) -> bytes | None:
        if n == 1:
            sock.sendall(b"HTTP/1.1 200 OK\r\n\r\nall of it")
            return None  # the body ends with the connection
        return ok(extra="Connection: close\r\n")

    server = serve(answer)
    client = http.Client(server.url, Events())
    assert client.request("GET", "/a").content == b"all of it"
    assert client.request("GET", "/b").status_code == 201
    assert client.request("GET", "/c").status_code == 201
    assert server.connections == 3  # none of the three could be reused


def test_interim_and_empty_answers(serve: Callable[..., Server]) -> None:
    replies = {1: b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"{}"),
               2: b"HTTP/1.1 204 No Content\r\n\r\n",
               3: b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
               4: ok(b"[]")}
    server = serve(lambda n, req, sock: replies[n])
    client = http.Client(server.url, Events())
    assert [(r.status_code, r.content) for r in (client.request("POST", "/x", json={}) for _ in range(4))] == [
        (201, b"{}"), (204, b""), (304, b""), (201, b"[]")]
    assert server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_once(serve: Callable[..., Server]) -> None:
    server = serve(lambda n, req, sock: ok() if n != 2 else None)  # request 2 finds its connection closed
    events = Events()
    client = http.Client(server.url, events)
    assert client.request("GET", "/a").status_code == 201
    assert client.request("GET", "/b").status_code == 201  # sent again on a new connection
    assert server.connections == 2 and len(server.requests) == 3
    assert [e["exception"] for e in events.fired] == [None, None]  # one request, one event


def test_a_new_connection_closed_without_an_answer_fails(serve: Callable[..., Server]) -> None:
    server = serve(lambda n, req, sock: None)
    events = Events()
    response = http.Client(server.url, events).request("GET", "/a")
    assert response.status_code == 0 and isinstance(response.error, ConnectionResetError)
    assert len(server.requests) == 1  # not sent again: the connection was new
    assert events.fired[0]["exception"] is response.error


def test_error_statuses_and_malformed_answers_fail_with_what_happened(serve: Callable[..., Server]) -> None:
    replies = {1: b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops",
               2: b"SMTP ready\r\n\r\n",
               3: b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
               4: b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
               5: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}
    responses = []
    for n in range(1, 6):
        server = serve(lambda _, req, sock, n=n: replies[n])
        responses.append(http.Client(server.url, Events()).request("GET", "/x"))
    bad_status = responses[0]
    assert (bad_status.status_code, bad_status.content) == (500, b"oops")
    assert isinstance(bad_status.error, http.BadStatusCode) and bad_status.error.code == 500
    assert "answered 500" in str(bad_status.error)
    messages = [str(r.error) for r in responses[1:]]
    assert all(isinstance(r.error, http.BadResponse) for r in responses[1:])
    assert "status line" in messages[0] and "header" in messages[1]
    assert "Content-Length" in messages[2] and "chunk size" in messages[3]


def test_a_silent_server_times_out_and_a_closed_port_is_refused(serve: Callable[..., Server]) -> None:
    hold = threading.Event()

    def silent(n: int, req: bytes, sock: socket.socket) -> None:
        hold.wait(5)  # then close without a word

    server = serve(silent)
    try:
        slow = http.Client(server.url, Events(), network_timeout=0.3).request("GET", "/x")
    finally:
        hold.set()
    assert slow.status_code == 0 and isinstance(slow.error, TimeoutError)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = http.Client(f"http://127.0.0.1:{port}", Events(), connection_timeout=2).request("GET", "/x")
    assert refused.status_code == 0 and isinstance(refused.error, ConnectionRefusedError)


def test_https_without_verifying_the_certificate(serve: Callable[..., Server], tmp_path: Path) -> None:
    _, cert, key = certificates(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    server = serve(lambda n, req, sock: ok(), tls=tls)
    client = http.Client(server.url, Events())
    assert [client.request("GET", "/x").status_code for _ in range(2)] == [201, 201]
    assert server.connections == 1


def test_a_large_body_is_sent_whole(serve: Callable[..., Server]) -> None:
    server = serve(lambda n, req, sock: ok(str(len(req.partition(b"\r\n\r\n")[2])).encode()))
    body = b"%PDF-1.4\n" + b"0" * (3 * 1024 * 1024)
    response = http.Client(server.url, Events()).request("POST", "/upload", data=body,
                                                         headers={"Content-Type": "application/octet-stream"})
    assert response.json() == len(body)


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="not an http"):
        http.Client("ws://127.0.0.1:1", Events())
