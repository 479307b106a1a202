"""Socket.IO beside `/realtime`: namespace `/messaging`, `auth: {token}`, the SPEC-MSG-001 event names.

Clients written for a NestJS-style gateway connect with

    io("https://host/messaging", {path: "/socket.io", auth: {token}})

and emit `join_conversation`, `send_message`, `mark_read`, `typing_start`, `typing_stop`, `heartbeat`
(any client frame of docs/realtime.md, named by its `type`, with the frame's other fields as data); they
receive `message_sent`, `message_received`, `message_read`, `user_typing`, `user_online`,
`user_offline` (and every other server frame), each as an event named by its `type` with the whole
frame as data. An event sent with an acknowledgement callback that has a reply (`joined`,
`message_sent`, `heartbeat_ack`, `left`, `error`) also gets that reply as its ack.

Nothing here decides anything: each Socket.IO connection drives a `Session` of the same hub as
`/realtime` through `SocketIOPipe`, a stand-in for the WebSocket the session reads and writes. The
membership checks, rate limits, token expiry and the fan-out across instances are the hub's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import socketio
from fastapi import FastAPI

from service.auth import AuthError
from service.realtime.protocol import CLOSE_NORMAL
from service.realtime.session import Session
from service.state import AppState

log = logging.getLogger("service.realtime")

NAMESPACE = "/messaging"
PATH = "/socket.io"
ACK_TIMEOUT = 5.0
_REPLIES = frozenset({"joined", "left", "message_sent", "heartbeat_ack", "token_refreshed", "error"})


class SocketIOPipe:
    """What a Session needs of a WebSocket, carried over one Socket.IO connection."""

    def __init__(self, app: FastAPI, sio: socketio.AsyncServer, sid: str, token: str) -> None:
        self.app, self.sio, self.sid = app, sio, sid
        self.query_params = {"token": token}  # the session authenticates as with ?token=
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.closed = False
        self.task: asyncio.Task[None] | None = None

    async def accept(self) -> None:
        return None

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send_text(self, text: str) -> None:
        frame = json.loads(text)
        ref = frame.get("ref")
        if ref and ref in self.waiting and frame.get("type") in _REPLIES:
            future = self.waiting.pop(ref)
            if not future.done():
                future.set_result(frame)
        await self.sio.emit(str(frame.get("type")), frame, to=self.sid, namespace=NAMESPACE)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self.sio.emit("disconnect_reason", {"code": code, "reason": reason}, to=self.sid,
                                namespace=NAMESPACE)
            await self.sio.disconnect(self.sid, namespace=NAMESPACE)

    def push(self, frame: dict[str, Any]) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(frame, default=str)})

    def gone(self, signed_off: bool) -> None:
        self.closed = True
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": CLOSE_NORMAL if signed_off else 1006})


def create(app: FastAPI) -> socketio.ASGIApp:
    """The Socket.IO ASGI app for `app` (mount it at /socket.io)."""
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[], logger=False, engineio_logger=False)
    pipes: dict[str, SocketIOPipe] = {}

    def state() -> AppState:
        result: AppState = app.state.msgops
        return result

    @sio.on("connect", namespace=NAMESPACE)
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise socketio.exceptions.ConnectionRefusedError("authentication required: connect with auth: {token}")
        hub = state().hub
        if hub is None or hub.stopping:
            raise socketio.exceptions.ConnectionRefusedError("realtime is not available")
        try:  # refuse at the handshake, as Socket.IO clients expect (the session verifies again, cached)
            claims = state().verifier.verify(token)
        except AuthError as exc:
            raise socketio.exceptions.ConnectionRefusedError(str(exc)) from None
        if claims.is_service:
            raise socketio.exceptions.ConnectionRefusedError("service tokens cannot open realtime sessions")
        pipe = pipes[sid] = SocketIOPipe(app, sio, sid, token)
        session = Session(state(), hub, pipe)  # type: ignore[arg-type]  # a WebSocket in all the session uses
        pipe.task = asyncio.create_task(_run(session, pipe, pipes))

    @sio.on("disconnect", namespace=NAMESPACE)
    async def disconnect(sid: str, reason: str = "") -> None:
        pipe = pipes.get(sid)
        if pipe is not None and not pipe.closed:
            pipe.gone(signed_off=reason == sio.reason.CLIENT_DISCONNECT)

    @sio.on("*", namespace=NAMESPACE)
    async def event(name: str, sid: str, data: Any = None) -> dict[str, Any] | None:
        pipe = pipes.get(sid)
        if pipe is None or pipe.closed:
            return None
        frame = {**(data if isinstance(data, dict) else {}), "type": name}
        if not frame.get("ref") and name in ("join_conversation", "join_community", "leave_conversation",
                                             "leave_community", "send_message", "heartbeat", "refresh_token"):
            frame["ref"] = f"sio-{id(frame):x}"
        future: asyncio.Future[dict[str, Any]] | None = None
        if frame.get("ref"):
            future = pipe.waiting[str(frame["ref"])] = asyncio.get_running_loop().create_future()
        pipe.push(frame)
        if future is None:
            return None
        try:
            return await asyncio.wait_for(future, ACK_TIMEOUT)
        except TimeoutError:
            pipe.waiting.pop(str(frame["ref"]), None)
            return None

    return socketio.ASGIApp(sio, socketio_path=None)


async def _run(session: Session, pipe: SocketIOPipe, pipes: dict[str, SocketIOPipe]) -> None:
    try:
        await session.run()
    except Exception:
        log.exception("socket.io session failed", extra={"sid": pipe.sid})
    finally:
        pipes.pop(pipe.sid, None)
        await pipe.close()


def mount(app: FastAPI) -> None:
    """Serve Socket.IO at /socket.io (namespace /messaging) on `app`."""
    app.mount(PATH, create(app), name="socketio")
