"""JWT verification for tokens issued by an external identity provider (Supabase Auth, Clerk, ...).

HS256 with a shared secret by default; RS256/ES256 through a JWKS URL as an option. `exp`, `aud`
and the algorithm allow-list are enforced; `alg: none` never verifies.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from msgops.tokens import API_ROLES, mint_token

__all__ = ["API_ROLES", "AuthError", "Claims", "TokenVerifier", "mint_token"]

_CACHE_SIZE = 10_000  # verified tokens kept (each until its own exp)


class AuthError(Exception):
    """The token is missing or not acceptable; the message says which and why (never the token)."""


@dataclass(frozen=True)
class Claims:
    sub: uuid.UUID | None
    role: str
    raw: dict[str, Any]

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


class TokenVerifier:
    def __init__(self, secret: str | None, audience: str, algorithms: tuple[str, ...],
                 jwks_url: str | None = None) -> None:
        if not secret and not jwks_url:
            raise ValueError("set MSGOPS_JWT_SECRET (HS256) or MSGOPS_JWKS_URL (RS256/ES256) to verify tokens")
        self.secret = secret
        self.audience = audience
        self.algorithms = [a for a in algorithms if a.lower() != "none"]
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=600) if jwks_url else None
        self._verified: dict[str, tuple[float, Claims]] = {}

    def verify(self, token: str) -> Claims:
        cached = self._verified.get(token)
        if cached is not None and cached[0] > time.time():
            return cached[1]
        claims = self._verify(token)
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # the oldest entry
        self._verified[token] = (float(claims.raw["exp"]), claims)
        return claims

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
        role = str(raw.get("role", "authenticated"))
        if role not in API_ROLES:
            raise AuthError(f"token role {role!r} is not accepted")
        return Claims(sub=sub, role=role, raw=raw)
