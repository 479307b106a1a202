"""Before the checks: can the target's API and database be reached at all?

Without this, an unreachable target shows up as a hundred probes each timing out on its own (a
black-holed host costs every one of them the full timeout) and as second-hand errors such as a
closed connection pool. One connection attempt per endpoint, with a short timeout, turns that
into one message naming what is unreachable and where it was configured; the probes that need
it are reported as `error` with that message and not run.
"""

from __future__ import annotations

import asyncio
import os
import socket
from urllib.parse import urlsplit

import psycopg

from msgops.config import Target
from msgops.target import mask_url

TIMEOUT_S = 5.0

# Which part of the target each probe family talks to.
NEEDS = {"db": "database", "http": "api", "realtime": "api"}


def _why(exc: BaseException) -> str:
    """The cause alone: 'connection refused', 'FATAL: role "x" does not exist', 'no answer within 5 s'."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT_S:g} s"
    if isinstance(exc, socket.gaierror):
        return f"host not found: {exc.strerror}"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)  # not asyncio's "Connect call failed ('127.0.0.1', 1)"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    cause = first.rsplit(" failed: ", 1)[-1]  # libpq: 'connection to server at "h", port p failed: <cause>'
    return " ".join(cause.split()).rstrip(".")


async def _api(url: str) -> str | None:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        return (f"cannot reach the API at {url} ({_why(exc)}): start the service, or fix --api-url / "
                "MSGOPS_API_URL / api_url in msgops.yaml")
    writer.close()
    return None


async def _database(url: str) -> str | None:
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=int(TIMEOUT_S))
    except psycopg.OperationalError as exc:
        return (f"cannot connect to PostgreSQL at {mask_url(url)} ({_why(exc)}): start it, or fix "
                "--database-url / DATABASE_URL / database_url_env in msgops.yaml")
    await conn.close()
    return None


async def unreachable(target: Target, families: set[str]) -> dict[str, str]:
    """{probe family: why it cannot run} for the families whose endpoint does not answer."""
    wanted = {NEEDS[f] for f in families if f in NEEDS}
    checks: dict[str, asyncio.Task[str | None]] = {}
    async with asyncio.TaskGroup() as group:
        if "api" in wanted and target.api_url:
            checks["api"] = group.create_task(_api(target.api_url))
        if "database" in wanted and target.database_url:
            checks["database"] = group.create_task(_database(target.database_url))
    down: dict[str, str] = {}
    for part, task in checks.items():
        if (reason := task.result()) is not None:
            down[part] = reason
    return {family: down[part] for family, part in NEEDS.items() if part in down}
