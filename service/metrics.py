"""Prometheus metrics for /metrics. One registry per process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
ws_connections = Gauge("msgops_ws_connections", "Open WebSocket connections", registry=registry)
ws_events = Counter("msgops_ws_events_total", "WebSocket events sent to clients", ["event"], registry=registry)
jobs_runs = Counter("msgops_job_runs_total", "Background job runs", ["job", "outcome"], registry=registry)
db_pool_size = Gauge("msgops_db_pool_size", "Connections in the database pool", registry=registry)
db_pool_available = Gauge("msgops_db_pool_available", "Idle connections in the database pool", registry=registry)
