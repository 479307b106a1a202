"""What the service refuses at its edge, before any route runs: installed by `install()`.

- Requests with a body must carry a valid bearer token, checked before one byte of the body is read
  (every route that takes a body needs one): 401, and the connection is closed.
- Bodies are limited (`MSGOPS_MAX_BODY_BYTES`): a larger Content-Length is refused before reading,
  a chunked body when it grows past the limit while it is read. 413, and the connection is closed.
- Upload routes get the attachment limit instead (a little above it: the route refuses what is over
  its own limit itself, and cleans up after it). A signed upload URL (direct-to-storage) carries its
  own authorization, its signature, instead of a bearer token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import openapi_statuses
from service.auth import AuthError, TokenVerifier
from service.settings import Settings

_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyTooLarge(Exception):
    pass


async def _refuse(send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps({"detail": detail})
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


@dataclass(frozen=True)
class RouteRule:
    """Routes (a path pattern) whose bodies follow other rules than the default."""

    path: re.Pattern[str]
    max_body_bytes: int
    signed: bool = False  # authorized by a signature in the URL, not by a bearer token


class BodyGuardMiddleware:
    """Authentication before the body, and the body's size limit while it is read."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier, max_body_bytes: int,
                 routes: tuple[RouteRule, ...] = ()) -> None:
        self.app = app
        self.verifier = verifier
        self.max_body_bytes = max_body_bytes
        self.routes = routes

    def _rule(self, path: str) -> RouteRule | None:
        return next((rule for rule in self.routes if rule.path.fullmatch(path)), None)

    def _auth_failure(self, scope: Scope) -> str | None:
        value = _header(scope, b"authorization")
        scheme, _, token = (value or b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "missing bearer token"
        try:
            self.verifier.verify(token.strip())
        except AuthError as exc:
            return str(exc)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _NO_BODY_METHODS:
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        has_body = (length is not None and length != b"0") or _header(scope, b"transfer-encoding") is not None
        if not has_body:
            await self.app(scope, receive, send)
            return
        rule = self._rule(scope["path"])
        failure = None if rule is not None and rule.signed else self._auth_failure(scope)
        if failure is not None:
            await _refuse(send, 401, failure, [(b"www-authenticate", b'Bearer error="invalid_token"')])
            return
        limit = rule.max_body_bytes if rule is not None else self.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _refuse(send, 413, f"request body over {limit} bytes")
            return
        await self._guarded(scope, receive, send, limit)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        refused = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
        if refused and not started:
            await _refuse(send, 413, f"request body over {limit} bytes")


def upload_routes(settings: Settings) -> tuple[RouteRule, ...]:
    """The attachment routes: one-request uploads and signed direct-to-storage uploads."""
    if not settings.attachments.enabled:
        return ()
    # Above the attachment limit by a margin: the route itself refuses a larger file (413) and removes
    # what it had stored; the guard only stops a body far beyond anything the route would accept.
    limit = settings.attachments.max_bytes + 1024 * 1024
    return (RouteRule(re.compile(r"/conversations/[^/]+/attachments"), limit),
            RouteRule(re.compile(r"/attachments/blob/[^/]+"), limit, signed=True))


def install(app: FastAPI, settings: Settings, verifier: TokenVerifier) -> None:
    """Add the body guard. The statuses it (and the shared dependencies) can answer go into every
    route's OpenAPI."""
    openapi_statuses.document(app)
    app.add_middleware(BodyGuardMiddleware, verifier=verifier, max_body_bytes=settings.max_body_bytes,
                       routes=upload_routes(settings))
