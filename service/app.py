"""The FastAPI application: `create_app()` wires settings, database, auth, routes and realtime."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException

from msgops import __version__
from service import limits, logs, metrics, runtime
from service.auth import TokenVerifier
from service.db import Database
from service.http_errors import database_error_handler, http_error_handler, validation_error_handler
from service.middleware import HttpEdgeMiddleware
from service.request_id import RequestIdMiddleware
from service.routes import (
    admin,
    attachments,
    broadcasts,
    communities,
    conversations,
    health,
    messages,
    moderation,
    notifications,
    push,
    users,
)
from service.send_path import SendFastPath
from service.settings import Settings
from service.state import AppState

log = logging.getLogger("service")

# The service reports through Prometheus (/metrics) and its JSON log. FastAPI's own OpenTelemetry
# hook (newer FastAPI) otherwise looks up three global OpenTelemetry providers on every request.
_NO_OTEL: dict[str, Any] = ({"telemetry": {"tracing": False, "metrics": False, "logs": False}}
                            if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    if not settings.database_url:
        raise ValueError("DATABASE_URL is not set; start the service with `msgops serve`")
    logs.configure(settings.log_level, settings.log_file)
    state = AppState(
        settings=settings,
        db=Database(settings.database_url, settings.pool_min_size, settings.pool_max, settings.pool_timeout_s),
        verifier=TokenVerifier(settings.jwt_secret, settings.jwt_audience, settings.jwt_algorithms,
                               settings.jwks_url),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.db.open()
        await _start_realtime(state)
        await _start_jobs(state)
        runtime.tune_gc()
        log.info("service started", extra={"environment": settings.environment, "version": __version__})
        try:
            yield
        finally:
            await _stop_jobs(state)
            await _stop_realtime(state)
            await state.db.close()
            metrics.process_exiting()
            log.info("service stopped")

    app = FastAPI(
        title="msgops messaging service",
        version=__version__,
        description="Conversations, communities, messages, moderation and realtime, authorized by "
                    "PostgreSQL Row Level Security.",
        lifespan=lifespan,
        **_NO_OTEL,
    )
    app.state.msgops = state
    app.add_exception_handler(psycopg.Error, database_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    for module in (health, users, conversations, messages, communities, broadcasts, moderation, admin,
                   attachments, notifications, push):
        app.include_router(module.router)
    _include_realtime(app)
    app.add_middleware(SendFastPath)  # first: the innermost, behind every other middleware
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )
    limits.install(app, settings, state.verifier)
    # The last added runs first: every answer, the body guard's 401 and 413 included, gets the
    # security headers, is counted and logged, and carries the request id.
    app.add_middleware(HttpEdgeMiddleware, hsts=settings.hsts)
    app.add_middleware(RequestIdMiddleware)
    return app


# Realtime and jobs are optional modules: the REST API works without them.

def _include_realtime(app: FastAPI) -> None:
    try:
        from service.realtime import routes as realtime_routes
    except ImportError:
        return
    app.include_router(realtime_routes.router)
    from service.realtime import socketio_gateway  # Socket.IO at /socket.io, namespace /messaging

    socketio_gateway.mount(app)


async def _start_realtime(state: AppState) -> None:
    try:
        from service.realtime import lifecycle
    except ImportError:
        return
    await lifecycle.start(state)
    from service.notifications import dispatch
    from service.notifications import push as web_push

    web_push.start(state)
    dispatch.start(state)


async def _stop_realtime(state: AppState) -> None:
    try:
        from service.realtime import lifecycle
    except ImportError:
        return
    from service.notifications import dispatch

    await dispatch.stop(state)
    await lifecycle.stop(state)


async def _start_jobs(state: AppState) -> None:
    if not state.settings.jobs_enabled:
        return
    try:
        from service import jobs
    except ImportError:
        return
    state.jobs = jobs.Scheduler(state)
    await state.jobs.start()


async def _stop_jobs(state: AppState) -> None:
    if state.jobs is not None:
        await state.jobs.stop()


def app_from_env() -> FastAPI:
    """uvicorn factory: `uvicorn service.app:app_from_env --factory` (used by `msgops serve --workers N`)."""
    return create_app(Settings.from_env())
