"""Message sends served before FastAPI's routing: the hottest request of the service, without the
router's regex scan, the dependency solver and the response re-validation (about half of a send's
CPU in the service went there).

Only a send that is well-formed is served here: a bearer token that verifies, a JSON body that the
route's own model accepts, a room id that is a UUID. Anything else goes on to the FastAPI route
with the body it was sent, so every refusal (401, 404, 422) is answered by the one mechanism the
rest of the API uses. Refusals of the send itself (404, 409, 429, database errors) are answered by
the exception handlers registered on the app, as they would be from the route. The request keeps
its route in scope["route"] for the middleware that labels metrics and logs by route.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import messaging
from service.deps import verified_user
from service.responses import json_response
from service.routes import communities, messages
from service.schemas.communities import CommunityMessage, CommunityMessageCreate
from service.schemas.messages import MessageOut, SendMessageIn
from service.state import AppState

# The routes these sends are (OpenAPI documents them; metrics and logs are labelled by them).
_ROUTES: dict[str, APIRoute] = {
    r.path: r for router in (messages.router, communities.router) for r in router.routes
    if isinstance(r, APIRoute) and "POST" in (r.methods or ()) and r.path.endswith("/messages")}
_PATH = re.compile(r"/(conversations|communities)/([0-9A-Fa-f-]{32,36})/messages")
_KINDS: dict[str, tuple[messaging.RoomKind, str, type[BaseModel], type[BaseModel]]] = {
    # path segment: kind, the route's template, request model, response model
    "conversations": ("conversation", "/conversations/{conversation_id}/messages", SendMessageIn, MessageOut),
    "communities": ("community", "/communities/{community_id}/messages", CommunityMessageCreate, CommunityMessage),
}


class SendFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.fullmatch(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        body, receive = await _buffered(receive)
        if body is None:  # the client went away
            return
        token = _bearer_and_json(scope)
        if token is None or not await self._serve(scope, receive, send, match, body, token):
            await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, match: re.Match[str], body: bytes,
                     token: str) -> bool:
        """Answer the send; False (before anything was answered or stored) to leave it to the route."""
        kind, template, model_in, model_out = _KINDS[match[1]]
        try:
            room = uuid.UUID(match[2])
            fields: Any = model_in.model_validate_json(body)
        except (ValueError, ValidationError):
            return False
        app: FastAPI = scope["app"]
        state: AppState = app.state.msgops
        scope["route"] = _ROUTES[template]
        try:
            user = await verified_user(state, token)
        except Exception:
            return False
        try:
            row, created = await messaging.send_to_room(
                state, user, kind, room, fields.content, fields.client_msg_id, getattr(fields, "parent_id", None),
                cleaned=kind == "community")  # the community model cleans its content itself
            response = json_response(model_out.model_validate(row), 201 if created else 200)
        except Exception as exc:
            handler = _handler(app, exc)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
        await response(scope, receive, send)
        return True

async def _buffered(receive: Receive) -> tuple[bytes | None, Receive]:
    """The whole request body, and a receive that hands it on once more (to the route)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, receive
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _bearer_and_json(scope: Scope) -> str | None:
    """The bearer token of a request whose body is declared JSON; None otherwise."""
    token = None
    json_body = False
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            token = credentials.strip() if scheme.lower() == "bearer" else None
        elif name == b"content-type":
            json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
    return token if json_body and token else None


def _handler(app: FastAPI, exc: Exception) -> Any:
    """The exception handler the app registered for this exception (its class or a base class)."""
    for cls in type(exc).__mro__:
        handler = app.exception_handlers.get(cls)
        if handler is not None:
            return handler
    return None


if set(_ROUTES) != {template for _, template, _, _ in _KINDS.values()}:
    raise RuntimeError(f"the send routes moved: found {sorted(_ROUTES)}; update service/send_path.py")
