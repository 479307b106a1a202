"""Socket.IO (python-socketio's asyncio client): URL, path, namespace, an auth payload, and event names
mapped to msgops's. Client frames are emitted as events named by their `type`; every event received
is recorded as a frame with the msgops name as its `type`."""

from __future__ import annotations

import contextlib
from typing import Any

import socketio

from msgops.probes.realtime.recording import OPEN_TIMEOUT, Frame, RealtimeUnavailable, Socket
from msgops.probes.realtime.settings import RealtimeSettings


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
            frame: Frame = {self._ours(k): v for k, v in data.items()} if isinstance(data, dict) else {"data": data}
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

    def _ours(self, field: str) -> str:
        return next((ours for ours, theirs in self.settings.fields.items() if theirs == field), field)

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
        data = {self.settings.fields.get(k, k): v for k, v in frame.items() if k != "type"}
        try:
            await self.client.emit(self.settings.target_event(str(frame.get("type"))), data,
                                   namespace=self.settings.namespace)
        except socketio.exceptions.BadNamespaceError:
            return False
        return True

    async def _disconnect(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.disconnect()
        self._ended(1000, "client disconnect")
