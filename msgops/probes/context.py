"""What a probe gets: the target, shared HTTP and database clients, probe users, and cleanup.

Database probes read inside a transaction that is always rolled back (`ctx.db()`); HTTP and
WebSocket probes act as users created for the run (`ctx.api_user()`), whose data is erased when
the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from msgops.config import Target


class Skip(Exception):
    """The check does not apply to this target (it uses no Supabase, has no communities); the message
    says why. Reported as `skip`."""


class NotRun(Exception):
    """msgops was not given what the check needs (no API URL, no database, no way to get test users,
    no load results); the message names the setting that fixes it. Reported as `not_run`, which a
    gate never counts as checked."""


class CannotEvaluate(Exception):
    """The probe could not evaluate, for a reason its message explains to the user (reported as
    `error` with the message as it is; other exceptions are reported with their type)."""


@dataclass
class ProbeUser:
    id: uuid.UUID
    token: str
    role: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Context:
    target: Target
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _http: httpx.AsyncClient | None = None
    _pool: AsyncConnectionPool[AsyncConnection[DictRow]] | None = None
    _pool_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _users: list[uuid.UUID] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)  # shared observations (e.g. the OpenAPI document)

    # --- requirements ------------------------------------------------------------------------

    def require_api(self) -> str:
        if not self.target.api_url:
            raise NotRun("no API URL configured: set MSGOPS_API_URL, api_url in msgops.yaml, or run `msgops serve`")
        return self.target.api_url

    def require_secret(self) -> str:
        if not self.target.jwt_secret:
            raise NotRun("no JWT secret to mint probe users: set MSGOPS_JWT_SECRET (or jwt_secret_env in msgops.yaml)")
        return self.target.jwt_secret

    def require_db(self) -> str:
        if not self.target.database_url:
            raise NotRun("no database configured: set DATABASE_URL (or database_url_env in msgops.yaml)")
        return self.target.database_url

    # --- HTTP --------------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            from msgops.probes.http.transport import AiohttpTransport

            self._http = httpx.AsyncClient(base_url=self.require_api(), timeout=15,
                                           transport=AiohttpTransport(max_connections=64))
        return self._http

    def mint(self, sub: uuid.UUID | str | None = None, role: str = "authenticated", ttl: int = 900,
             **claims: Any) -> str:
        from msgops.tokens import mint_token

        return mint_token(self.require_secret(), sub or uuid.uuid4(), role=role, ttl=ttl, extra=claims or None)

    async def api_user(self, app_role: str = "attendee") -> ProbeUser:
        """A fresh user known to the service (profile created), with `app_role`; erased after the run."""
        uid = uuid.uuid4()
        token = self.mint(uid, email=f"msgops-probe-{uid.hex[:12]}@probe.invalid", name=f"msgops probe {self.run_id}")
        r = await self.http.get("/conversations", headers={"Authorization": f"Bearer {token}"})
        if r.status_code in (401, 403):
            raise CannotEvaluate(
                f"the API refused a token signed with the configured JWT secret (GET /conversations answered "
                f"{r.status_code} {r.text[:120]}): set MSGOPS_JWT_SECRET to the secret the service verifies with")
        if r.status_code != 200:
            raise CannotEvaluate(f"could not create a probe user: GET /conversations answered {r.status_code} "
                                 f"{r.text[:200]}")
        self._users.append(uid)
        if app_role != "attendee":
            r = await self.http.put(f"/admin/users/{uid}/role", json={"role": app_role},
                                    headers={"Authorization": f"Bearer {self.mint(role='service_role')}"})
            if r.status_code != 200:
                raise CannotEvaluate(f"could not give a probe user the role {app_role}: PUT /admin/users/{{id}}/role "
                                     f"answered {r.status_code} {r.text[:200]}")
        return ProbeUser(uid, token, app_role)

    # --- database ----------------------------------------------------------------------------

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncConnection[DictRow]]:
        """A connection inside a transaction that is always rolled back: probes leave nothing behind."""
        url = self.require_db()
        async with self._pool_lock:
            if self._pool is None:
                self._pool = AsyncConnectionPool(url, min_size=1, max_size=max(2, self.target.checks.concurrency),
                                                 kwargs={"row_factory": dict_row}, open=False,
                                                 connection_class=AsyncConnection[DictRow])
                await self._pool.open(wait=True, timeout=15)
        async with self._pool.connection() as conn:
            try:  # psycopg opens the transaction with the first statement
                yield conn
            finally:
                await conn.rollback()

    # --- cleanup -----------------------------------------------------------------------------

    def on_cleanup(self, fn: Callable[[], Awaitable[None]]) -> None:
        self._cleanups.append(fn)

    async def close(self) -> None:
        for fn in reversed(self._cleanups):
            with contextlib.suppress(Exception):  # cleanup is best effort; the run's results stand
                await fn()
        if self._users and self.target.api_url and self.target.jwt_secret:
            headers = {"Authorization": f"Bearer {self.mint(role='service_role')}"}
            await asyncio.gather(*(self.http.delete(f"/admin/users/{uid}", headers=headers) for uid in self._users),
                                 return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
        if self._pool is not None:
            await self._pool.close()
