"""Concurrent erasure: deadlocks and wall time of public.erase_user, migration 015 beside 009's version.

    python bench/erase_concurrency.py [--rounds 10]

On an embedded PostgreSQL (or DATABASE_URL's server): each round arranges ten users who share a
community and four conversations (tests/test_erase_concurrent.py's scene: messages, mentions,
reactions, a moderator's deletion, creators who left, members removed) and erases all ten at once,
each on its own connection. Printed per version: rounds with a deadlock (SQLSTATE 40P01), failed
erasures, and the median wall time of a round. The baseline is erase_user as migration 009 defined it,
put back in the same database after the 015 rounds.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msgops.embedded import EmbeddedPostgres  # noqa: E402
from service.migrate import migrate  # noqa: E402
from tests.test_erase_concurrent import _arrange, _erase_all  # noqa: E402

MIGRATIONS = ROOT / "service" / "migrations"


def function_of(migration: str) -> str:
    text = (MIGRATIONS / migration).read_text()
    found = re.search(r"create or replace function public\.erase_user.*?\n\$\$;\n", text, re.S)
    assert found, migration
    return found.group(0)


def rounds(url: str, n: int) -> tuple[int, int, list[float]]:
    deadlocked, failed, walls = 0, 0, []
    for _ in range(n):
        users, _, _ = _arrange(url)
        started = time.perf_counter()
        errors = _erase_all(url, users)
        walls.append((time.perf_counter() - started) * 1000)
        failed += len(errors)
        deadlocked += any(e.startswith("40P01") for e in errors)
    return deadlocked, failed, walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        admin = os.environ.get("DATABASE_URL")
        if not admin:
            server = EmbeddedPostgres(Path(tmp), settings={"fsync": "off", "synchronous_commit": "off"})
            server.start()
            admin = server.admin_url("postgres")
        name = f"erase_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        url = psycopg.conninfo.make_conninfo(admin, dbname=name)
        try:
            migrate(url)
            print(f"{args.rounds} rounds, 10 users erased at once per round")
            for label, migration in (("015 (lock order)", "015_erase_user_lock_order.sql"),
                                     ("009 (baseline)", "009_user_erasure.sql")):
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(function_of(migration).encode())
                deadlocked, failed, walls = rounds(url, args.rounds)
                print(f"  {label:18} rounds with a deadlock {deadlocked:3}/{args.rounds}   failed erasures "
                      f"{failed:4}   median round {statistics.median(walls):7.1f} ms")
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
