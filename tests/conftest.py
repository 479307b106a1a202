"""Fixtures: a real PostgreSQL (embedded by default, DATABASE_URL when set) and a real service."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from msgops.embedded import EmbeddedPostgres
from service.migrate import migrate
from tests.support import RunningService, start_service


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database: DATABASE_URL's server, or an embedded one."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("pg")),
                              settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
    server.start()
    try:
        yield server.admin_url("postgres")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def new_database(pg_server: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh, migrated databases on the test server; all are dropped at the end."""
    created: list[str] = []

    def make(migrated: bool = True) -> str:
        name = f"msgops_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        created.append(name)
        url = psycopg.conninfo.make_conninfo(pg_server, dbname=name)
        if migrated:
            migrate(url)
        return url

    yield make
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def database_url(new_database: Callable[..., str]) -> str:
    """The session's migrated database, shared by the session's service."""
    return new_database()


@pytest.fixture(scope="session")
def service(database_url: str) -> Iterator[RunningService]:
    """The reference service with default settings (seed rate limits on), on a loopback port."""
    running = start_service(database_url)
    yield running
    running.stop()


@pytest.fixture
def make_service(new_database: Callable[..., str]) -> Iterator[Callable[..., RunningService]]:
    """Start extra services with their own settings (e.g. rate limits off) on fresh databases."""
    started: list[RunningService] = []

    def make(database_url: str | None = None, **overrides: Any) -> RunningService:
        running = start_service(database_url or new_database(), **overrides)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()
