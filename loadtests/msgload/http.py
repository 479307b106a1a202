"""The workload's HTTP client: geventhttpclient's connection pool, reported like Locust's FastHttpSession.

FastHttpSession wraps the same HTTPClient in a user agent that handles cookies, redirects, retries and
compression, and builds a urllib-compatible request and response for each call; the workload's API
requests need none of it, and on the machine bench/loadgen_vs_k6.py runs on that layer cost as much
CPU as the HTTP exchange under it. Here a request is the exchange alone. Each fires the environment's
request event with what FastHttpSession reports (request_type, name, response_time in ms, response,
response_length, context, exception, start_time, url), a status outside 2xx/3xx or a failed exchange
as the exception, so Locust's statistics and msgops's recorder see the same as before.
"""

from __future__ import annotations

import json as jsonlib
import time
from typing import Any

from geventhttpclient import HTTPClient
from geventhttpclient.url import URL
from locust.contrib.fasthttp import FAILURE_EXCEPTIONS, LocustBadStatusCode
from locust.event import EventHook

# FastHttpSession's: a response with any other status is a failed request.
VALID = frozenset([200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 301, 302, 303, 304, 307, 308])


class Response:
    """What a request answered: `status_code` (0 when the exchange failed), `content`, `error`."""

    __slots__ = ("content", "error", "headers", "status_code")

    def __init__(self, status_code: int, content: bytes, headers: Any, error: BaseException | None) -> None:
        self.status_code, self.content, self.headers, self.error = status_code, content, headers, error

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class Client:
    """Requests to one base URL over up to `concurrency` keep-alive connections (opened as needed)."""

    def __init__(self, base_url: str, request_event: EventHook, concurrency: int = 10,
                 network_timeout: float = 60.0, connection_timeout: float = 60.0) -> None:
        url = URL(base_url)
        self.base_url = base_url.rstrip("/")
        self._prefix = url.path.rstrip("/")  # a base URL with a path: requests go under it
        self._event = request_event
        # insecure, as FastHttpSession by default: a load run against a staging certificate still runs
        self._http = HTTPClient(url.host, url.port, concurrency=concurrency, network_timeout=network_timeout,
                                connection_timeout=connection_timeout, ssl=url.scheme == "https",
                                insecure=url.scheme == "https")

    def request(self, method: str, path: str, name: str | None = None, headers: dict[str, str] | None = None,
                json: Any = None, data: bytes | str | None = None,
                context: dict[str, Any] | None = None) -> Response:
        headers = dict(headers) if headers else {}
        if data is None and json is not None:
            data = jsonlib.dumps(json)
            headers.setdefault("Content-Type", "application/json")
        start_time = time.time()
        started = time.perf_counter()
        status, content, response_headers, error = 0, b"", None, None
        try:
            answer = self._http.request(method, self._prefix + path, body=data, headers=headers)
            try:
                content = answer.read()
            finally:
                answer.release()
            status, response_headers = answer.status_code, answer.headers
            if status not in VALID:
                error = LocustBadStatusCode(self.base_url + path, code=status)
        except FAILURE_EXCEPTIONS as exc:
            error = exc
        response = Response(status, content, response_headers, error)
        self._event.fire(request_type=method, name=name or path, response_time=(time.perf_counter() - started) * 1000,
                         response_length=len(content), response=response, context=context or {}, exception=error,
                         start_time=start_time, url=self.base_url + path)
        return response
