"""The reference protocol: one WebSocket at <api>/realtime, JSON frames, an `auth` frame first."""

from __future__ import annotations

import asyncio
import contextlib
import json

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from msgops.probes.realtime.recording import OPEN_TIMEOUT, REPLY_TIMEOUT, Frame, RealtimeUnavailable, Socket


class ReferenceSocket(Socket):
    protocol = "reference"

    def __init__(self, ws: ClientConnection, label: str) -> None:
        super().__init__(label)
        self.ws = ws
        self._task = asyncio.create_task(self._read(), name=f"probe-socket-{label}")

    @classmethod
    async def open(cls, url: str, label: str, query: str = "") -> ReferenceSocket:
        try:
            ws = await connect(url + query, compression=None, open_timeout=OPEN_TIMEOUT, max_size=1 << 20)
        except InvalidStatus as exc:
            raise RealtimeUnavailable(f"no WebSocket at {url}: the handshake was answered with HTTP "
                                      f"{exc.response.status_code}") from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise RealtimeUnavailable(f"cannot open a WebSocket at {url}: {type(exc).__name__}: {exc}") from None
        return cls(ws, label)

    @classmethod
    async def authenticated(cls, url: str, token: str, label: str) -> ReferenceSocket:
        """Open, send the auth frame, and wait for `authenticated`; anything else means realtime is broken."""
        sock = await cls.open(url, label)
        await sock.send(type="auth", token=token)
        frame = await sock.wait(lambda f: f.get("type") in ("authenticated", "error"), REPLY_TIMEOUT)
        if frame is None or frame.get("type") != "authenticated":
            await sock.close()
            why = (f"closed {sock.close_code} {sock.close_reason!r}" if sock.closed
                   else f"answered {frame}" if frame else f"no answer within {REPLY_TIMEOUT:g}s")
            raise RealtimeUnavailable(f"a valid token was not accepted at {url} ({label}): {why}")
        return sock

    async def attempt(self, token: str | None) -> None:
        """As a client with a bad (or no) token: the auth frame if any."""
        if token is not None:
            await self.send(type="auth", token=token)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    frame = {"type": "<not JSON>", "raw": str(raw)[:200]}
                self._record(frame if isinstance(frame, dict) else {"type": "<not an object>"})
        except ConnectionClosed:
            pass
        finally:
            self._ended(self.ws.close_code, self.ws.close_reason or "")

    async def _emit(self, frame: Frame) -> bool:
        try:
            await self.ws.send(json.dumps(frame, default=str))
        except ConnectionClosed:
            return False
        return True

    async def _disconnect(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(1000)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, timeout=2)
