"""Database access. Every request runs in one transaction that takes the caller's role and JWT
claims with set_config(..., true): transaction-local, so a pooled connection never keeps them."""

from __future__ import annotations

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
    def __init__(self, url: str, min_size: int = 2, max_size: int = 20) -> None:
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False,
            kwargs={"row_factory": dict_row, "autocommit": False},
            connection_class=AsyncConnection[DictRow],
        )

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self, claims: Claims | None) -> AsyncIterator[Conn]:
        """A transaction as `claims` (None: as anon). Rolled back on any exception."""
        async with self.pool.connection() as conn, conn.transaction():
            role, payload = ("anon", {"role": "anon"}) if claims is None else (claims.db_role, claims.raw)
            await conn.execute(_SET_CLAIMS, (role, orjson.dumps(payload).decode()))
            yield conn

    @asynccontextmanager
    async def privileged(self) -> AsyncIterator[Conn]:
        """A transaction as the connecting (owner) role: jobs, migrations checks, health."""
        async with self.pool.connection() as conn, conn.transaction():
            yield conn


async def fetch_one(conn: Conn, sql: str, params: Any = None) -> dict[str, Any] | None:
    cur = await conn.execute(sql, params)
    return await cur.fetchone()


async def fetch_all(conn: Conn, sql: str, params: Any = None) -> list[dict[str, Any]]:
    cur = await conn.execute(sql, params)
    return await cur.fetchall()
