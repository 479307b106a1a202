"""uvicorn's server, with the realtime sockets drained before uvicorn closes connections.

uvicorn closes WebSockets itself (code 1012) before the application's shutdown runs; draining
first lets every socket receive what was already committed and a 1001 "going away" close.
"""

from __future__ import annotations

import socket

import uvicorn

from service.serving import WS_MAX_SIZE
from service.state import AppState

__all__ = ["WS_MAX_SIZE", "DrainingServer"]


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: AppState) -> None:
        super().__init__(config)
        self.app_state = state

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        from service.realtime import lifecycle

        await lifecycle.drain(self.app_state)
        await super().shutdown(sockets)
