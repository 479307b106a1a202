"""Start and stop realtime with the app: the bus (memory, postgres or auto) and the hub."""

from __future__ import annotations

import logging

from service.realtime.bus import make_bus
from service.realtime.config import RealtimeConfig
from service.realtime.hub import Hub
from service.state import AppState

log = logging.getLogger("service.realtime")


async def start(state: AppState, config: RealtimeConfig | None = None) -> None:
    bus = make_bus(state.settings.bus, state.settings.database_url, state.settings.database_private)
    hub = Hub(state, bus, config or RealtimeConfig.from_env())
    await hub.start()
    state.bus, state.hub = bus, hub
    log.info("realtime started", extra={"bus": bus.name, "instance": bus.instance_id})


async def drain(state: AppState, timeout: float = 5.0) -> None:
    """Close the sockets with 1001 (after flushing what they were sent) and wait for them.

    uvicorn closes WebSockets itself (1012) before the app's shutdown runs; a server that wants
    the 1001 and the flush calls this first, e.g. from a uvicorn.Server subclass's shutdown()."""
    if state.hub is not None:
        await state.hub.drain(timeout)


async def stop(state: AppState) -> None:
    """Close the remaining sockets with 1001, let their sessions end, then stop the bus."""
    hub = state.hub
    if hub is None:
        return
    state.hub = None
    await hub.stop()
    state.bus = None
