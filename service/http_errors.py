"""Database errors as HTTP answers. A user's bad input is never a 500."""

from __future__ import annotations

import logging

import psycopg
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger("service.errors")

# SQLSTATE -> (HTTP status, message shown to the client)
_STATUS: dict[str, tuple[int, str]] = {
    "42501": (403, "not allowed"),
    "P0429": (429, "quota exhausted"),
    "23505": (409, "conflict with an existing resource"),
    "23514": (422, "a value is outside its allowed range"),
    "22001": (422, "a value is too long"),
    "23503": (422, "a referenced resource does not exist"),
    "22P02": (400, "malformed value"),
    "22023": (400, "invalid parameter"),
    "P0002": (404, "not found"),
    "57014": (503, "the database took too long; retry"),
}


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 with field errors. The offending input is not echoed back: it may not even be encodable."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in e.items() if k not in ("input", "ctx", "url")} for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, psycopg.Error)
    sqlstate = exc.sqlstate or ""
    status, message = _STATUS.get(sqlstate, (500, "internal error"))
    if status == 500:
        log.error("database error", extra={"sqlstate": sqlstate, "path": request.url.path, "error": str(exc)})
    elif sqlstate in ("42501", "P0429", "22023", "P0002"):
        # Our own functions raise these with a message meant for the client.
        message = (exc.diag.message_primary or message) if exc.diag else message
    headers = {"Retry-After": "3600"} if status == 429 else None
    return JSONResponse({"detail": message}, status_code=status, headers=headers)
