"""Authentication at the edge: bad tokens get 401, and no documented route answers without a token."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Annotated, Any, Literal, get_args

import httpx
import jwt
from pydantic import Field

from msgops import apimap
from msgops.probes import probe
from msgops.probes.context import CannotEvaluate, Context, NotRun, ProbeUser, Skip
from msgops.probes.http.common import (
    PUBLIC_PATHS,
    exchange,
    fill_path,
    mask,
    openapi,
    operations,
    shared,
)
from msgops.results import Outcome, failed, passed

Case = Literal["missing", "expired", "invalid_signature", "alg_none", "wrong_audience", "malformed"]
CASES: tuple[Case, ...] = get_args(Case)
_NEEDS_USER = {"expired", "wrong_audience", "alg_none"}  # valid in every other respect: for a known user
_NEEDS_KEY = {"expired", "wrong_audience"}  # signed like the personas' tokens
_WRONG_SECRET = "msgops-probe-not-the-secret-" + "0" * 16


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def _claims(sub: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "role": "authenticated", "aud": "authenticated",
                              "iat": now, "exp": now + 900}
    claims.update(changes)
    return claims


def _tokens(ctx: Context, sub: str, case: str) -> list[str | None]:
    """The Authorization header values to try for `case` (None: no header). Each token is valid in
    every respect but the one the case is about, for a user the service knows."""
    forged = jwt.encode(_claims(sub), _WRONG_SECRET, algorithm="HS256")
    unsigned = f"{_b64(_claims(sub))}."
    match case:
        case "missing":
            return [None]
        case "expired":
            return [f"Bearer {ctx.mint(sub, ttl=-120)}"]
        case "invalid_signature":
            return [f"Bearer {forged}"]
        case "alg_none":
            return [f"Bearer {_b64({'alg': 'none', 'typ': 'JWT'})}.{unsigned}",
                    f"Bearer {_b64({'alg': 'None', 'typ': 'JWT'})}.{unsigned}"]
        case "wrong_audience":
            return [f"Bearer {ctx.mint(sub, aud='msgops-wrong-audience')}"]
        case "malformed":
            return ["Bearer not-a-jwt", "Bearer a.b.c", "Bearer", f"Token {forged}"]
    raise ValueError(f"unknown case {case!r} (expected one of {', '.join(CASES)})")


async def _protected_route(ctx: Context) -> str:
    """A GET route that needs a token: the API map's list_conversations (or list of communities), else the
    first documented GET route without parameters."""
    for name in ("list_conversations", "list_communities"):
        mapped = await apimap.lookup(ctx, name)
        if mapped is not None and mapped.method == "GET" and "{" not in mapped.path.partition("?")[0]:
            return mapped.path.partition("?")[0]
    doc = await openapi(ctx)
    for op in operations(doc):
        if op.method == "GET" and "{" not in op.path and op.path not in PUBLIC_PATHS:
            return op.path
    raise Skip("neither the API map (list_conversations) nor the OpenAPI document names a GET route that needs "
               "a token; add list_conversations to msgops.yaml api.operations")


async def _case(ctx: Context, case: str) -> list[dict[str, Any]]:
    """The answers to one case's tokens, observed once per run."""

    async def observe() -> list[dict[str, Any]]:
        # missing/malformed/invalid_signature need no known user: any subject will do.
        sub = (await _user(ctx)).id if case in _NEEDS_USER else str(uuid.uuid4())
        route = await _protected_route(ctx)
        seen = []
        for value in _tokens(ctx, sub, case):
            headers = {"Authorization": value} if value is not None else {}
            r = await ctx.http.get(route, headers=headers)
            seen.append({"token": "(none)" if value is None else mask(value.split(" ", 1)[-1]),
                         **exchange(r, headers=("www-authenticate",), body=160)})
        return seen

    return await shared(ctx, f"auth.case.{case}", observe)


async def _user(ctx: Context) -> ProbeUser:
    """A probe user whose valid token is accepted: without that control every 401 would prove nothing."""

    async def make() -> ProbeUser:
        user = await ctx.api_user()
        route = await _protected_route(ctx)
        r = await ctx.http.get(route, headers=user.headers)
        if r.status_code >= 300:
            raise CannotEvaluate(f"a valid probe token was refused (GET {route} answered {r.status_code}); "
                                 f"{ctx.personas.source.refused_fix()}")
        return user

    return await shared(ctx, "auth.user", make)


@probe("http.auth_required",
       what="A protected route answers 401 to each bad token case: missing, expired, invalid_signature, "
            "alg_none, wrong_audience, malformed (each token is valid in every other respect).",
       why="A verifier that skips one rule (exp, aud, the signature, the algorithm allow-list) lets anyone "
           "act as any user; the database then trusts the forged identity.",
       example="An expired token, or one signed with `alg: none`, gets 200 on GET /conversations.",
       fix="Verify with an explicit algorithm allow-list, the expected audience, and required exp/sub "
           "(PyJWT: jwt.decode(token, key, algorithms=[\"HS256\"], audience=..., options={\"require\": "
           "[\"exp\", \"sub\"]})); answer 401 with WWW-Authenticate.")
async def auth_required(ctx: Context, cases: Annotated[list[Case], Field(min_length=1)]) -> Outcome:
    ctx.require_api()
    if _NEEDS_USER & set(cases):
        ctx.personas  # noqa: B018 - NotRun when there is no way to get test users
    if _NEEDS_KEY & set(cases) and not ctx.personas.can_sign:
        raise NotRun(f"the cases {', '.join(sorted(_NEEDS_KEY & set(cases)))} forge tokens signed like the "
                     "personas' and need a signing key: configure personas.source hs256 or private_key (the "
                     "staging identity provider's key), or list only the other cases")
    observed = await asyncio.gather(*(_case(ctx, case) for case in cases))
    evidence: dict[str, Any] = {"route": await _protected_route(ctx),
                                "cases": {case: seen for case, seen in zip(cases, observed, strict=True)}}
    accepted = [f"{case} ({s['status']})" for case, seen in zip(cases, observed, strict=True)
                for s in seen if s["status"] != 401]
    if accepted:
        return failed(f"not refused with 401: {', '.join(accepted)}", accepted=accepted, **evidence)
    return passed(f"401 for every case: {', '.join(cases)}", **evidence)


# --- every documented route needs a token --------------------------------------------------------

@probe("http.protected_routes",
       what="Every operation in /openapi.json except health, metrics and the docs answers 401 without a "
            "token (path parameters filled with random UUIDs, `{}` bodies).",
       why="One route that forgot the auth dependency is a door around every policy: it runs without an "
           "identity and often with the service's own privileges.",
       example="GET /communities/{community_id}/export answers 200 to a request without Authorization.",
       fix="Depend on get_current_user on every router (APIRouter(dependencies=[...]) or per route) and "
           "list deliberate public routes explicitly.")
async def protected_routes(ctx: Context) -> Outcome:
    return await _protected_routes(ctx)


async def _protected_routes(ctx: Context) -> Outcome:
    doc = await openapi(ctx)
    ops = [op for op in operations(doc) if op.path not in PUBLIC_PATHS]
    gate = asyncio.Semaphore(16)

    async def probe_one(method: str, path: str) -> httpx.Response:
        body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
        async with gate:
            return await ctx.http.request(method, fill_path(path, {"user_id": str(uuid.uuid4())}), json=body)

    answers = await asyncio.gather(*(probe_one(op.method, op.path) for op in ops))
    open_ops = [{"operation": op.label, **exchange(r, body=160)} for op, r in zip(ops, answers, strict=True)
                if r.status_code != 401]
    evidence: dict[str, Any] = {"checked": len(ops), "skipped_public": sorted(PUBLIC_PATHS & set(doc["paths"]))}
    if open_ops:
        names = ", ".join(f"{o['operation']} ({o['status']})" for o in open_ops)
        return failed(f"{len(open_ops)} of {len(ops)} operations answer without a token with something other "
                      f"than 401: {names}", not_401=open_ops, **evidence)
    return passed(f"all {len(ops)} documented operations answer 401 without a token", **evidence)
