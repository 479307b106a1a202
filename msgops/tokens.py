"""Development and probe tokens: HS256 JWTs in the Supabase shape.

The one place msgops signs tokens: `msgops token`, the probes' test users and the load generator's
users all mint here, and the reference service (`service.auth`) uses the same function. Signing needs
only PyJWT, so a checker installed without the service extra can still mint probe users.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

API_ROLES = ("authenticated", "service_role")  # roles the API accepts in a token's `role` claim
DEFAULT_AUDIENCE = "authenticated"


def mint_token(secret: str, sub: uuid.UUID | str, role: str = "authenticated", ttl: int = 3600,
               audience: str = DEFAULT_AUDIENCE, extra: dict[str, Any] | None = None) -> str:
    """An HS256 token: sub, role, aud, iat, exp (= iat + ttl), plus `extra` claims."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": str(sub), "role": role, "aud": audience, "iat": now, "exp": now + ttl}
    claims.update(extra or {})
    return jwt.encode(claims, secret, algorithm="HS256")
