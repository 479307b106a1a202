"""URLs a user gives msgops (flags, environment, msgops.yaml), checked before anything connects.

A bad URL is a UserError that names where it came from (`--api-url`, `MSGOPS_API_URL`, `api_url` in
msgops.yaml) and what a good one looks like. Database URLs may hold a password: they are never echoed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from msgops.errors import UserError

API_URL_EXAMPLE = "https://api.example.com"
DATABASE_URL_EXAMPLE = "postgresql://user:password@host:5432/db"


def http_url_problem(value: Any) -> str | None:
    """None when `value` is an http(s) URL with a host; else what is wrong with it."""
    if not isinstance(value, str):
        return f"must be an http(s) URL like {API_URL_EXAMPLE}"
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"must be an http(s) URL like {API_URL_EXAMPLE} (its port is not a number)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http(s) URL like {API_URL_EXAMPLE}"
    if parts.query or parts.fragment:
        return "must be a base URL without ?query or #fragment"
    return None


def origin_problem(value: Any) -> str | None:
    """None when `value` is a web origin (scheme://host[:port], no path)."""
    problem = http_url_problem(value)
    if problem:
        return problem.replace("an http(s) URL like " + API_URL_EXAMPLE, "an origin like https://app.example.com")
    if urlsplit(str(value).strip()).path not in ("", "/"):
        return "must be an origin like https://app.example.com (scheme, host and port only; no path)"
    return None


def database_url_problem(value: Any) -> str | None:
    """None when libpq would accept `value` as a connection string (URL or key=value)."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    if not isinstance(value, str) or not value.strip():
        return f"must be a PostgreSQL URL like {DATABASE_URL_EXAMPLE}"
    if "://" in value and urlsplit(value).scheme not in ("postgresql", "postgres"):
        return f"must be a PostgreSQL URL (postgresql://…) like {DATABASE_URL_EXAMPLE}"
    try:
        conninfo_to_dict(value)
    except (ProgrammingError, ValueError):
        return f"must be a PostgreSQL URL like {DATABASE_URL_EXAMPLE} (or libpq key=value settings)"
    return None


def check_api_url(value: str, where: str) -> str:
    problem = http_url_problem(value)
    if problem:
        shown = value if len(value) <= 80 else value[:79] + "…"
        raise UserError(f"{where}: {problem} (got {shown!r})")
    return value


def check_database_url(value: str, where: str) -> str:
    problem = database_url_problem(value)
    if problem:
        raise UserError(f"{where}: {problem}")
    return value
