"""Liveness with the database, and Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from msgops import __version__
from service import metrics
from service.capabilities import Capabilities, capabilities
from service.deps import State

router = APIRouter(tags=["health"])

HEALTH_TIMEOUT_S = 0.8  # a load balancer hears 503 within a second when the database is away


class PoolInfo(BaseModel):
    size: int
    available: int
    max: int


class Health(BaseModel):
    status: str
    database: str
    version: str
    environment: str
    uptime_s: float
    log_level: str
    migrations: int
    pool: PoolInfo
    realtime_bus: str | None = None
    rate_limits: dict[str, str] = {}  # action -> "hits/seconds"
    capabilities: Capabilities = Capabilities()  # features beyond the core API, where they live, their limits


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(state: State) -> Response | Health:
    """Process and database health: 200 when the database answers, 503 otherwise."""
    database, migrations = "ok", 0
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S), state.db.privileged(timeout_s=HEALTH_TIMEOUT_S) as conn:
            cur = await conn.execute("select count(*) as n from msgops_meta.schema_migrations")
            row = await cur.fetchone()
            migrations = int(row["n"]) if row else 0
    except Exception as exc:  # any failure to reach the database is an unhealthy answer, not a 500
        database = f"error: {type(exc).__name__}"
        state.db.connection_lost()
    stats = state.db.pool.get_stats()
    body = Health(
        status="ok" if database == "ok" else "degraded",
        database=database,
        version=__version__,
        environment=state.settings.environment,
        uptime_s=round(time.monotonic() - state.started, 1),
        log_level=state.settings.log_level,
        migrations=migrations,
        pool=PoolInfo(size=stats.get("pool_size", 0), available=stats.get("pool_available", 0),
                      max=state.settings.pool_max),
        realtime_bus=getattr(state.bus, "name", None),
        rate_limits={a: f"{r.max_hits}/{r.window_seconds}" for a, r in state.settings.rate_limits.items()},
        capabilities=capabilities(state),
    )
    if database != "ok":
        return JSONResponse(body.model_dump(), status_code=503)
    return body


@router.get("/metrics", response_class=Response, include_in_schema=True,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"},
                       401: {"description": "MSGOPS_METRICS_TOKEN is set and the bearer token is not it"}})
async def prometheus_metrics(state: State, request: Request) -> Response:
    """Prometheus text exposition of the instance's metrics (all its worker processes added up).
    With MSGOPS_METRICS_TOKEN set, scrapers send it as a bearer token."""
    expected = state.settings.metrics_token
    if expected is not None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            return JSONResponse({"detail": "metrics need the bearer token set in MSGOPS_METRICS_TOKEN"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
    stats = state.db.pool.get_stats()
    metrics.db_pool_size.set(stats.get("pool_size", 0))
    metrics.db_pool_available.set(stats.get("pool_available", 0))
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
