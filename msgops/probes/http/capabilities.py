"""What a target says it offers beyond the core messaging API: `/health`'s `capabilities`.

A capability lists its routes as `"METHOD /path/{param}"` and its limits. A probe of a feature asks
for its capability first and skips, with the reason, on a target that does not offer it.
"""

from __future__ import annotations

from typing import Any

from msgops.probes.context import Context, Skip
from msgops.probes.http.common import fill_path, json_of, shared


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


def route(cap: dict[str, Any], key: str, **values: str) -> tuple[str, str]:
    """(method, path) of the capability's route `key`, with its `{params}` filled from `values`."""
    spec = cap.get(key)
    if not isinstance(spec, str) or " " not in spec:
        raise Skip(f"the target's capability lists no `{key}` route")
    method, path = spec.split(" ", 1)
    return method.upper(), fill_path(path, values)
