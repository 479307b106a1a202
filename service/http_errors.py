"""Database errors as HTTP answers. A user's bad input is never a 500."""

from __future__ import annotations

import logging

import psycopg
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service import request_id

log = logging.getLogger("service.errors")

UNAVAILABLE_RETRY_AFTER_S = 1

# SQLSTATE -> (HTTP status, message shown to the client)
_STATUS: dict[str, tuple[int, str]] = {
    "42501": (403, "not allowed"),
    "P0429": (429, "quota exhausted"),
    "23505": (409, "conflict with an existing resource"),
    "23514": (422, "a value is outside its allowed range"),
    "22001": (422, "a value is too long"),
    "23503": (422, "a referenced resource does not exist"),
    "22P02": (400, "malformed value"),
    "22P05": (400, "text cannot hold this character"),
    "22021": (400, "text cannot hold this character"),
    "22023": (400, "invalid parameter"),
    "P0002": (404, "not found"),
    "57014": (503, "the database took too long; retry"),
}


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 with field errors. The offending input is not echoed back: it may not even be encodable."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in e.items() if k not in ("input", "ctx", "url")} for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def _raised_by_our_function(exc: psycopg.Error) -> bool:
    """True when a RAISE in one of the service's own functions wrote the message (meant for the client).

    PostgreSQL's own errors (a policy violation, a constraint, a syntax error) name tables, columns and
    policies: those never reach the client, whatever their SQLSTATE."""
    context = (exc.diag.context or "") if exc.diag else ""
    first = context.strip().splitlines()[0] if context.strip() else ""
    return first.startswith("PL/pgSQL function ") and first.endswith(" at RAISE")


def _unavailable(exc: psycopg.Error) -> bool:
    """The database could not be reached or went away: the client should retry later."""
    sqlstate = exc.sqlstate or ""
    if isinstance(exc, psycopg.OperationalError) and not sqlstate:
        return True  # connection refused or lost, pool timeout
    return sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03")


def answer(exc: psycopg.Error) -> tuple[int, str, dict[str, str]]:
    """(status, message for the client, headers) for a database error, logged with its detail."""
    sqlstate = exc.sqlstate or ""
    headers: dict[str, str] = {}
    if _unavailable(exc):
        status, message = 503, "the database is unavailable; retry shortly"
        headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
    elif isinstance(exc, psycopg.DataError) and not sqlstate:
        # refused by the driver before it reached the server: NUL in text, a number out of range
        status, message = 400, "a value cannot be stored (text must not contain NUL characters)"
    else:
        status, message = _STATUS.get(sqlstate, (500, "internal error"))
        if status != 500 and _raised_by_our_function(exc) and exc.diag.message_primary:
            message = exc.diag.message_primary
    if status == 429:
        headers["Retry-After"] = "3600"
    log.log(logging.ERROR if status >= 500 else logging.INFO, "database error",
            extra={"request_id": request_id.current(), "sqlstate": sqlstate, "status": status,
                   "error_type": type(exc).__name__, "error": str(exc)})
    return status, message, headers


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A generic answer for the client; the database's own words go to the log under the request id."""
    assert isinstance(exc, psycopg.Error)
    status, message, headers = answer(exc)
    if status == 503:
        request.app.state.msgops.db.connection_lost()
    return JSONResponse({"detail": message, "request_id": request_id.current()}, status_code=status,
                        headers=headers or None)
