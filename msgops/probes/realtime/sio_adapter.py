"""Socket.IO (python-socketio's asyncio client): URL, path, namespace, an auth payload, and event names
mapped to msgops's. Client frames are emitted as events named by their `type`; every event received
is recorded as a frame with the msgops name as its `type`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import socketio

from msgops.probes.realtime.recording import OPEN_TIMEOUT, Frame, RealtimeUnavailable, Socket
from msgops.realtimemap import RealtimeSettings

# The reply each request gets, for acknowledgements that do not say their type.
_REPLIES = {"join_conversation": "joined", "leave_conversation": "left", "send_message": "message_sent",
            "heartbeat": "heartbeat_ack", "refresh_token": "token_refreshed"}


def _payload(template: Any, token: str | None) -> Any:
    if isinstance(template, str):
        return template.replace("{token}", token or "")
    if isinstance(template, dict):
        return {k: _payload(v, token) for k, v in template.items()}
    return template


class SocketIOSocket(Socket):
    protocol = "socketio"

    def __init__(self, settings: RealtimeSettings, url: str, label: str) -> None:
        super().__init__(label)
        self.settings, self.url = settings, url
        self.client = socketio.AsyncClient(reconnection=False)
        self.refused: str | None = None
        namespace = settings.namespace

        @self.client.on("*", namespace=namespace)
        async def received(event: str, data: Any = None) -> None:
            frame: Frame = self._ours(data) if isinstance(data, dict) else {"data": data}
            frame["type"] = settings.msgops_event(event)
            self._record(frame)

        @self.client.on("disconnect", namespace=namespace)
        async def disconnected(reason: Any = None) -> None:
            last = next((f for f in reversed(self.frames) if f.get("type") == "disconnect_reason"), None)
            self._ended(int(last["code"]) if last and str(last.get("code", "")).isdigit() else None,
                        str(last.get("reason") if last else reason or "disconnected"))

        @self.client.on("connect_error", namespace=namespace)
        async def refused(data: Any = None) -> None:
            self.refused = str(data.get("message") if isinstance(data, dict) else data)
            self._record({"type": "error", "code": "connect_error", "message": self.refused})

    def _ours(self, value: Any) -> Any:
        """A payload with the target's field names renamed to msgops's, at any depth."""
        if isinstance(value, dict):
            back = {theirs: ours for ours, theirs in self.settings.fields.items()}
            return {back.get(k, k): self._ours(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._ours(v) for v in value]
        return value

    def _theirs(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {self.settings.fields.get(k, k): self._theirs(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._theirs(v) for v in value]
        return value

    def _ack(self, request: str, ref: str) -> Any:
        def record(data: Any = None, *_: Any) -> None:
            frame: Frame = self._ours(data) if isinstance(data, dict) else {"data": data}
            kind = frame.get("type")
            if not kind:
                failed = frame.get("ok") is False or "error" in frame
                kind = "error" if failed else _REPLIES.get(request, f"{request}_ack")
            frame["type"], frame["ref"] = self.settings.msgops_event(str(kind)), ref
            self._record(frame)

        return record

    async def connect(self, token: str | None, query: str = "") -> bool:
        """Connect with the auth payload for `token` (none when None); False when the server refused."""
        auth = _payload(self.settings.auth, token) if token is not None else None
        try:
            await self.client.connect(self.url + query, namespaces=[self.settings.namespace],
                                      socketio_path=self.settings.path.strip("/"), auth=auth,
                                      transports=["websocket"], wait_timeout=OPEN_TIMEOUT)
        except socketio.exceptions.ConnectionError as exc:
            self.refused = self.refused or str(exc)
            self._ended(None, f"refused: {self.refused}")
            return False
        return True

    @classmethod
    async def authenticated(cls, settings: RealtimeSettings, url: str, token: str, label: str) -> SocketIOSocket:
        sock = cls(settings, url, label)
        if not await sock.connect(token):
            raise RealtimeUnavailable(f"a valid token was not accepted by Socket.IO at {url} namespace "
                                      f"{settings.namespace} ({label}): {sock.refused}; check realtime.url, path, "
                                      "namespace and auth in msgops.yaml")
        return sock

    async def _emit(self, frame: Frame) -> bool:
        request = str(frame.get("type"))
        ref = frame.get("ref")
        data = self._theirs({k: v for k, v in frame.items() if k != "type"})
        callback = self._ack(request, str(ref)) if self.settings.acks and ref else None
        try:
            await self.client.emit(self.settings.target_event(request), data, namespace=self.settings.namespace,
                                   callback=callback)
        except socketio.exceptions.BadNamespaceError:
            return False
        return True

    async def _disconnect(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.disconnect()
        self._ended(1000, "client disconnect")


# What a server answers a CONNECT to a namespace it does not serve: python-socketio's error packet, and
# the JavaScript server's. (A python-socketio handler that refuses without a reason answers "Connection
# rejected by server" instead.)
_NO_NAMESPACE = ("unable to connect", "invalid namespace")


@dataclass(frozen=True)
class Refusal:
    """Why the Socket.IO endpoint cannot serve the realtime checks, one line with the fix."""

    why: str
    no_server: bool  # nothing speaks Socket.IO there at all (a configuration error, exit 3)


async def refusal(settings: RealtimeSettings, url: str, token: str | None = None) -> Refusal | None:
    """Before a run: connect as a test user would (`token`: one persona's; None when msgops has no test
    users) and say why that cannot work: no Socket.IO server at the path, a namespace the server does
    not serve, or a test user's token refused. None when the connection is accepted, or, without a
    token, refused only for want of one."""
    sock = SocketIOSocket(settings, url, "preflight")
    try:
        connected = await sock.connect(token)
    finally:
        await sock.close()
    if connected:
        return None
    why = (sock.refused or "").strip()
    where = f"{url} path {settings.path} namespace {settings.namespace}"
    if why.lower().startswith(_NO_NAMESPACE):
        return Refusal(f"the Socket.IO server at {url} path {settings.path} refused the namespace "
                       f"{settings.namespace} (it answered {why!r}, a namespace it does not serve): set "
                       "realtime.namespace in msgops.yaml to the namespace the server serves", no_server=False)
    if "connection error" in why.lower() or "unexpected response" in why.lower() or "404" in why:
        return Refusal(f"no Socket.IO server answers at {where} ({why}): fix realtime.url and realtime.path",
                       no_server=True)
    if token is None:
        return None
    return Refusal(f"the Socket.IO server at {where} refused a test user's connection (it answered {why!r}): fix "
                   "personas in msgops.yaml so their tokens are accepted, or realtime.auth (the connect payload, "
                   f"now {settings.auth})", no_server=False)
