"""http.endpoints: the named endpoints are in the OpenAPI document and answer a real request.

Each endpoint is exercised once per run (several checklist items name the same ones) against a
small world of probe users: a direct conversation with a message and a public community. Checklists
name the reference's paths: where the reference serves an operation of the API map there, the
target's own request for that operation is looked up instead.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from msgops import apimap
from msgops.probes import Names, probe
from msgops.probes.context import Context, ProbeUser, Skip
from msgops.probes.http.common import (
    Operation,
    call,
    community,
    direct,
    exchange,
    fill_path,
    openapi,
    operations,
    send,
    shared,
    users,
)
from msgops.results import Outcome, failed, passed

_SEED_PARAM = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
_ANY_PARAM = re.compile(r"\{[^}/]+\}")


def shape(path: str) -> str:
    """`/messages/:id/read` and `/messages/{message_id}/read` have the same shape: `/messages/{}/read`."""
    return _ANY_PARAM.sub("{}", _SEED_PARAM.sub("{}", path.rstrip("/") or "/"))


@dataclass
class World:
    owner: ProbeUser  # owns the community; member of the conversation
    other: ProbeUser  # the other member of the conversation; not in the community
    values: dict[str, str]  # path parameter name -> an id the owner can see


async def _world(ctx: Context) -> World:
    async def build() -> World:
        a, b = await users(ctx, "attendee", "attendee")
        conv = await direct(ctx, a, b)
        message = await send(ctx, b, conv, "hello from msgops endpoint check")
        values = {"conversation_id": conv, "message_id": str(message["id"]), "user_id": str(b.id), "id": conv}
        if await apimap.lookup(ctx, "create_community") is not None:
            values["community_id"] = str((await community(ctx, a))["id"])
        return World(a, b, values)

    return await shared(ctx, "endpoints.world", build)


def _request(op: Operation, world: World) -> tuple[ProbeUser, dict[str, Any]]:
    """Who calls `op` and with what: a purposeful request where the endpoint is known, else `{}`."""
    s = shape(op.path)
    bodies: dict[str, Any] = {
        "POST /conversations": {"kind": "group", "title": "msgops endpoint check", "member_ids": []},
        "PATCH /conversations/{}/archive": {"archived": False},
        "POST /conversations/{}/messages": {"content": "msgops endpoint check"},
        "PATCH /messages/{}": {"content": "msgops endpoint check"},
        "POST /communities": {"name": f"msgops endpoint {uuid.uuid4().hex[:8]}", "description": "",
                              "is_private": False},
        "POST /communities/{}/messages": {"content": "msgops endpoint check"},
        "POST /messages/{}/reactions": {"emoji": "👍"},
        "POST /broadcasts": {"audience": "attendees", "phase": "pre_show", "content": "msgops endpoint check"},
    }
    kwargs: dict[str, Any] = {}
    key = f"{op.method} {s}"
    if key in bodies:
        kwargs["json"] = bodies[key]
    elif op.has_body:
        kwargs["json"] = {}
    params = {p["name"]: "hello" for p in op.query_params()}
    if params:
        kwargs["params"] = params
    # Joining and leaving are what a non-member does; the owner cannot leave.
    user = world.other if key in ("POST /communities/{}/join", "POST /communities/{}/leave") else world.owner
    if key.startswith("PATCH /messages/{}") and not key.endswith("/read"):
        user = world.other  # the message is theirs
    return user, kwargs


async def _exercise(ctx: Context, op: Operation) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        world = await _world(ctx)
        user, kwargs = _request(op, world)
        r = await call(ctx, user, op.method, fill_path(op.path, world.values), **kwargs)
        return exchange(r, body=200)

    return await shared(ctx, f"endpoint.{op.label}", run)


async def _on_target(ctx: Context, method: str, path: str) -> tuple[str, str] | str:
    """The target's `(method, path)` for an endpoint a checklist names: the API map's request for the
    operation the reference serves there, or the endpoint itself when it is no operation's; the
    operation's name when the map lacks it."""
    names = [name for name, ref in apimap.REFERENCE.items()
             if ref.method == method and shape(ref.path.partition("?")[0]) == shape(path)]
    for name in names:
        op = await apimap.lookup(ctx, name)
        if op is not None:
            return op.method, op.path.partition("?")[0]
    return names[0] if names else (method, path)


def _unrouted(seen: dict[str, Any]) -> bool:
    """The framework's own answer for a path or method it does not route (documented but not served)."""
    return seen["status"] == 405 or (seen["status"] == 404 and seen.get("body") == '{"detail":"Not Found"}')


@probe("http.endpoints", waits_long=True,
       what="Each named endpoint (\"METHOD /path\", `:id` or `{id}` for parameters) is in /openapi.json "
            "and answers an authenticated request with a non-5xx status.",
       why="The checklist's API surface is what clients are built against; a missing or crashing route "
           "is a broken feature, found here instead of by users.",
       example="GET /conversations/{conversation_id}/messages/search is not in the document, or answers 500.",
       fix="Implement the route (with a response model and docstring) or correct the checklist's path.")
async def endpoints(ctx: Context, endpoints: Names) -> Outcome:
    doc = await openapi(ctx)
    by_shape = {(op.method, shape(op.path)): op for op in operations(doc)}
    results: list[dict[str, Any]] = []
    missing: list[str] = []
    broken: list[str] = []
    unmapped: list[str] = []
    for wanted in endpoints:
        method, _sep, path = wanted.strip().partition(" ")
        on_target = await _on_target(ctx, method.upper(), path.strip())
        if isinstance(on_target, str):
            unmapped.append(f"{wanted} (operation {on_target})")
            results.append({"endpoint": wanted, "operation": on_target, "in_api_map": False})
            continue
        op = by_shape.get((on_target[0], shape(on_target[1])))
        if op is None:
            missing.append(wanted)
            results.append({"endpoint": wanted, "in_openapi": False})
            continue
        seen = await _exercise(ctx, op)
        results.append({"endpoint": wanted, "in_openapi": True, "as": op.label, **seen})
        if seen["status"] >= 500 or _unrouted(seen):
            broken.append(f"{wanted} ({seen['status']})")
    evidence: dict[str, Any] = {"endpoints": results}
    if missing or broken:
        parts = ([f"not in /openapi.json: {', '.join(missing)}"] if missing else []) + \
                ([f"failing: {', '.join(broken)}"] if broken else [])
        return failed("; ".join(parts), missing=missing, broken=broken, **evidence)
    if unmapped:
        raise Skip(f"not part of this API: {', '.join(unmapped)} not in msgops.yaml api.operations")
    return passed(f"{len(endpoints)} endpoint(s) documented and answering: "
                  + ", ".join(f"{r['endpoint']} {r['status']}" for r in results), **evidence)
