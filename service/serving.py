"""How uvicorn serves the app: the protocol classes and settings every way of serving shares
(`msgops serve`, its workers, the tests).

uvicorn alone leaves three doors open, closed here at the connection level:
- a connection that never sends a complete request head (idle, or slowloris) was never closed:
  the head must be complete within `header_timeout_s` of the connection or of its previous response;
- a body that trickles: each chunk must follow the previous within `body_timeout_s`;
- one client could hold every descriptor: at most `max_connections_per_client` open connections
  per client address (by default a quarter of the descriptor limit; 0: no cap; behind a proxy every
  client has the proxy's address);
- a WebSocket close frame waited behind write flow control, so a peer that stopped reading got a bare
  EOF instead of 4008: a close is written past flow control (the transport buffers it behind the
  frames already queued), and the connection is aborted if the peer still has not read it after
  `close_abort_s`.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from service.settings import Settings

# Frames above this are refused by the protocol layer; the realtime hub answers frames over its own
# 16 KiB limit with an error event.
WS_MAX_SIZE = 64 * 1024


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    max_connections_per_client: int = 256
    close_abort_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        cap = settings.max_connections_per_client
        return cls(settings.header_timeout_s, settings.body_timeout_s, default_cap() if cap is None else cap)


def default_cap() -> int:
    """A quarter of this process's descriptor limit: one client cannot starve the others, and a load
    test from one machine (which needs a raised limit anyway) is not refused."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else max(64, soft // 4)


@functools.cache
def _limits_from_env() -> ConnectionLimits:
    return ConnectionLimits.from_settings(Settings.from_env(database_url="unused"))


def _limits(config: uvicorn.Config) -> ConnectionLimits:
    limits = getattr(config, "msgops_limits", None)
    return limits if isinstance(limits, ConnectionLimits) else _limits_from_env()


# (server, client host) -> open transports. Keyed by server so that several servers in one process
# (the tests) count apart; transports, not protocols, because an upgrade hands one to a new protocol.
_open: dict[tuple[int, str], set[asyncio.BaseTransport]] = defaultdict(set)


def _client_key(server: Any, transport: asyncio.BaseTransport) -> tuple[int, str] | None:
    peer = transport.get_extra_info("peername")
    if not peer:
        return None
    return id(server), str(peer[0])


def _release(server: Any, transport: asyncio.BaseTransport) -> None:
    key = _client_key(server, transport)
    if key is not None and key in _open:
        _open[key].discard(transport)
        if not _open[key]:
            del _open[key]


_TOO_MANY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\n"
             b"connection: close\r\ncontent-length: 52\r\n\r\n"
             b'{"detail": "too many connections from this client"}\n')


class _OneWrite:
    """The transport as one HTTP response sees it. uvicorn writes the status line and headers, then
    the body, in two writes: two segments, two wake-ups of the client, two send() calls (on loopback
    the first was about a quarter of a message send's CPU in the service). The head is held until
    the body comes in the same loop turn, and goes out with it; a head whose body is not written in
    that turn (a streamed response) leaves on its own at the end of the turn."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
            self._transport.write(data)
        elif data.startswith(b"HTTP/") and not data.startswith(b"HTTP/1.1 100 "):  # a response's head
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpProtocol(HttpToolsProtocol):
    """HTTP/1.1 with a head timeout, a body timeout and a per-client connection cap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = _limits(self.config)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        key = _client_key(self.connections, transport)
        cap = self.limits.max_connections_per_client
        if key is not None:
            if cap and len(_open[key]) >= cap:
                transport.write(_TOO_MANY)
                transport.close()
                return
            _open[key].add(transport)
        self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        _release(self.connections, self.transport)
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        if seconds > 0:
            self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.limits.header_timeout_s)

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous and self.cycle is not None:  # a new request (not an upgrade)
            self.cycle.transport = _OneWrite(self.transport, self.loop)  # type: ignore[assignment]
        self._arm(self.limits.body_timeout_s)  # for the body, if any; the message's end disarms

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm(self.limits.body_timeout_s)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn's keep-alive timeout runs from here; the head timeout catches a trickled next request.

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """WebSockets whose close frame is never held back by write flow control."""

    def connection_lost(self, exc: Exception | None) -> None:
        _release(self.connections, self.transport)
        super().connection_lost(exc)

    async def send(self, message: Any) -> None:
        if (message["type"] == "websocket.close" and self.handshake_complete and not self.writable.is_set()
                and not self.close_sent and not self.disconnected and not self.transport.is_closing()):
            # The peer is not reading. The close goes behind what is queued; it reads it when it reads.
            code, reason = message.get("code", 1000), message.get("reason", "") or ""
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            self.conn.send_close(code, reason)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.stop_keepalive()  # a ping would wait behind the same queue: no pong can come
            self.loop.call_later(_limits(self.config).close_abort_s, self._abort_if_open)
            return
        await super().send(message)

    def _abort_if_open(self) -> None:
        if not self.disconnected:
            self.transport.abort()


def config(app: Any, settings: Settings | None = None, **options: Any) -> uvicorn.Config:
    """A uvicorn Config with the service's protocols; `settings` gives the connection limits
    (without it, each worker reads them from the environment)."""
    values: dict[str, Any] = {"log_level": "warning", "http": GuardedHttpProtocol, "ws": GuardedWebSocketProtocol,
                              "ws_per_message_deflate": False, "ws_max_size": WS_MAX_SIZE, "server_header": False}
    if settings is not None:
        values["timeout_keep_alive"] = settings.keepalive_timeout_s
    values.update(options)
    cfg = uvicorn.Config(app, **values)
    if settings is not None:
        cfg.msgops_limits = ConnectionLimits.from_settings(settings)  # type: ignore[attr-defined]
    return cfg
