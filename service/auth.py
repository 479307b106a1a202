"""JWT verification for tokens issued by an external identity provider (Supabase Auth, Clerk, ...).

HS256 with a shared secret by default; RS256/ES256 through a JWKS URL as an option. `exp`, `aud`
and the algorithm allow-list are enforced; `alg: none` never verifies.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

from msgops.tokens import API_ROLES, mint_token

__all__ = ["API_ROLES", "AuthError", "Claims", "TokenVerifier", "mint_token"]

MAX_TOKEN_BYTES = 8192  # identity providers' tokens are well under this; larger ones are refused unread
CACHE_BYTES = 8 * 1024 * 1024  # verified tokens kept (each until its own exp), by the memory they hold
_ENTRY_OVERHEAD = 400  # dict slot, tuple, Claims, UUID: roughly, per cached token


class AuthError(Exception):
    """The token is missing or not acceptable; the message says which and why (never the token)."""


@dataclass(frozen=True)
class Claims:
    sub: uuid.UUID | None
    role: str
    raw: dict[str, Any]

    @functools.cached_property
    def raw_json(self) -> str:
        """The claims as JSON for PostgreSQL's request.jwt.claims: encoded once per verified token
        (the verifier keeps its Claims), not once per statement."""
        return orjson.dumps(self.raw).decode()

    @property
    def db_role(self) -> str:
        return self.role if self.role in API_ROLES else "anon"

    @property
    def is_service(self) -> bool:
        return self.role == "service_role"

    @property
    def user_id(self) -> uuid.UUID:
        if self.sub is None:
            raise AuthError("token has no subject")
        return self.sub

    @property
    def email(self) -> str | None:
        value = self.raw.get("email")
        return value if isinstance(value, str) else None

    @property
    def name(self) -> object:
        """The name the identity provider gives (`name`, or Supabase's `user_metadata.full_name`), unclean."""
        metadata = self.raw.get("user_metadata")
        return self.raw.get("name") or (metadata.get("full_name") if isinstance(metadata, dict) else None)


# Time claims beyond this (the end of year 9999) are not times; a claim set must also fit in JSON that
# PostgreSQL stores (request.jwt.claims): no NUL characters, integers within 64 bits.
_MAX_TIME = 253_402_300_799
_OBJECT_CLAIMS = ("user_metadata", "app_metadata")


def check_claims_shape(raw: dict[str, Any]) -> None:
    """Raise AuthError for signed claims this service cannot use, instead of failing later."""
    for name in ("exp", "iat", "nbf"):
        value = raw.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not 0 <= value <= _MAX_TIME):
            raise AuthError(f"token claim {name!r} is not a time")
    for name in _OBJECT_CLAIMS:
        if raw.get(name) is not None and not isinstance(raw[name], dict):
            raise AuthError(f"token claim {name!r} must be an object")
    try:
        encoded = orjson.dumps(raw)
    except TypeError:
        raise AuthError("token claims cannot be stored (an integer beyond 64 bits?)") from None
    if b"\\u0000" in encoded:
        raise AuthError("token claims must not contain NUL characters")


class TokenVerifier:
    def __init__(self, secret: str | None, audience: str, algorithms: tuple[str, ...],
                 jwks_url: str | None = None, cache_bytes: int = CACHE_BYTES) -> None:
        if not secret and not jwks_url:
            raise ValueError("set MSGOPS_JWT_SECRET (HS256) or MSGOPS_JWKS_URL (RS256/ES256) to verify tokens")
        self.secret = secret
        self.audience = audience
        self.algorithms = [a for a in algorithms if a.lower() != "none"]
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=600) if jwks_url else None
        self._verified: dict[str, tuple[float, Claims, int]] = {}  # token -> (exp, claims, bytes held)
        self.cache_limit = cache_bytes
        self.cached_bytes = 0

    def verify(self, token: str) -> Claims:
        cached = self._verified.get(token)
        if cached is not None and cached[0] > time.time():
            return cached[1]
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthError(f"token is over {MAX_TOKEN_BYTES} bytes")
        claims = self._verify(token)
        self._remember(token, claims)
        return claims

    def _remember(self, token: str, claims: Claims) -> None:
        size = 2 * len(token) + len(orjson.dumps(claims.raw)) * 4 + _ENTRY_OVERHEAD  # token + parsed claims
        previous = self._verified.pop(token, None)
        if previous is not None:
            self.cached_bytes -= previous[2]
        while self._verified and self.cached_bytes + size > self.cache_limit:
            _, (_, _, freed) = self._pop_oldest()
            self.cached_bytes -= freed
        self._verified[token] = (float(claims.raw["exp"]), claims, size)
        self.cached_bytes += size

    def _pop_oldest(self) -> tuple[str, tuple[float, Claims, int]]:
        oldest = next(iter(self._verified))
        return oldest, self._verified.pop(oldest)

    def _verify(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed token") from None
        alg = str(header.get("alg", ""))
        if alg not in self.algorithms:
            raise AuthError(f"token algorithm {alg or 'none'!r} is not accepted")
        try:
            key: Any = self.secret
            if alg.startswith(("RS", "ES", "PS")) and self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
            raw = jwt.decode(token, key, algorithms=self.algorithms, audience=self.audience,
                             options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("token audience is not accepted") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature is invalid") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        try:
            sub = uuid.UUID(str(raw["sub"]))
        except ValueError:
            raise AuthError("token subject is not a UUID") from None
        check_claims_shape(raw)
        role = str(raw.get("role", "authenticated"))
        if role not in API_ROLES:
            raise AuthError(f"token role {role!r} is not accepted")
        return Claims(sub=sub, role=role, raw=raw)
