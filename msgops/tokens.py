"""Minting JWTs: development and probe tokens (HS256, in the Supabase shape) and the two signing
personas sources (hs256, private_key).

The one place msgops signs tokens: `msgops token`, the personas that sign, the probes' test users and
the load generator's users all mint here, and the reference service (`service.auth`) uses the same
function. Signing needs only PyJWT (no pydantic, no other token source), so a checker installed
without the service extra can still mint probe users, and a Locust process mints its share of the
load users' tokens without the configuration models (about 0.14 s of CPU saved at each start).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

API_ROLES = ("authenticated", "service_role")  # roles the API accepts in a token's `role` claim
DEFAULT_AUDIENCE = "authenticated"


@dataclass(frozen=True)
class Minting:
    """How tokens are signed, everything but the key: a signing personas source as configured."""

    algorithm: str = "HS256"
    audience: str | None = DEFAULT_AUDIENCE
    claims: dict[str, Any] = field(default_factory=dict)  # the source's extra claims, e.g. iss
    kid: str | None = None

    def prepare(self, key: Any) -> Any:
        """A key as configured (the HS256 secret, or a PEM private key's text) parsed once, as jwt.encode
        takes it: parsing a PEM for every token would cost more than signing it."""
        if isinstance(key, str) and self.algorithm != "HS256":
            from jwt.algorithms import get_default_algorithms

            return get_default_algorithms()[self.algorithm].prepare_key(key.replace("\\n", "\n"))
        return key

    def mint(self, key: Any, sub: uuid.UUID | str, role: str = "authenticated", ttl: int = 3600,
             claims: Mapping[str, Any] | None = None) -> str:
        """A token for `sub`: sub, role, aud, iat, exp (= iat + ttl), the source's claims, then `claims`
        (any of which may replace the ones before)."""
        import jwt  # here: a process that never signs (msgops load provisioning in the database) goes without

        now = int(time.time())
        body: dict[str, Any] = {"sub": str(sub), "role": role}
        if self.audience:
            body["aud"] = self.audience
        body.update(iat=now, exp=now + ttl)
        body.update(self.claims)
        body.update(claims or {})
        return jwt.encode(body, key, algorithm=self.algorithm, headers={"kid": self.kid} if self.kid else None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Minting:
        return cls(str(data["algorithm"]), data.get("audience"), dict(data.get("claims") or {}), data.get("kid"))


def mint_token(secret: str, sub: uuid.UUID | str, role: str = "authenticated", ttl: int = 3600,
               audience: str = DEFAULT_AUDIENCE, extra: dict[str, Any] | None = None) -> str:
    """An HS256 token: sub, role, aud, iat, exp (= iat + ttl), plus `extra` claims."""
    return Minting(audience=audience).mint(secret, sub, role, ttl, extra)
