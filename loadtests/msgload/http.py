"""The workload's HTTP client: HTTP/1.1 keep-alive over plain sockets, reported like Locust's FastHttpSession.

A load generator's own cost per request decides how much load one process can make, and how much
CPU it takes from a target on the same machine. A request here is the exchange and nothing else: the
request head written in one piece, the response read into one buffer, its head split once, the body
taken by Content-Length, chunked encoding or the connection's end. No redirects, cookies, retries on
errors, compression or proxy support: the workload's API requests need none of them. (A general
client parses every header through callbacks and builds a request and response object per call; on
bench/loadgen_vs_k6.py's machine that cost about 0.3 ms of CPU per request more.)

Under Locust the process is monkey-patched by gevent, so the sockets and timeouts here are gevent's;
imported elsewhere (tests) they are the standard library's and block.

Each request fires `request_event` with what FastHttpSession reports (request_type, name,
response_time in ms, response, response_length, context, exception, start_time, url), a status
outside 2xx/3xx or a failed exchange as the exception, so Locust's statistics and msgops's recorder
see what they always saw.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import socket
import ssl
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
from gevent.lock import BoundedSemaphore

# FastHttpSession's: a response with any other status is a failed request.
VALID = frozenset([200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 301, 302, 303, 304, 307, 308])
MAX_HEAD = 64 * 1024       # a response head larger than this is not an API's
READ_SIZE = 64 * 1024
SMALL_BODY = 16 * 1024     # bodies up to this go out with the head, in one write


class RequestEvent(Protocol):
    def fire(self, **kwargs: Any) -> None: ...


class BadResponse(Exception):
    """The server's answer was not HTTP/1.x this client can read."""


class BadStatusCode(Exception):
    """The request was answered with a status outside 2xx/3xx (Locust's LocustBadStatusCode)."""

    def __init__(self, url: str, code: int) -> None:
        super().__init__(f"{url} answered {code}")
        self.url, self.code = url, code


class _Closed(Exception):
    """The connection ended before any byte of the response: on a reused connection, the server had
    closed it while idle, and the request may be sent again on a new one."""


FAILURES = (OSError, BadResponse, _Closed)  # OSError covers refused, reset, timeouts and TLS errors


class Response:
    """What a request answered: `status_code` (0 when the exchange failed), `content`, `headers`
    (lower-case names), `error`."""

    __slots__ = ("content", "error", "headers", "status_code")

    def __init__(self, status_code: int, content: bytes, headers: dict[str, str], error: BaseException | None) -> None:
        self.status_code, self.content, self.headers, self.error = status_code, content, headers, error

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class _Connection:
    __slots__ = ("buffer", "sock", "used")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""   # bytes read past the last response (a server should send none)
        self.used = False   # has answered a request: a failure before any byte may be a stale close

    def read_more(self) -> bytes:
        data = self.sock.recv(READ_SIZE)
        if not data:
            raise ConnectionResetError("the server closed the connection mid-response")
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class Client:
    """Requests to one base URL over up to `concurrency` keep-alive connections (opened as needed)."""

    def __init__(self, base_url: str, request_event: RequestEvent, concurrency: int = 10,
                 network_timeout: float = 60.0, connection_timeout: float = 60.0) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._prefix = url.path.rstrip("/")  # a base URL with a path: requests go under it
        self._address = (url.hostname, url.port or (443 if url.scheme == "https" else 80))
        default_port = url.port is None or url.port == (443 if url.scheme == "https" else 80)
        host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
        self._host_line = f"Host: {host if default_port else f'{host}:{url.port}'}\r\n"
        self._tls: ssl.SSLContext | None = None
        if url.scheme == "https":
            # insecure, as FastHttpSession by default: a load run against a staging certificate still runs
            self._tls = ssl.create_default_context()
            self._tls.check_hostname = False
            self._tls.verify_mode = ssl.CERT_NONE
        self._event = request_event
        self._network_timeout = network_timeout
        self._connection_timeout = connection_timeout
        self._idle: list[_Connection] = []
        self._slots = BoundedSemaphore(concurrency)

    def request(self, method: str, path: str, name: str | None = None, headers: dict[str, str] | None = None,
                json: Any = None, data: bytes | str | None = None,
                context: dict[str, Any] | None = None) -> Response:
        if data is None and json is not None:
            data = orjson.dumps(json)
            headers = {"Content-Type": "application/json", **(headers or {})}
        body = data.encode() if isinstance(data, str) else data
        head = self._head(method, self._prefix + path, headers, body)
        start_time = time.time()
        started = time.perf_counter()
        status, content, response_headers, error = 0, b"", {}, None
        try:
            with self._slots:
                status, response_headers, content = self._exchange(method, head, body)
            if status not in VALID:
                error = BadStatusCode(self.base_url + path, status)
        except FAILURES as exc:
            error = ConnectionResetError(str(exc)) if isinstance(exc, _Closed) else exc
        response = Response(status, content, response_headers, error)
        self._event.fire(request_type=method, name=name or path, response_time=(time.perf_counter() - started) * 1000,
                         response_length=len(content), response=response, context=context or {}, exception=error,
                         start_time=start_time, url=self.base_url + path)
        return response

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    # The exchange ----------------------------------------------------------------------------------

    def _head(self, method: str, target: str, headers: dict[str, str] | None, body: bytes | None) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\n", self._host_line]
        for key, value in (headers or {}).items():
            lines.append(f"{key}: {value}\r\n")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    def _exchange(self, method: str, head: bytes, body: bytes | None) -> tuple[int, dict[str, str], bytes]:
        """One request on a kept-alive connection (sent again, once, on a new connection if a reused one
        turns out to have been closed by the server while idle)."""
        while True:
            conn = self._idle.pop() if self._idle else self._connect()
            reused = conn.used
            try:
                if body is not None and len(body) <= SMALL_BODY:
                    conn.sock.sendall(head + body)
                else:
                    conn.sock.sendall(head)
                    if body:
                        conn.sock.sendall(body)
                status, headers, content, keep = _read_response(conn, method)
            except _Closed:
                conn.close()
                if reused:
                    continue
                raise
            except BaseException:
                conn.close()  # a half-read response (or a kill at the end of the run): never reuse
                raise
            if keep:
                conn.used = True
                self._idle.append(conn)
            else:
                conn.close()
            return status, headers, content

    def _connect(self) -> _Connection:
        sock = socket.create_connection(self._address, timeout=self._connection_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._address[0])
            sock.settimeout(self._network_timeout)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)


def _read_response(conn: _Connection, method: str) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, keep the connection) of the next response on `conn`."""
    data = conn.buffer
    conn.buffer = b""
    first = True
    while True:  # 1xx interim responses are skipped
        end = data.find(b"\r\n\r\n")
        while end < 0:
            if len(data) > MAX_HEAD:
                raise BadResponse(f"response head larger than {MAX_HEAD} bytes")
            chunk = conn.sock.recv(READ_SIZE)
            if not chunk:
                if first and not data:
                    raise _Closed("the connection closed before the response")
                raise ConnectionResetError("the server closed the connection mid-response")
            first = False
            data += chunk
            end = data.find(b"\r\n\r\n", max(0, len(data) - len(chunk) - 3))
        lines = data[:end].decode("latin-1").split("\r\n")
        data = data[end + 4:]
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise BadResponse(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(parts[1])
        if 100 <= status < 200 and status != 101:
            continue
        break
    headers: dict[str, str] = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if not sep:
            raise BadResponse(f"malformed response header: {line[:80]!r}")
        key, value = key.strip().lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    keep = _keep_alive(parts[0], headers.get("connection", "").lower())
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body, data = _read_chunked(conn, data)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"].split(",")[0])
        except ValueError:
            raise BadResponse(f"bad Content-Length: {headers['content-length'][:40]!r}") from None
        while len(data) < length:
            data += conn.read_more()
        body, data = data[:length], data[length:]
    else:  # the body runs to the end of the connection
        chunks = [data]
        while chunk := conn.sock.recv(READ_SIZE):
            chunks.append(chunk)
        body, data, keep = b"".join(chunks), b"", False
    conn.buffer = data
    return status, headers, body, keep


def _keep_alive(version: str, connection: str) -> bool:
    if "close" in connection:
        return False
    return version != "HTTP/1.0" or "keep-alive" in connection


def _read_chunked(conn: _Connection, data: bytes) -> tuple[bytes, bytes]:
    """The body of a chunked response, and what was read past it."""
    parts: list[bytes] = []
    while True:
        while (eol := data.find(b"\r\n")) < 0:
            data += conn.read_more()
        size_field = data[:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise BadResponse(f"bad chunk size: {size_field[:20]!r}") from None
        data = data[eol + 2:]
        if size == 0:  # trailers, then an empty line
            while (end := data.find(b"\r\n")) != 0:
                if end < 0:
                    data += conn.read_more()
                else:
                    data = data[end + 2:]
            return b"".join(parts), data[2:]
        while len(data) < size + 2:
            data += conn.read_more()
        parts.append(data[:size])
        data = data[size + 2:]
