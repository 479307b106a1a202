"""Deliberately broken copies of the service, each wrong in exactly one way, for showing that every
http probe can fail.

A broken copy is the real app (real database, real HTTP on loopback) with one change: an ASGI
wrapper that alters requests or responses on the way (a dropped header, a leaked email, markup
echoed back), or a change to the app itself (a route without authentication, an injectable query,
a token verifier that checks nothing).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import uvicorn
from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.app import create_app
from service.auth import Claims
from service.deps import CurrentUser, State
from service.settings import Settings
from tests.support import JWT_SECRET, RunningService, free_port, run_in_thread

Change = Callable[[FastAPI], None]
Wrap = Callable[[ASGIApp], ASGIApp]


def start_broken(database_url: str, *, change: Change | None = None, wrap: Wrap | None = None,
                 ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
                 **overrides: Any) -> RunningService:
    """Like tests.support.start_service, with `change(app)` applied and the app served as `wrap(app)`."""
    values: dict[str, Any] = {"database_url": database_url, "jwt_secret": JWT_SECRET, "log_level": "WARNING",
                              "jobs_enabled": False}
    values.update(overrides)
    settings = Settings(**values)
    app = create_app(settings)
    if change is not None:
        change(app)
    port = free_port()
    config = uvicorn.Config(wrap(app) if wrap else app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", ws="websockets-sansio", ws_per_message_deflate=False,
                            ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    server = uvicorn.Server(config)
    thread = run_in_thread(server, "broken test service")
    scheme = "https" if ssl_certfile else "http"
    return RunningService(f"{scheme}://127.0.0.1:{port}", database_url, settings, server, thread)


# --- ASGI wrappers -------------------------------------------------------------------------------

class Rewrite:
    """Buffer the responses of matching requests and let `response()` change them; `request()` may
    change a matching request's body first."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def matches(self, method: str, path: str) -> bool:
        return True

    def request(self, method: str, path: str, body: bytes) -> bytes:
        return body

    def response(self, method: str, path: str, request_body: bytes, status: int,
                 headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return status, headers, body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.matches(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        changed = self.request(method, path, raw)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # the disconnect, when it comes
            delivered = True
            return {"type": "http.request", "body": changed, "more_body": False}

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    status, headers, body = self.response(method, path, changed, start["status"],
                                                          list(start.get("headers", [])), b"".join(chunks))
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
                    headers.append((b"content-length", str(len(body)).encode()))
                    await send({"type": "http.response.start", "status": status, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        await self.app(scope, replay, capture)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


class DropHeader(Rewrite):
    name = b"x-frame-options"

    def response(self, method: str, path: str, request_body: bytes, status: int,
                 headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return status, [(k, v) for k, v in headers if k.lower() != self.name], body


class LeakEmail(Rewrite):
    """GET /conversations/{id} answers with an email address in it."""

    def matches(self, method: str, path: str) -> bool:
        return method == "GET" and re.fullmatch(r"/conversations/[^/]+", path) is not None

    def response(self, method: str, path: str, request_body: bytes, status: int,
                 headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        data = _json(body)
        if status == 200 and isinstance(data, dict):
            data["email"] = "someone.else@example.com"
            body = json.dumps(data).encode()
        return status, headers, body


class EchoRawContent(Rewrite):
    """Messages come back with the content as it was sent, markup and all (stored XSS)."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.raw: dict[str, str] = {}  # message id -> content as sent

    def response(self, method: str, path: str, request_body: bytes, status: int,
                 headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        data, sent = _json(body), _json(request_body)
        if method == "POST" and path.endswith("/messages") and isinstance(data, dict) and isinstance(sent, dict):
            self.raw[str(data.get("id"))] = str(sent.get("content"))
        for message in ([data] if isinstance(data, dict) else []) + (
                data.get("messages", []) if isinstance(data, dict) else []):
            if isinstance(message, dict) and str(message.get("id")) in self.raw:
                message["content"] = self.raw[str(message["id"])]
        return status, headers, json.dumps(data).encode() if data is not None else body


class TruncateLongText(Rewrite):
    """Over-long content and names are cut to the limit instead of refused: no visible limit."""

    def matches(self, method: str, path: str) -> bool:
        return method in ("POST", "PATCH")

    def request(self, method: str, path: str, body: bytes) -> bytes:
        data = _json(body)
        if isinstance(data, dict):
            for key, limit in (("content", 5000), ("name", 100)):
                if isinstance(data.get(key), str):
                    data[key] = data[key][:limit]
            return json.dumps(data).encode()
        return body


class ValidationErrorsAre500(Rewrite):
    """A 422 becomes an unhandled 500, as when validation errors escape a handler."""

    def response(self, method: str, path: str, request_body: bytes, status: int,
                 headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if status == 422:
            return 500, [(b"content-type", b"text/plain")], b"Internal Server Error"
        return status, headers, body


class NotFound(Rewrite):
    """One path answers 404 as if it were not served."""

    path = "/docs"

    def matches(self, method: str, path: str) -> bool:
        return path == self.path

    def response(self, method: str, path: str, request_body: bytes, status: int,
                 headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 404, [(b"content-type", b"application/json")], b'{"detail":"Not Found"}'


class SearchCrashes(Rewrite):
    """Message search answers 500."""

    def matches(self, method: str, path: str) -> bool:
        return path.endswith("/messages/search")

    def response(self, method: str, path: str, request_body: bytes, status: int,
                 headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 500, [(b"content-type", b"text/plain")], b"Internal Server Error"


class SearchMissing(Rewrite):
    """Message search was never implemented: not in /openapi.json, and 404 when called. (A wrapper,
    because FastAPI's included routers are shared module objects that must stay intact.)"""

    method, template = "GET", "/conversations/{conversation_id}/messages/search"
    pattern = re.compile(r"/conversations/[^/]+/messages/search")

    def matches(self, method: str, path: str) -> bool:
        return path == "/openapi.json" or (method == self.method and self.pattern.fullmatch(path) is not None)

    def response(self, method: str, path: str, request_body: bytes, status: int,
                 headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if path == "/openapi.json":
            doc = _json(body)
            doc["paths"].get(self.template, {}).pop(self.method.lower(), None)
            return status, headers, json.dumps(doc).encode()
        return 404, [(b"content-type", b"application/json")], b'{"detail":"Not Found"}'


class ForgetClientMsgId(Rewrite):
    """The client's idempotency key is dropped on the way in: every retry is a new message."""

    def matches(self, method: str, path: str) -> bool:
        return method == "POST" and path.endswith("/messages")

    def request(self, method: str, path: str, body: bytes) -> bytes:
        data = _json(body)
        if isinstance(data, dict) and "client_msg_id" in data:
            data.pop("client_msg_id")
            return json.dumps(data).encode()
        return body


# --- changes to the app itself -------------------------------------------------------------------

def add_unprotected_route(app: FastAPI) -> None:
    """A route that forgot the authentication dependency."""

    @app.get("/communities/{community_id}/export")
    async def export_community(community_id: str) -> dict[str, str]:
        """Export a community (no token needed: the bug)."""
        return {"community_id": community_id}


class LaxVerifier:
    """Reads a token's claims without checking the signature, the algorithm, exp or aud."""

    def verify(self, token: str) -> Claims:
        from service.auth import AuthError

        try:
            raw = jwt.decode(token, options={"verify_signature": False})
            return Claims(sub=uuid.UUID(str(raw["sub"])), role=str(raw.get("role", "authenticated")), raw=raw)
        except (jwt.PyJWTError, KeyError, ValueError):
            raise AuthError("malformed token") from None


def lax_verifier(app: FastAPI) -> None:
    app.state.msgops.verifier = LaxVerifier()


def injectable_community_search(app: FastAPI) -> None:
    """GET /communities with the search text formatted into the SQL (deliberately injectable)."""
    router = APIRouter()

    @router.get("/communities")
    async def search(user: CurrentUser, state: State, q: str | None = None) -> list[dict[str, Any]]:
        """List communities (injectable)."""
        query = f"select id::text as id, name from public.communities where name ilike '%{q or ''}%'"
        async with state.db.transaction(user) as conn:
            cur = await conn.execute(query)
            return list(await cur.fetchall())

    app.include_router(router)
    app.router.routes.insert(0, app.router.routes.pop())  # ahead of the real GET /communities
