"""Database access. Every request runs in one transaction that takes the caller's role and JWT
claims with set_config(..., true): transaction-local, so a pooled connection never keeps them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from service.auth import Claims

_SET_CLAIMS = "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)"

Conn = AsyncConnection[DictRow]


class Database:
    def __init__(self, url: str, min_size: int = 2, max_size: int = 20, timeout_s: float = 5.0) -> None:
        # A request waits at most timeout_s for a connection (then 503 with Retry-After); while the
        # database is away the pool keeps trying to reconnect, and recovers by itself when it returns.
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False, timeout=timeout_s,
            reconnect_timeout=24 * 3600, kwargs={"row_factory": dict_row, "autocommit": False,
                                                 "connect_timeout": max(2, int(timeout_s))},
            connection_class=AsyncConnection[DictRow],
        )
        self._checking: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self, claims: Claims | None, pipeline: bool = False) -> AsyncIterator[Conn]:
        """A transaction as `claims` (None: as anon). Rolled back on any exception.

        `pipeline=True` sends BEGIN, the claims and the first query in one round trip and COMMIT in
        another, instead of one round trip each. Errors then surface when a result is fetched, not
        at `execute()`: use it only where every statement is fetched at once (the send path)."""
        async with self.pool.connection() as conn, contextlib.AsyncExitStack() as stack:
            if pipeline:
                await stack.enter_async_context(conn.pipeline())
            await stack.enter_async_context(conn.transaction())
            role, payload = ("anon", {"role": "anon"}) if claims is None else (claims.db_role, claims.raw)
            await conn.execute(_SET_CLAIMS, (role, orjson.dumps(payload).decode()))
            yield conn

    @asynccontextmanager
    async def privileged(self, timeout_s: float | None = None) -> AsyncIterator[Conn]:
        """A transaction as the connecting (owner) role: jobs, migrations checks, health."""
        async with self.pool.connection(timeout=timeout_s) as conn, conn.transaction():
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
