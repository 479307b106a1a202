"""Which realtime adapter a run uses (msgops.yaml `realtime:`), and the two ways probes open sockets:
as a test user, or as a client presenting a bad token (or none)."""

from __future__ import annotations

from msgops import realtimemap
from msgops.probes.context import Context
from msgops.probes.realtime.recording import Socket
from msgops.probes.realtime.reference import ReferenceSocket
from msgops.realtimemap import RealtimeSettings


def settings(ctx: Context) -> RealtimeSettings:
    cached = ctx.cache.get("realtime.settings")
    if cached is None:
        cached = ctx.cache["realtime.settings"] = realtimemap.parse(ctx.target.realtime)
    assert isinstance(cached, RealtimeSettings)
    return cached


def endpoint(ctx: Context) -> str:
    """Where the realtime probes connect (for evidence and messages)."""
    api = ctx.require_api().rstrip("/")
    config = settings(ctx)
    base = (config.url or api).rstrip("/")
    if config.protocol == "socketio":
        return f"{base} (Socket.IO, path {config.path}, namespace {config.namespace})"
    return base.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + config.path


def protocol(ctx: Context) -> str:
    """What the realtime probes speak, for evidence: `websocket (reference)` or `socketio (namespace /x)`."""
    config = settings(ctx)
    if config.protocol == "socketio":
        return f"socketio (namespace {config.namespace})"
    return "websocket (reference)"


def _base(ctx: Context) -> str:
    return (settings(ctx).url or ctx.require_api()).rstrip("/")


async def authenticated(ctx: Context, token: str, label: str) -> Socket:
    """A socket of a test user, authenticated (RealtimeUnavailable when a valid token is refused)."""
    config = settings(ctx)
    if config.protocol == "socketio":
        from msgops.probes.realtime.sio_adapter import SocketIOSocket  # python-socketio only when used

        return await SocketIOSocket.authenticated(config, _base(ctx), token, label)
    return await ReferenceSocket.authenticated(endpoint(ctx), token, label)


async def attempt(ctx: Context, label: str, token: str | None, query: str = "") -> Socket:
    """A client presenting `token` (None: no token at all), as a client would, refused or not."""
    config = settings(ctx)
    if config.protocol == "socketio":
        from msgops.probes.realtime.sio_adapter import SocketIOSocket

        sock = SocketIOSocket(config, _base(ctx), label)
        await sock.connect(token, query)
        return sock
    ref = await ReferenceSocket.open(endpoint(ctx), label, query)
    await ref.attempt(token)
    return ref
