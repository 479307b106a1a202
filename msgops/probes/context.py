"""What a probe gets: the target, shared HTTP and database clients, probe users, and cleanup.

Database probes read inside a transaction that is always rolled back (`ctx.db()`); HTTP and
WebSocket probes act as test users (`ctx.users()`, from msgops.personas), whose data is erased when
the run ends where the target offers a way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from msgops.config import Target

if TYPE_CHECKING:
    from msgops.personas import Personas

log = logging.getLogger("msgops")


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
    id: str  # opaque: a UUID, a Clerk `user_2N...`, an Auth0 `auth0|...`, whatever the identity provider issues
    token: str
    role: str
    name: str = ""
    email: str = ""  # the address the identity provider knows the user by (the privacy checks look for it)

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
    _personas: Personas | None = None
    leftovers: list[str] = field(default_factory=list)  # what clean-up could not erase, one line each
    cache: dict[str, Any] = field(default_factory=dict)  # shared observations (e.g. the OpenAPI document)

    # --- requirements ------------------------------------------------------------------------

    def require_api(self) -> str:
        if not self.target.api_url:
            raise NotRun("no API URL configured: set MSGOPS_API_URL, api_url in msgops.yaml, or run `msgops serve`")
        return self.target.api_url

    @property
    def personas(self) -> Personas:
        """How this run gets test users (msgops.yaml `personas:`); NotRun when it has no way."""
        if self._personas is None:
            from msgops.personas import NO_PERSONAS, Personas

            self._personas = Personas.of(self.target)
            if self._personas is None:
                raise NotRun(NO_PERSONAS)
        return self._personas

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

    def mint(self, sub: str | None = None, role: str = "authenticated", ttl: int = 900,
             **claims: Any) -> str:
        """A token signed like the personas' (to forge expired or wrong-audience ones); NotRun without a key."""
        return self.personas.sign(sub or str(uuid.uuid4()), role=role, ttl=ttl, **claims)

    async def users(self, *roles: str) -> list[ProbeUser]:
        """Distinct test users with these app roles (fresh ones are erased after the run)."""
        self.require_api()
        return await self.personas.users(self, *roles)

    async def api_user(self, app_role: str = "attendee") -> ProbeUser:
        """A test user known to the service, with `app_role`."""
        return (await self.users(app_role))[0]

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
        if self._personas is not None and self.target.api_url:
            try:
                self.leftovers += await self._personas.close(self)
            except Exception as exc:  # the run's results stand; say what was left
                self.leftovers.append(f"test users could not be erased: {type(exc).__name__}: {exc}")
            for line in self.leftovers:
                log.warning("%s", line)
        if self._http is not None:
            await self._http.aclose()
        if self._pool is not None:
            await self._pool.close()
