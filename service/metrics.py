"""Prometheus metrics for /metrics.

One registry per process. When several worker processes serve (`msgops serve --workers N`), serve
sets PROMETHEUS_MULTIPROC_DIR and prometheus-client's multiprocess mode keeps each worker's values
in files there; `exposition()` then adds them up, so every scrape shows the whole instance."""

from __future__ import annotations

import functools
import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

registry = CollectorRegistry()

http_requests = Counter(
    "msgops_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"],
    registry=registry,
)
http_latency = Histogram(
    "msgops_http_request_duration_seconds", "HTTP request latency by route", ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0), registry=registry,
)
messages_sent = Counter("msgops_messages_sent_total", "Messages stored", ["channel"], registry=registry)
rate_limited = Counter("msgops_rate_limited_total", "Requests refused by a rate limit", ["action"],
                       registry=registry)
ws_connections = Gauge("msgops_ws_connections", "Open WebSocket connections", registry=registry,
                       multiprocess_mode="livesum")
ws_events = Counter("msgops_ws_events_total", "WebSocket events sent to clients", ["event"], registry=registry)
jobs_runs = Counter("msgops_job_runs_total", "Background job runs", ["job", "outcome"], registry=registry)
db_pool_size = Gauge("msgops_db_pool_size", "Connections in the database pool", registry=registry,
                     multiprocess_mode="liveall")
db_pool_available = Gauge("msgops_db_pool_available", "Idle connections in the database pool", registry=registry,
                          multiprocess_mode="liveall")

CONTENT_TYPE = CONTENT_TYPE_LATEST


@functools.cache
def series(metric: Any, *labels: str) -> Any:
    """A labelled series, looked up once: labels() takes a lock and builds its key on every call,
    which the hot paths (every request, every send) would pay each time."""
    return metric.labels(*labels)


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> bytes:
    """The text exposition: this process's registry, or every worker's values added up."""
    if _multiprocess_dir() is None:
        return generate_latest(registry)
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)
    return generate_latest(combined)


def process_exiting() -> None:
    """A worker stops: its live gauges leave the sums."""
    if _multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())
