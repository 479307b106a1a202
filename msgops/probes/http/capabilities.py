"""What a target says it offers beyond the core messaging API: `/health`'s `capabilities`.

A capability lists its routes as `"METHOD /path/{param}"` and its limits. A probe of a feature asks
for its capability first and skips, with the reason, on a target that does not offer it; a target whose
API map (msgops.yaml `api.operations`) names the feature's operation offers it whatever /health says.
"""

from __future__ import annotations

from typing import Any

from msgops import apimap
from msgops.probes.context import Context, Skip
from msgops.probes.http.common import json_of, shared


async def capabilities(ctx: Context) -> dict[str, Any]:
    """The target's advertised capabilities, fetched once per run ({} when it advertises none)."""

    async def fetch() -> dict[str, Any]:
        r = await ctx.http.get("/health")
        body = json_of(r)
        caps = body.get("capabilities") if isinstance(body, dict) else None
        return caps if isinstance(caps, dict) else {}

    return await shared(ctx, "capabilities", fetch)


async def capability(ctx: Context, name: str, what: str) -> dict[str, Any]:
    """The capability `name`, or Skip naming `what` the target does not offer."""
    ctx.require_api()
    cap = (await capabilities(ctx)).get(name)
    if not isinstance(cap, dict):
        raise Skip(f"the target offers no {what}: GET /health lists no `capabilities.{name}`")
    return cap


async def feature(ctx: Context, name: str, what: str, operation: str) -> dict[str, Any]:
    """The capability `name` of a feature whose main operation is `operation`: Skip "not part of this
    API" when the target's API map lacks it; {} when the map names it but /health lists nothing."""
    ctx.require_api()
    if await apimap.lookup(ctx, operation) is None:
        raise Skip(f"not part of this API: operation {operation} is not in msgops.yaml api.operations")
    if operation in apimap.of(ctx).operations:
        cap = (await capabilities(ctx)).get(name)
        return cap if isinstance(cap, dict) else {}
    return await capability(ctx, name, what)
