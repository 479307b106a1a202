"""A request id for every HTTP request and WebSocket: taken from a well-formed `X-Request-ID` header or
made up, returned in the response's `X-Request-ID`, and added to every log line written meanwhile.

Clients quote it when they report a problem; the log holds the detail under it."""

from __future__ import annotations

import itertools
import os
import re
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_current: ContextVar[str | None] = ContextVar("request_id", default=None)
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:-]{8,64}")
HEADER = b"x-request-id"


def current() -> str | None:
    """The id of the request being served, None outside of one."""
    return _current.get()


class _Ids:
    """Unique ids, cheaply: a random prefix per process and a counter (uuid4 costs ~20x more)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix, self.counter = os.urandom(8).hex(), itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):08x}"


_ids = _Ids()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.reset)  # a forked worker must not repeat its parent's ids


def _incoming(scope: Scope) -> str:
    for key, value in scope.get("headers", []):
        if key == HEADER and _WELL_FORMED.fullmatch(value):
            return value.decode()
    return _ids.next()


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = _incoming(scope)
        token = _current.set(rid)
        header = (HEADER, rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
