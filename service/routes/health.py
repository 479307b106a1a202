"""Liveness with the database, and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from msgops import __version__
from service import metrics
from service.capabilities import Capabilities, capabilities
from service.deps import State

router = APIRouter(tags=["health"])


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
        async with state.db.privileged() as conn:
            cur = await conn.execute("select count(*) as n from msgops_meta.schema_migrations")
            row = await cur.fetchone()
            migrations = int(row["n"]) if row else 0
    except Exception as exc:  # any failure to reach the database is an unhealthy answer, not a 500
        database = f"error: {type(exc).__name__}"
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


@router.get("/metrics", response_class=Response, include_in_schema=True)
async def prometheus_metrics(state: State) -> Response:
    """Prometheus text exposition of this process's metrics."""
    stats = state.db.pool.get_stats()
    metrics.db_pool_size.set(stats.get("pool_size", 0))
    metrics.db_pool_available.set(stats.get("pool_available", 0))
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
