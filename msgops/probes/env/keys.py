"""env.service_key: the backend's Supabase-style key is the service role key, not the anon key.

The key is decoded, not verified: its role claim says which key it is. Supabase's newer opaque keys
are recognised by prefix (`sb_secret_` = server key, `sb_publishable_` = the public one).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from msgops.probes import Name, probe
from msgops.probes.context import Context, Skip
from msgops.probes.env.values import lookup
from msgops.results import Outcome, failed, passed


def mask(secret: str) -> str:
    return secret[:8] + "…"


def jwt_part(segment: str) -> dict[str, Any]:
    """One base64url JSON segment of a JWT; ValueError when it is not one."""
    try:
        data = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not base64url JSON") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def jwt_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) of a JWT without verifying it; ValueError when it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT (expected three dot-separated parts)")
    return jwt_part(parts[0]), jwt_part(parts[1])


@probe(
    "env.service_key",
    what="The variable holds the service role key: a JWT whose role claim is service_role (or an sb_secret_ key).",
    why="A backend configured with the anon key either fails every privileged write or, worse, someone "
        "loosened RLS until it worked.",
    example="SUPABASE_KEY holding the anon key (role: anon) fails.",
    fix="Copy the service_role key from the project's API settings into the variable; keep it server-side only.",
)
async def env_service_key(ctx: Context, var: Name) -> Outcome:
    found = lookup(ctx, var)
    if found is None:
        raise Skip(f"{var} is not set: no service key configured for this target")
    key = found.value
    if key.startswith("sb_secret_"):
        return passed(f"{var} is a Supabase secret key", var=var, role="service_role", kind="sb_secret",
                      key=mask(key))
    if key.startswith("sb_publishable_"):
        return failed(f"{var} is the publishable (anon) key, not the secret key", var=var, role="anon",
                      kind="sb_publishable", key=mask(key))
    try:
        header, claims = jwt_claims(key)
    except ValueError as exc:
        return failed(f"{var} cannot be read as a key: {exc}", var=var, key=mask(key))
    role = claims.get("role")
    evidence: dict[str, Any] = {"var": var, "role": role, "alg": header.get("alg"), "iss": claims.get("iss"),
                                "key": mask(key)}
    if role != "service_role":
        return failed(f"{var} has role {role!r}, not service_role", **evidence)
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp < time.time():
        evidence["exp"] = exp
        return failed(f"{var} is a service_role key that expired at {int(exp)} (unix time)", **evidence)
    return passed(f"{var} is a service_role key", **evidence)
