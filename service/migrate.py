"""Apply the SQL migrations in service/migrations, in order, once each.

Applied migrations are recorded in msgops_meta.schema_migrations (outside `public`, so the API
roles never see it). An advisory lock keeps several starting workers from racing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 0x6D73676F7073  # "msgops"


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class MigrationStatus:
    name: str
    applied_at: datetime | None
    checksum_matches: bool


def available() -> list[Migration]:
    return [Migration(p.name, p.read_text()) for p in sorted(MIGRATIONS_DIR.glob("*.sql"))]


def _ensure_table(conn: psycopg.Connection) -> None:
    conn.execute("create schema if not exists msgops_meta")
    conn.execute("""create table if not exists msgops_meta.schema_migrations (
                      name text primary key, checksum text not null, applied_at timestamptz not null default now())""")


def migrate(url: str) -> list[str]:
    """Apply what is not applied yet; return the names applied now."""
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", [_LOCK_KEY])
        try:
            _ensure_table(conn)
            done = {r[0] for r in conn.execute("select name from msgops_meta.schema_migrations")}
            for m in available():
                if m.name in done:
                    continue
                with conn.transaction():
                    conn.execute(m.sql.encode())
                    conn.execute("insert into msgops_meta.schema_migrations (name, checksum) values (%s, %s)",
                                 [m.name, m.checksum])
                applied_now.append(m.name)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", [_LOCK_KEY])
    return applied_now


def status(url: str) -> list[MigrationStatus]:
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("select to_regclass('msgops_meta.schema_migrations')").fetchone()
        rows: dict[str, tuple[datetime, str]] = {}
        if exists and exists[0]:
            rows = {r[0]: (r[1], r[2]) for r in
                    conn.execute("select name, applied_at, checksum from msgops_meta.schema_migrations")}
    result = []
    for m in available():
        applied = rows.get(m.name)
        result.append(MigrationStatus(m.name, applied[0] if applied else None,
                                      applied is None or applied[1] == m.checksum))
    return result
