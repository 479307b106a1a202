"""The WebSocket endpoint `/realtime`. The protocol is in docs/realtime.md and protocol.py.

The endpoint is a plain ASGI callable on a Starlette WebSocketRoute rather than a FastAPI
websocket function: FastAPI's per-connection dependency machinery (exit stacks, exception
wrappers) costs about 9 KiB per idle socket, a quarter of the budget for 10,000 sockets.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from service.realtime.session import Session
from service.state import AppState


class RealtimeEndpoint:
    """Realtime events over a WebSocket.

    Authenticate with a first frame `{"type": "auth", "token": "<JWT>"}` within 5 seconds (or
    `?token=<JWT>`), then join conversations or community channels and receive their events.
    Close codes: 4401 bad or missing authentication, 4001 token expired, 4008 slow consumer,
    1001/1012 server going away (reconnect and resume with `since_seq`).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        state: AppState = websocket.app.state.msgops
        if state.hub is None:  # realtime did not start: refuse clearly rather than hang
            await websocket.close(1013, "realtime is not available")
            return
        await Session(state, state.hub, websocket).run()


router = APIRouter(tags=["realtime"])
router.routes.append(WebSocketRoute("/realtime", RealtimeEndpoint(), name="realtime"))
