"""Database access. Every request runs in one transaction that takes the caller's role and JWT
claims with set_config(..., true): transaction-local, so a pooled connection never keeps them."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from service.auth import Claims

_SET_CLAIMS = "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)"

Conn = AsyncConnection[DictRow]


def _role_and_claims(claims: Claims | None) -> tuple[str, str]:
    if claims is None:
        return "anon", '{"role":"anon"}'
    return claims.db_role, claims.raw_json


class LifoPool(AsyncConnectionPool[Conn]):
    """A pool that hands out the connection returned last (psycopg_pool's own order is first in,
    first out), as PgBouncer does by default: the few connections a load needs stay busy and the
    rest stay idle. Spread round-robin over every pooled connection, the same 800 sends/s cost
    PostgreSQL 0.70 ms of CPU each on 1 backend, 0.96 on 4 and 1.15 on 40: a backend woken for
    one transaction now and then runs it on cold caches. It hooks psycopg_pool's private
    _get_ready_connection (the same in 3.2 and 3.3); test_api_messages fails if an upgrade bypasses it.
    A connection the server dropped while it idled at the bottom is found when it is next taken: that
    request fails and connection_lost() checks the idle rest, as before."""

    async def _get_ready_connection(self, timeout: float | None) -> Conn | None:
        if len(self._pool) > 1:
            self._pool.rotate(1)  # the newest, appended on the right, to the left end the pool takes from
        return await super()._get_ready_connection(timeout)


class Database:
    def __init__(self, url: str, min_size: int = 2, max_size: int = 20, timeout_s: float = 5.0) -> None:
        # A request waits at most timeout_s for a connection (then 503 with Retry-After); while the
        # database is away the pool keeps trying to reconnect, and recovers by itself when it returns.
        self.pool: AsyncConnectionPool[Conn] = LifoPool(
            url, min_size=min_size, max_size=max_size, open=False, timeout=timeout_s,
            reconnect_timeout=24 * 3600,
            # Autocommit: transaction() opens its own; a single statement (fetch_one_as) is one round trip.
            kwargs={"row_factory": dict_row, "autocommit": True, "connect_timeout": max(2, int(timeout_s))},
            connection_class=AsyncConnection[DictRow],
        )
        self.timeout_s = timeout_s
        # Requests queue here, not in the pool: waiting on a semaphore costs a future, the pool's own
        # wait a task and a wait_for per waiter (a send under load spent ~4 % of its CPU there).
        self._slots = asyncio.Semaphore(max_size)
        # One cursor per pooled connection for single statements: it keeps its adapters' lookups.
        self._cursors: weakref.WeakKeyDictionary[Conn, AsyncCursor[DictRow]] = weakref.WeakKeyDictionary()
        self._checking: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self, timeout_s: float | None = None) -> AsyncIterator[Conn]:
        """A pooled connection within timeout_s in all, the turn in the queue included (PoolTimeout then)."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        started = time.monotonic()
        if self._slots.locked():
            try:
                async with asyncio.timeout(timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise PoolTimeout("no database connection became free in time") from None
        else:
            await self._slots.acquire()  # free: returns at once
        try:
            # What is left of the same timeout (the pool still waits while it reconnects a connection).
            left = max(0.001, timeout - (time.monotonic() - started))
            async with self.pool.connection(timeout=left) as conn:
                yield conn
        finally:
            self._slots.release()

    @asynccontextmanager
    async def transaction(self, claims: Claims | None) -> AsyncIterator[Conn]:
        """A transaction as `claims` (None: as anon). Rolled back on any exception."""
        async with self.connection() as conn, conn.transaction():
            await conn.execute(_SET_CLAIMS, _role_and_claims(claims))
            yield conn

    async def fetch_one_as(self, claims: Claims, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        """One statement, its own transaction, in one round trip. Its first two parameters are filled in
        with the caller's role and JWT claims: the statement must call a function that takes them for
        its transaction before anything else, such as public.send_room_message_as()."""
        async with self.connection() as conn:
            cur = self._cursors.get(conn)
            if cur is None or cur.closed:
                cur = self._cursors[conn] = conn.cursor()
            await cur.execute(sql, (*_role_and_claims(claims), *params))
            return await cur.fetchone()

    @asynccontextmanager
    async def privileged(self, timeout_s: float | None = None) -> AsyncIterator[Conn]:
        """A transaction as the connecting (owner) role: jobs, migrations checks, health."""
        async with self.connection(timeout_s) as conn, conn.transaction():
            yield conn

    def connection_lost(self) -> None:
        """A request found the database gone: drop every broken idle connection now (one check, not
        one failed request per pooled connection)."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.get_running_loop().create_task(self.pool.check())


async def fetch_one(conn: Conn, sql: str, params: Any = None) -> dict[str, Any] | None:
    cur = await conn.execute(sql, params)
    return await cur.fetchone()


async def fetch_all(conn: Conn, sql: str, params: Any = None) -> list[dict[str, Any]]:
    cur = await conn.execute(sql, params)
    return await cur.fetchall()
