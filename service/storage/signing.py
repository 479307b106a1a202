"""Short-lived signed tokens for the local backend's URLs: what, which operation, until when."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from dataclasses import dataclass
from typing import Literal

import orjson

Op = Literal["get", "put"]


class BadToken(Exception):
    """The token is forged, malformed or expired (the message says which)."""


@dataclass(frozen=True)
class Grant:
    key: str
    op: Op
    expires: int
    filename: str = ""
    content_type: str = "application/octet-stream"


def expires_in(ttl_s: int) -> int:
    """The expiry (epoch seconds) of a URL made now: whole seconds, rounded up, so it lives at least `ttl_s`."""
    return math.ceil(time.time()) + ttl_s


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, grant: Grant) -> str:
    body = _b64(orjson.dumps({"k": grant.key, "o": grant.op, "e": grant.expires, "n": grant.filename,
                              "t": grant.content_type}))
    mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify(secret: str, token: str, op: Op, now: float | None = None) -> Grant:
    try:
        body, mac = token.split(".")
        good = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(good, _unb64(mac)):
            raise BadToken("bad signature")
        data = orjson.loads(_unb64(body))
        grant = Grant(str(data["k"]), data["o"], int(data["e"]), str(data.get("n", "")),
                      str(data.get("t", "application/octet-stream")))
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise BadToken("malformed link") from None
    if grant.op != op:
        raise BadToken("link not valid for this operation")
    if grant.expires < (time.time() if now is None else now):
        raise BadToken("link expired")
    return grant
