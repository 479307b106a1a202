"""Spread independent rolled-back work over a few of the probes' pooled connections.

An RLS matrix is hundreds of attempts, each in its own rolled-back savepoint, on rows arranged inside one
rolled-back transaction. Uncommitted rows are visible to their own connection only, so each connection
arranges its own copy and attempts every n-th cell: the same cells, judged in their own order afterwards,
in a fraction of the wall time, and still nothing is ever committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from psycopg import AsyncConnection
from psycopg.rows import tuple_row

from msgops.probes.context import Context

T = TypeVar("T")
WAYS = 4  # connections one matrix may hold at once (the pool serves the other checks too)

Work = Callable[[AsyncConnection[Any], int, int], Awaitable[T]]


async def across(ctx: Context, part: Work[T], ways: int | None = None) -> list[T]:
    """`part(conn, k, n)` on n pooled connections at once (k = 0..n-1, n = `ways`, WAYS unless given), its
    results in order of k. The first error raised by a part is raised once every part has finished."""
    n = max(1, min(ways or WAYS, ctx.target.checks.concurrency))

    async def one(k: int) -> T:
        async with ctx.db() as conn:
            factory = conn.row_factory
            conn.row_factory = tuple_row  # type: ignore[assignment]  # msgops.impersonation reads rows by position
            try:
                return await part(conn, k, n)
            finally:
                conn.row_factory = factory

    done = await asyncio.gather(*(one(k) for k in range(n)), return_exceptions=True)
    for result in done:
        if isinstance(result, BaseException):
            raise result
    return list(done)  # type: ignore[arg-type]  # no exception is left in it


def mine(index: int, k: int, n: int) -> bool:
    """Is cell `index` part k's of n?"""
    return index % n == k


__all__ = ["WAYS", "across", "mine"]
