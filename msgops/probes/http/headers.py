"""Response headers a browser acts on: CORS (who may call the API from a page) and security headers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from msgops import apimap
from msgops.probes import Name, Names, probe
from msgops.probes.context import Context, Skip
from msgops.probes.http.common import exchange, is_loopback, optional, shared
from msgops.results import Outcome, failed, passed

_CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-credentials",
                 "access-control-allow-methods", "access-control-allow-headers", "vary")
_DEV_ORIGINS = ("http://localhost:3000", "http://127.0.0.1:3000", "http://localhost:5173",
                "http://127.0.0.1:5173", "http://localhost:8080", "http://localhost:4200",
                "http://localhost:19006", "http://localhost:8081")


def _candidate_origins(api_url: str) -> list[str]:
    """Where a frontend usually lives relative to the API: its parent domain's app/www hosts, or the
    common development servers when the API is local."""
    host = urlsplit(api_url).hostname or ""
    if is_loopback(host):
        return list(_DEV_ORIGINS)
    labels = host.split(".")
    parent = ".".join(labels[1:]) if len(labels) > 2 else host
    return [f"https://{parent}", f"https://app.{parent}", f"https://www.{parent}", f"https://web.{parent}"]


async def _preflight(ctx: Context, route: str, origin: str) -> httpx.Response:
    return await ctx.http.options(route, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})


def _allows(r: httpx.Response, origin: str) -> bool:
    return r.headers.get("access-control-allow-origin") in (origin, "*")


def _preflight_complete(r: httpx.Response) -> list[str]:
    """What an allowed origin's preflight lacks for an authenticated JSON POST."""
    gaps = []
    if r.status_code >= 300:
        gaps.append(f"status {r.status_code}")
    methods = r.headers.get("access-control-allow-methods", "").upper()
    if "POST" not in methods and "*" not in methods:
        gaps.append("POST not in Access-Control-Allow-Methods")
    allowed_headers = r.headers.get("access-control-allow-headers", "").lower()
    if "authorization" not in allowed_headers and "*" not in allowed_headers:
        gaps.append("Authorization not in Access-Control-Allow-Headers")
    return gaps


async def _infer_allowed(ctx: Context, route: str) -> str | None:
    candidates = _candidate_origins(ctx.require_api())
    answers = await asyncio.gather(*(_preflight(ctx, route, o) for o in candidates))
    for origin, r in zip(candidates, answers, strict=True):
        if r.headers.get("access-control-allow-origin") == origin:
            return origin
    return None


@probe("http.cors",
       what="A preflight and a simple request from the allowed origin (cors.allowed_origin, else the first "
            "one inferred) are allowed; from the disallowed origin (default https://attacker.example) they "
            "get no Access-Control-Allow-Origin. `*` together with credentials always fails.",
       why="CORS is what stops a page on another site from calling the API with a signed-in user's "
           "browser; an allow-all policy turns every site into a client.",
       example="Access-Control-Allow-Origin: * (or the attacker's origin reflected) on a preflight from "
               "https://attacker.example.",
       fix="Configure an explicit allow-list of frontend origins (MSGOPS_CORS_ORIGINS); never `*` with "
           "credentials, never reflect the Origin header unchecked.")
async def cors(ctx: Context, allowed_origin: Name | None = None, disallowed_origin: Name | None = None) -> Outcome:
    allowed = allowed_origin or ctx.target.cors_allowed_origin
    disallowed = disallowed_origin or ctx.target.cors_disallowed_origin
    return await _cors(ctx, allowed, disallowed)


async def _route(ctx: Context) -> str:
    """The route a browser POSTs to: the API map's create_group (or list_conversations), else /health."""
    for name in ("create_group", "list_conversations"):
        op = await apimap.lookup(ctx, name)
        if op is not None and "{" not in (path := op.path.partition("?")[0]):
            return path
    return "/health"


async def _cors(ctx: Context, allowed: str | None, disallowed: str) -> Outcome:
    route = await _route(ctx)
    inferred = False
    if allowed is None:
        allowed, inferred = await _infer_allowed(ctx, route), True
    bad_pre, bad_simple = await asyncio.gather(_preflight(ctx, route, disallowed),
                                               ctx.http.get("/health", headers={"Origin": disallowed}))
    evidence: dict[str, Any] = {
        "disallowed_origin": disallowed,
        "disallowed_preflight": exchange(bad_pre, headers=_CORS_HEADERS, body=0),
        "disallowed_simple": exchange(bad_simple, headers=_CORS_HEADERS, body=0),
    }
    problems = [f"{what} from {disallowed} got Access-Control-Allow-Origin: "
                f"{r.headers['access-control-allow-origin']}"
                for what, r in (("preflight", bad_pre), ("GET /health", bad_simple)) if _allows(r, disallowed)]
    if allowed is not None:
        good_pre, good_simple = await asyncio.gather(_preflight(ctx, route, allowed),
                                                     ctx.http.get("/health", headers={"Origin": allowed}))
        evidence.update(allowed_origin=allowed, allowed_origin_inferred=inferred,
                        allowed_preflight=exchange(good_pre, headers=_CORS_HEADERS, body=0),
                        allowed_simple=exchange(good_simple, headers=_CORS_HEADERS, body=0))
        if not _allows(good_pre, allowed):
            problems.append(f"preflight from the allowed origin {allowed} was not allowed")
        else:
            problems += [f"preflight from {allowed}: {gap}" for gap in _preflight_complete(good_pre)]
        if not _allows(good_simple, allowed):
            problems.append(f"GET /health from the allowed origin {allowed} got no Access-Control-Allow-Origin")
        answers = [bad_pre, bad_simple, good_pre, good_simple]
    else:
        answers = [bad_pre, bad_simple]
    if any(r.headers.get("access-control-allow-origin") == "*"
           and r.headers.get("access-control-allow-credentials", "").lower() == "true" for r in answers):
        problems.append("Access-Control-Allow-Origin: * together with Access-Control-Allow-Credentials: true")
    if problems:
        return failed("; ".join(problems), **evidence)
    if allowed is None:
        raise Skip(f"{disallowed} is refused, but no allowed frontend origin is configured or could be "
                   "inferred; set cors.allowed_origin in msgops.yaml to check that it is allowed")
    return passed(f"{allowed} allowed (preflight and simple request), {disallowed} refused", **evidence)


# --- security headers ----------------------------------------------------------------------------

def _csp(value: str) -> str | None:
    directives = {d.strip().split(" ", 1)[0].lower(): d.strip() for d in value.split(";") if d.strip()}
    if "default-src" not in directives and "script-src" not in directives:
        return "has neither default-src nor script-src"
    for name in ("default-src", "script-src"):
        sources = directives.get(name, "").split()[1:]
        if "*" in sources:
            return f"{name} allows any source (*)"
        if "'unsafe-eval'" in sources:
            return f"{name} allows 'unsafe-eval'"
    return None


def _hsts(value: str) -> str | None:
    match = re.search(r"max-age\s*=\s*\"?(\d+)", value, re.I)
    if not match:
        return "has no max-age"
    if int(match.group(1)) < 15_552_000:
        return f"max-age {match.group(1)} is under 180 days"
    return None


def _one_of(*allowed: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value.strip().lower() in allowed else f"is {value!r} (expected {' or '.join(allowed)})"
    return check


def _referrer(value: str) -> str | None:
    policies = [p.strip().lower() for p in value.split(",") if p.strip()]
    return "is unsafe-url (full URLs leak to every site)" if policies and policies[-1] == "unsafe-url" else None


def _permissions(value: str) -> str | None:
    return None if re.search(r"[a-z-]+=\(", value) else "declares no feature (expected e.g. camera=())"


def _cache_control(value: str) -> str | None:
    directives = value.lower()
    if any(d in directives for d in ("no-store", "private", "no-cache")):
        return None
    return f"is {value!r}: authenticated responses must not be stored by shared caches (no-store or private)"


_RULES: dict[str, Callable[[str], str | None]] = {
    "content-security-policy": _csp,
    "x-frame-options": _one_of("deny", "sameorigin"),
    "x-content-type-options": _one_of("nosniff"),
    "referrer-policy": _referrer,
    "permissions-policy": _permissions,
    "strict-transport-security": _hsts,
    "cache-control": _cache_control,
}


async def _samples(ctx: Context) -> list[httpx.Response]:
    """The responses headers are read from: public (/health), authenticated JSON (list_conversations), and
    an error (an unknown conversation), as far as the API map has these operations."""

    async def fetch() -> list[httpx.Response]:
        user = await ctx.api_user()
        nobody = "00000000-0000-0000-0000-000000000000"
        public, data, error, other_error = await asyncio.gather(
            ctx.http.get("/health"), optional(ctx, user, "list_conversations"),
            optional(ctx, user, "get_conversation", conversation_id=nobody),
            optional(ctx, user, "list_messages", conversation_id=nobody))
        return [public, *(a.response for a in (data, error or other_error) if a is not None)]

    return await shared(ctx, "header_samples", fetch)


def _hsts_required(ctx: Context) -> bool:
    return urlsplit(ctx.require_api()).scheme == "https" or ctx.target.environment == "production"


@probe("http.security_headers",
       what="Each named header is on the API's responses (public, authenticated and error) with a sane "
            "value: CSP without * or 'unsafe-eval', X-Frame-Options DENY/SAMEORIGIN, nosniff, a "
            "Referrer-Policy other than unsafe-url, a Permissions-Policy, Cache-Control no-store/private on "
            "authenticated data, HSTS ≥ 180 days (required only over https or in production).",
       why="These headers are the browser's half of XSS, clickjacking, MIME-sniffing and data-leak "
           "defences; one missing header re-opens the attack it closes.",
       example="X-Frame-Options missing on GET /conversations: the app can be framed for clickjacking.",
       fix="Add the headers in one middleware for every response (see service/middleware.py).")
async def security_headers(ctx: Context, headers: Names) -> Outcome:
    ctx.require_api()
    samples = await _samples(ctx)
    hsts_required = _hsts_required(ctx)
    problems: list[str] = []
    observed: dict[str, dict[str, str | None]] = {}
    for name in headers:
        key = name.lower()
        observed[name] = {}
        for r in samples:
            where = f"{r.request.method} {r.request.url.path}"
            value = r.headers.get(key)
            observed[name][where] = value
            if key == "cache-control" and where.startswith("GET /health"):
                continue  # public and cacheable by design; only user data must not be stored
            if value is None:
                if key == "strict-transport-security" and not hsts_required:
                    continue
                problems.append(f"{name} missing on {where}")
                continue
            rule = _RULES.get(key)
            verdict = rule(value) if rule else (None if value.strip() else "is empty")
            if verdict:
                problems.append(f"{name} on {where} {verdict}")
    evidence: dict[str, Any] = {"headers": observed, "hsts_required": hsts_required,
                                "responses": [exchange(r, body=0) for r in samples]}
    if problems:
        return failed("; ".join(dict.fromkeys(problems)), problems=problems, **evidence)
    note = "" if hsts_required or "strict-transport-security" not in {h.lower() for h in headers} else \
        " (HSTS not required over plain HTTP outside production)"
    return passed(f"{', '.join(headers)} present with sane values on {len(samples)} kinds of response{note}",
                  **evidence)
