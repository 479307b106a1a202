"""What the service refuses at its edge, before any route runs: installed by `install()`."""

from __future__ import annotations

from fastapi import FastAPI

from service.request_id import RequestIdMiddleware
from service.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """Add the edge middleware; the last added runs first, so the request id covers everything."""
    app.add_middleware(RequestIdMiddleware)
