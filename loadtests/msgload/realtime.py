"""One listening WebSocket: connect, authenticate, join a conversation, then receive in a greenlet.

Connecting (TCP + upgrade + auth frame + join) is timed as one request (`WS connect`); a failure
counts as a connect failure. Every `message_received` carrying a load stamp records its delivery
latency (now - the sender's intended send time) and which socket got which message, from which
the runner counts lost and duplicated deliveries.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import gevent
import orjson
from locust.env import Environment
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from msgload.runstate import RUN, parse_content

WS_NAME = "/realtime"
OPEN_TIMEOUT = 10.0


class HandshakeError(Exception):
    pass


def _await(ws: ClientConnection, kind: str, deadline: float) -> dict[str, Any]:
    """Frames until one of type `kind`; an error frame or the deadline fails the handshake."""
    while True:
        remaining = deadline - time.time()
        if remaining <= 0:
            raise HandshakeError(f"no {kind} frame within {OPEN_TIMEOUT:g}s")
        frame = orjson.loads(ws.recv(timeout=remaining))
        if frame.get("type") == kind:
            return dict(frame)
        if frame.get("type") == "error":
            raise HandshakeError(f"{frame.get('code')}: {frame.get('message')}")


def _with_token(template: Any, token: str) -> Any:
    """The connect payload with "{token}" filled in."""
    if isinstance(template, str):
        return template.replace("{token}", token)
    if isinstance(template, dict):
        return {k: _with_token(v, token) for k, v in template.items()}
    if isinstance(template, list):
        return [_with_token(v, token) for v in template]
    return template


def _joined(reply: Any, joined: str) -> bool:
    """A join's acknowledgement says joined: by its type, or, without one, by not failing (as the
    realtime checks read acknowledgements)."""
    if not isinstance(reply, dict):
        return False
    if "type" in reply:
        return bool(reply["type"] == joined)
    return reply.get("ok") is not False and "error" not in reply


class RealtimeSocket:
    """A socket for one identity, joined to that identity's conversation."""

    def __init__(self, environment: Environment, identity_index: int) -> None:
        self.environment = environment
        self.identity_index = identity_index
        self.ws: ClientConnection | None = None
        self.key = ""
        self.receiver: gevent.Greenlet[Any, Any] | None = None
        self.sio: Any = None  # a socketio.Client when the target speaks Socket.IO

    @property
    def alive(self) -> bool:
        if self.sio is not None:
            return bool(self.sio.connected)
        return self.receiver is not None and not self.receiver.dead

    def open(self) -> bool:
        plan = RUN.require_plan()
        if plan.realtime_protocol == "socketio":
            return self._open_socketio()
        ident = RUN.identity(self.identity_index)
        started, perf = time.time(), time.perf_counter()
        error: Exception | None = None
        try:
            ws = connect(plan.ws_url, open_timeout=OPEN_TIMEOUT, close_timeout=1, compression=None,
                         ping_interval=None, max_size=2**20)
            try:
                deadline = started + OPEN_TIMEOUT
                ws.send(orjson.dumps({"type": "auth", "token": ident.token}).decode())
                _await(ws, "authenticated", deadline)
                ws.send(orjson.dumps({"type": "join_conversation",
                                      "conversation_id": plan.conversation_id(ident.conversation)}).decode())
                _await(ws, "joined", deadline)
            except BaseException:
                ws.close()
                raise
        except (OSError, WebSocketException, HandshakeError, TimeoutError, ValueError) as exc:
            error = exc
        elapsed_ms = (time.perf_counter() - perf) * 1000
        self.environment.events.request.fire(request_type="WS", name=WS_NAME, response_time=elapsed_ms,
                                             response_length=0, response=None, context={}, exception=error,
                                             start_time=started, url=plan.ws_url)
        if error is not None:
            return False
        self.ws = ws
        self.key = RUN.next_socket()
        RUN.open_sockets += 1
        RUN.recorder.socket_opened(self.key, ident.conversation, time.time())
        self.receiver = gevent.spawn(self._receive, ws, self.key)
        return True

    def _open_socketio(self) -> bool:
        """Socket.IO: connect to the namespace with msgops.yaml's `auth:` payload, join, and record
        `message_received`, under the target's event and field names (realtime `events:`, `fields:`)."""
        import socketio

        plan = RUN.require_plan()
        ident = RUN.identity(self.identity_index)
        name = f"{plan.realtime_path} {plan.realtime_namespace}"
        client = socketio.Client(reconnection=False)
        key = RUN.next_socket()
        recorder = RUN.recorder
        events, fields = plan.realtime_events, plan.realtime_fields
        message_field, content_field = fields.get("message", "message"), fields.get("content", "content")

        @client.on(events.get("message_received", "message_received"), namespace=plan.realtime_namespace)
        def received(frame: Any) -> None:
            now = time.time()
            stamped = parse_content(((frame or {}).get(message_field) or {}).get(content_field))
            if stamped is not None:
                recorder.message_received(stamped[0], key, (now - stamped[1]) * 1000, now)

        @client.on("disconnect", namespace=plan.realtime_namespace)
        def disconnected(*_: Any) -> None:
            RUN.open_sockets -= 1
            if not RUN.stopping:
                RUN.recorder.socket_closed(key, time.time())

        started, perf = time.time(), time.perf_counter()
        error: Exception | None = None
        try:
            client.connect(plan.api_url, namespaces=[plan.realtime_namespace],
                           auth=_with_token(plan.realtime_auth, ident.token),
                           socketio_path=plan.realtime_path.strip("/"), transports=["websocket"],
                           wait_timeout=OPEN_TIMEOUT)
            joined = client.call(events.get("join_conversation", "join_conversation"),
                                 {fields.get("conversation_id", "conversation_id"):
                                  plan.conversation_id(ident.conversation)},
                                 namespace=plan.realtime_namespace, timeout=OPEN_TIMEOUT)
            if not _joined(joined, events.get("joined", "joined")):
                raise HandshakeError(f"join answered {joined}")
        except (OSError, socketio.exceptions.SocketIOError, HandshakeError, TimeoutError, ValueError) as exc:
            error = exc
            with contextlib.suppress(Exception):
                client.disconnect()
        self.environment.events.request.fire(request_type="WS", name=name, response_time=(
            time.perf_counter() - perf) * 1000, response_length=0, response=None, context={}, exception=error,
            start_time=started, url=plan.api_url + plan.realtime_path)
        if error is not None:
            return False
        self.sio = client
        self.key = key
        RUN.open_sockets += 1
        RUN.recorder.socket_opened(key, ident.conversation, time.time())
        return True

    def _receive(self, ws: ClientConnection, key: str) -> None:
        recorder = RUN.recorder  # deltas empty it in place, between greenlet switches
        try:
            for text in ws:
                if not isinstance(text, str) or '"message_received"' not in text:
                    continue
                now = time.time()
                frame = orjson.loads(text)
                stamped = parse_content((frame.get("message") or {}).get("content"))
                if stamped is not None:
                    recorder.message_received(stamped[0], key, (now - stamped[1]) * 1000, now)
        except (OSError, WebSocketException, ValueError):
            pass
        finally:
            RUN.open_sockets -= 1
        if not RUN.stopping:
            RUN.recorder.socket_closed(key, time.time())

    def close(self) -> None:
        if self.sio is not None:
            with contextlib.suppress(Exception):
                self.sio.disconnect()
        if self.receiver is not None:
            self.receiver.kill(block=False)
        if self.ws is not None:
            with contextlib.suppress(OSError, WebSocketException):
                self.ws.close()
