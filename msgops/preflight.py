"""Before the checks: what will run against which endpoint, what cannot and why, and can the
target's API and database be reached at all?

`describe` says, before any probe runs, which probe families have what they need (an API URL, a
database, a way to get test users, load results) and which will be reported `not_run` with the fix.

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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from msgops import apimap, personas, realtimemap
from msgops.checklist import Item
from msgops.config import Target
from msgops.errors import UserError
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
    """{probe family: why it cannot run} for the families whose endpoint does not answer, or (Socket.IO)
    refuses the namespace or the test users' tokens the realtime probes would present."""
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
    token = None
    if "api" in wanted and target.api_url and "api" not in down and families & {"http", "realtime"}:
        token = await personas.verify(target)  # a token_command or sign-in that cannot work: exit 3 now
    stopped = {family: down[part] for family, part in NEEDS.items() if part in down}
    realtime = realtimemap.parse(target.realtime)
    if "realtime" in families and realtime.protocol == "socketio" and target.api_url and "api" not in down:
        from msgops.probes.realtime.sio_adapter import refusal

        refused = await refusal(realtime, (realtime.url or target.api_url).rstrip("/"), token)
        if refused is not None and refused.no_server:
            raise UserError(refused.why)
        if refused is not None:  # one line now, instead of every realtime check erroring on its own
            stopped["realtime"] = refused.why
    return stopped


_FIX = {
    "api": "set MSGOPS_API_URL (or --api-url, or api_url in msgops.yaml)",
    "database": "set DATABASE_URL (or --database-url, or database_url_env in msgops.yaml)",
    "users": "configure personas: in msgops.yaml, or set MSGOPS_JWT_SECRET to the secret the API verifies tokens "
             "with",
}


@dataclass
class Family:
    """One probe family in this run: how many items, and whether msgops has what they need."""

    name: str
    items: int
    ready: bool
    detail: str  # what it runs against, or why it cannot run and the fix


@dataclass
class Preflight:
    target: dict[str, str]  # endpoint -> value or "not configured"
    families: list[Family] = field(default_factory=list)

    def mark_unreachable(self, down: dict[str, str]) -> None:
        for family in self.families:
            if family.name in down:
                family.ready, family.detail = False, down[family.name]

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target,
                "families": [{"name": f.name, "items": f.items, "ready": f.ready, "detail": f.detail}
                             for f in self.families]}


def _users(how: str | None) -> str:
    return how if how else "none: " + _FIX["users"]


def _in_git(path: Path) -> bool:
    return any((folder / ".git").exists() for folder in (path.resolve(), *path.resolve().parents))


def _load_detail(target: Target, items: Sequence[Item]) -> tuple[bool, str]:
    """Whether the load results the run's thresholds name are there (`msgops load` writes them)."""
    latest = Path(target.load_results) if target.load_results else Path.cwd() / "msgops-out" / "load.json"
    profiles = sorted({str(i.check.params.get("profile")) for i in items
                       if i.check and i.check.kind == "load.threshold" and i.check.params.get("profile")})
    missing = [p for p in profiles if not latest.with_name(f"load-{p}.json").exists()]
    if missing:
        runs = "; ".join(f"msgops load --profile {p}" for p in missing)
        return False, f"not run for lack of load results ({latest.parent}): {runs}"
    return True, f"thresholds read from {latest} (and load-<profile>.json beside it)"


def describe(target: Target, items: Sequence[Item]) -> Preflight:
    """The preflight of a run: the target's endpoints and, per probe family, whether it can run.

    Raises UserError (exit 3) when nothing is configured at all for checks that need a target."""
    counts = Counter(i.check.family for i in items if i.check)
    if not target.api_url and not target.database_url and (counts["db"] or counts["http"] or counts["realtime"]):
        raise UserError("nothing to check: no API URL and no database are configured. Set MSGOPS_API_URL and/or "
                        "DATABASE_URL, write a target file with `msgops init`, or start `msgops serve`")
    realtime = realtimemap.parse(target.realtime)  # a wrong section: exit 3 before any check
    ws_url = target.ws_url
    if realtime.protocol == "socketio" and target.api_url:
        ws_url = (f"{(realtime.url or target.api_url).rstrip('/')} (Socket.IO, path {realtime.path}, namespace "
                  f"{realtime.namespace})")
    users_how = personas.describe(target) if counts["http"] or counts["realtime"] else None
    if counts["http"] or counts["realtime"]:
        apimap.parse(target.api)
    has_users = users_how is not None
    load_path = target.load_results or "msgops-out/load.json"
    endpoints = {
        "API": target.api_url or "not configured",
        "database": mask_url(target.database_url) if target.database_url else "not configured",
        "realtime": ws_url or "not configured",
        "test users": _users(users_how),
        "repository": str(target.repo),
        "load results": str(load_path),
    }
    api_ok = bool(target.api_url)
    no_api = f"not run: no API URL ({_FIX['api']})"
    no_users = f"not run: no test users ({_FIX['users']})"
    detail = {
        "db": (bool(target.database_url), f"SQL in rolled-back transactions on {endpoints['database']}"
               if target.database_url else f"not run: no database ({_FIX['database']})"),
        "http": (api_ok, (f"requests to {target.api_url}" + ("" if has_users else
                 f"; checks acting as users are not run: no test users ({_FIX['users']})"))
                 if api_ok else no_api),
        "realtime": (api_ok and has_users,
                     f"WebSockets to {ws_url} as test users" if api_ok and has_users else
                     no_users if api_ok else no_api),
        "env": (True, f"variables of this environment and the git repository at {target.repo}"
                if _in_git(Path(target.repo)) else "variables of this environment; the git checks are not run: "
                f"{target.repo} is not in a git repository (set repo: in msgops.yaml)"),
        "load": _load_detail(target, items),
    }
    families = [Family(name, counts[name], *detail.get(name, (True, "")))
                for name in ("db", "http", "realtime", "env", "load") if counts[name]]
    return Preflight(endpoints, families)
