"""Operability over HTTP: /health (with the database), the log level it reports, /metrics, and /docs."""

from __future__ import annotations

import re
from typing import Any

import httpx

from msgops.probes import Name, Names, probe
from msgops.probes.context import Context, Skip
from msgops.probes.http.common import exchange, json_of, openapi, operations, shared
from msgops.results import Outcome, failed, passed

HEALTH_BUDGET_MS = 2000.0  # load balancers commonly time out health checks at 2-5 s
_HEALTHY = {"ok", "up", "healthy", "pass", "true"}
_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


async def _health(ctx: Context) -> httpx.Response:
    """One GET /health per run, shared by the health and logging checks."""
    ctx.require_api()
    return await shared(ctx, "health", lambda: ctx.http.get("/health"))


def _database_status(body: Any) -> str | None:
    """The database part of a health document, in the usual shapes: {"database": "ok"},
    {"db": {"status": "up"}}, {"checks": {"database": {"status": "pass"}}}."""
    if not isinstance(body, dict):
        return None
    for holder in (body, body.get("checks"), body.get("components"), body.get("details")):
        if not isinstance(holder, dict):
            continue
        for key in ("database", "db", "postgres", "postgresql"):
            if key in holder:
                value = holder[key]
                if isinstance(value, dict):
                    value = value.get("status", value.get("state"))
                return str(value).lower()
    return None


@probe("http.health",
       what="GET /health answers 200 within 2 s and reports the database as reachable.",
       why="Load balancers, orchestrators and on-call engineers act on this endpoint; a health check "
           "that ignores the database keeps routing traffic to an instance that can only fail.",
       example="/health answers 503 {\"database\": \"error: OperationalError\"}, or 200 without any "
               "database status.",
       fix="Serve /health that runs `select 1` (or reads the migration table) on the pool and answers "
           "503 with the reason when it fails.")
async def health(ctx: Context) -> Outcome:
    r = await _health(ctx)
    evidence = exchange(r, headers=("content-type",))
    latency = evidence["ms"]
    database = _database_status(json_of(r))
    evidence["database"] = database
    evidence["budget_ms"] = HEALTH_BUDGET_MS
    if r.status_code != 200:
        return failed(f"GET /health answered {r.status_code} (database: {database})", **evidence)
    if database is None:
        return failed("GET /health answered 200 but reports no database status (database/db/checks.database)",
                      **evidence)
    if database not in _HEALTHY:
        return failed(f"GET /health answered 200 but the database is {database!r}", **evidence)
    if latency > HEALTH_BUDGET_MS:
        return failed(f"GET /health took {latency:.0f} ms (budget {HEALTH_BUDGET_MS:.0f} ms)", **evidence)
    return passed(f"GET /health: 200, database {database}, {latency:.0f} ms", **evidence)


@probe("http.logging",
       what="The service reports its log level (log_level in /health); with `level`, it must equal it "
            "(INFO expected in production).",
       why="DEBUG in production floods the logs and can write request data to them; WARNING or above "
           "drops the request log an incident needs.",
       example="/health reports log_level DEBUG while the checklist asks INFO in production.",
       fix="Set the service's log level (MSGOPS_LOG_LEVEL=INFO) and emit structured logs.")
async def logging_level(ctx: Context, level: Name | None = None) -> Outcome:
    r = await _health(ctx)
    body = json_of(r)
    reported = body.get("log_level") if isinstance(body, dict) else None
    evidence: dict[str, Any] = {"health": exchange(r, body=0), "log_level": reported,
                                "environment": ctx.target.environment}
    if not isinstance(reported, str) or not reported:
        raise Skip("the API does not report its log level (no `log_level` in GET /health); "
                   "confirm it in the deployment's configuration")
    observed = reported.upper()
    expected = level.upper() if level else ("INFO" if ctx.target.environment == "production" else None)
    evidence["expected"] = expected
    if expected is not None and observed != expected:
        return failed(f"log level is {observed}, expected {expected}", **evidence)
    if observed not in _LEVELS:
        return failed(f"log level {reported!r} is not a standard level ({', '.join(_LEVELS)})", **evidence)
    return passed(f"log level {observed}" + (" as expected" if expected else " (structured logs configured)"),
                  **evidence)


# --- /metrics ------------------------------------------------------------------------------------

_TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)", re.M)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", re.M)


def _families(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _TYPE_LINE.finditer(text)}


def _default_gaps(families: dict[str, str]) -> list[str]:
    """Without a named list: a request counter and a latency histogram (or summary) must exist."""
    gaps = []
    if not any(t == "counter" and "request" in n for n, t in families.items()):
        gaps.append("a request counter (a counter named *request*)")
    if not any(t in ("histogram", "summary") and ("duration" in n or "latency" in n) for n, t in families.items()):
        gaps.append("a latency histogram (a histogram named *duration* or *latency*)")
    return gaps


@probe("http.metrics",
       what="GET /metrics serves Prometheus text with the named metric families (default: a request "
            "counter and a request latency histogram).",
       why="Error-rate and latency alerts, and response-time dashboards, need these series; without "
           "them a regression is noticed by users first.",
       example="/metrics answers 404, or has no *_request_duration_seconds histogram.",
       fix="Expose prometheus_client's registry at /metrics with a per-route request counter and a "
           "latency histogram.")
async def metrics(ctx: Context, metrics: Names | None = None) -> Outcome:
    ctx.require_api()
    r = await shared(ctx, "metrics", lambda: ctx.http.get("/metrics"))
    text = r.text if r.status_code == 200 else ""
    families = _families(text)
    samples = set(_SAMPLE.findall(text))
    evidence: dict[str, Any] = {"response": exchange(r, headers=("content-type",), body=0),
                                "families": sorted(families)[:40], "family_count": len(families)}
    if r.status_code != 200:
        return failed(f"GET /metrics answered {r.status_code}", **evidence)
    if not families:
        return failed("GET /metrics is not Prometheus text (no `# TYPE` lines)", **evidence)
    if metrics:
        missing = [m for m in metrics if m not in families and m not in samples
                   and not any(f.startswith(m) for f in families)]
    else:
        missing = _default_gaps(families)
    if missing:
        evidence["missing"] = missing
        return failed(f"/metrics lacks {', '.join(missing)}", **evidence)
    return passed(f"/metrics: {len(families)} metric families" + (f", including {', '.join(metrics)}"
                                                                  if metrics else ""), **evidence)


# --- /docs ---------------------------------------------------------------------------------------

@probe("http.openapi_docs",
       what="/docs serves interactive API documentation (HTML) and /openapi.json parses with paths.",
       why="Client teams and reviewers read the contract there; a stale or missing document means "
           "integrations are built on guesses.",
       example="/docs answers 404 (docs disabled), or /openapi.json has no paths.",
       fix="Keep FastAPI's docs_url and openapi_url enabled (or publish the document elsewhere and "
           "point the check at it), with a docstring per endpoint.")
async def openapi_docs(ctx: Context) -> Outcome:
    return await _openapi_docs(ctx)


async def _openapi_docs(ctx: Context) -> Outcome:
    ctx.require_api()
    docs = await ctx.http.get("/docs")
    evidence: dict[str, Any] = {"docs": exchange(docs, headers=("content-type",), body=0)}
    html = "text/html" in docs.headers.get("content-type", "")
    if docs.status_code != 200 or not html:
        return failed(f"GET /docs answered {docs.status_code} {docs.headers.get('content-type', '')}".strip(),
                      **evidence)
    try:
        doc = await openapi(ctx)
    except Skip as exc:
        return failed(str(exc), **evidence)
    ops = operations(doc)
    undocumented = [op.label for op in ops if not (op.spec.get("description") or op.spec.get("summary"))]
    evidence.update(openapi=doc.get("openapi"), title=doc.get("info", {}).get("title"),
                    paths=len(doc["paths"]), operations=len(ops), undocumented=undocumented[:20])
    if not ops:
        return failed("/openapi.json has no operations", **evidence)
    return passed(f"/docs is HTML; /openapi.json {doc.get('openapi')} with {len(ops)} operations", **evidence)
