"""What every HTTP probe shares: requests as probe users, evidence of an exchange, run-wide caches.

Evidence shows what a reviewer needs to judge a result (method, path, status, selected headers, a
trimmed body, latency) and never a secret: request headers are not recorded and tokens are masked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from msgops import apimap
from msgops.probes.context import CannotEvaluate, Context, ProbeUser, Skip

T = TypeVar("T")

BODY_CHARS = 300
# Paths that are public by design: liveness, metrics and the API's own documentation.
PUBLIC_PATHS = frozenset({"/health", "/healthz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc",
                          "/openapi.json"})
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


class SetupFailed(CannotEvaluate):
    """A request that arranges a probe's situation was refused: the probe cannot evaluate."""


def mask(token: str) -> str:
    return token[:8] + "…"


def trim(text: str, limit: int = BODY_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


def target_of(r: httpx.Response) -> str:
    """`METHOD /path?query` of the request that produced `r`."""
    return f"{r.request.method} {r.request.url.raw_path.decode(errors='replace')}"


def exchange(r: httpx.Response, *, headers: tuple[str, ...] = (), body: int = BODY_CHARS) -> dict[str, Any]:
    """Evidence of one request/response; request headers (the token) are never included."""
    out: dict[str, Any] = {"request": trim(target_of(r), 200), "status": r.status_code,
                           "ms": round(r.elapsed.total_seconds() * 1000, 1)}
    shown = {h: r.headers[h] for h in headers if h in r.headers}
    if shown:
        out["headers"] = shown
    if body and r.content:
        out["body"] = trim(r.text, body)
    return out


def json_of(r: httpx.Response) -> Any:
    try:
        return r.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_host(ctx: Context) -> str:
    return urlsplit(ctx.require_api()).hostname or ""


# --- run-wide caches ---------------------------------------------------------------------------

async def shared(ctx: Context, key: str, factory: Callable[[], Awaitable[T]]) -> T:
    """`factory()` once per run under `key` (an asyncio.Lock per key); its exception is re-raised to
    every caller, so a broken observation errors every check that needs it instead of passing one."""
    key = "http." + key
    locks: dict[str, asyncio.Lock] = ctx.cache.setdefault("http.locks", {})
    lock = locks.setdefault(key, asyncio.Lock())
    async with lock:
        if key not in ctx.cache:
            try:
                ctx.cache[key] = (True, await factory())
            except Exception as exc:
                ctx.cache[key] = (False, exc)
    ok, value = ctx.cache[key]
    if not ok:
        raise value
    return value



# --- the OpenAPI document ------------------------------------------------------------------------

@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def has_body(self) -> bool:
        return "requestBody" in self.spec

    def query_params(self, required_only: bool = True) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", [])
                if p.get("in") == "query" and (p.get("required") or not required_only)]


_METHODS = ("get", "post", "put", "patch", "delete")
PATH_PARAM = re.compile(r"\{([^}/]+)\}")


async def openapi(ctx: Context) -> dict[str, Any]:
    """The target's /openapi.json, fetched once per run."""

    async def fetch() -> dict[str, Any]:
        r = await ctx.http.get("/openapi.json")
        doc = json_of(r) if r.status_code == 200 else None
        if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
            raise Skip(f"the API serves no OpenAPI document at /openapi.json (GET answered {r.status_code}); "
                       "this check enumerates routes from it")
        return doc

    return await shared(ctx, "openapi", fetch)


def operations(doc: dict[str, Any]) -> list[Operation]:
    ops = []
    for path, item in doc.get("paths", {}).items():
        for method in _METHODS:
            if isinstance(item, dict) and method in item:
                ops.append(Operation(method.upper(), path, item[method]))
    return ops


def fill_path(path: str, values: dict[str, str] | None = None) -> str:
    """Replace `{param}` with a known value, else a random UUID (an id nobody owns)."""
    values = values or {}
    return PATH_PARAM.sub(lambda m: values.get(m.group(1)) or str(uuid.uuid4()), path)


# --- requests as probe users ---------------------------------------------------------------------

async def users(ctx: Context, *roles: str) -> list[ProbeUser]:
    """Distinct test users with these app roles (msgops.personas)."""
    return await ctx.users(*roles)


async def call(ctx: Context, user: ProbeUser | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = dict(kwargs.pop("headers", None) or {})
    if user is not None:
        headers.update(user.headers)
    return await ctx.http.request(method, path, headers=headers, **kwargs)


def require(r: httpx.Response, *codes: int, what: str) -> Any:
    """The JSON of `r` if its status is one of `codes`; SetupFailed (the probe errors) otherwise."""
    if r.status_code not in codes:
        raise SetupFailed(f"could not {what}: {target_of(r)} answered {r.status_code} {trim(r.text, 200)}")
    return json_of(r)


async def perform(ctx: Context, user: ProbeUser | None, name: str, what: str, /, **values: Any) -> apimap.Answer:
    """Operation `name` of the API map as `user`; SetupFailed when refused, Skip when the target's API
    has no such operation."""
    answer = await apimap.call(ctx, user, name, **values)
    if not answer.ok:
        r = answer.response
        raise SetupFailed(f"could not {what}: {target_of(r)} answered {r.status_code} {trim(r.text, 200)}")
    return answer


async def operation(ctx: Context, user: ProbeUser | None, name: str, what: str, /, **values: Any) -> dict[str, Any]:
    """The fields (msgops's names) of `perform`'s answer."""
    return (await perform(ctx, user, name, what, **values)).fields


async def direct(ctx: Context, a: ProbeUser, b: ProbeUser) -> str:
    return str((await operation(ctx, a, "create_direct", "start a direct conversation", user_id=str(b.id)))["id"])


async def group(ctx: Context, owner: ProbeUser, title: str = "msgops probe group",
                members: tuple[ProbeUser, ...] = ()) -> str:
    made = await operation(ctx, owner, "create_group", "create a group conversation", title=title,
                           member_ids=[str(m.id) for m in members])
    return str(made["id"])


async def send(ctx: Context, user: ProbeUser, conversation: str, content: str,
               client_msg_id: str | None = None) -> dict[str, Any]:
    return await operation(ctx, user, "send_message", "send a message", conversation_id=conversation,
                           content=content, client_msg_id=client_msg_id)


async def community(ctx: Context, owner: ProbeUser, *, private: bool = False, name: str | None = None,
                    description: str = "created by msgops probes") -> dict[str, Any]:
    return await operation(ctx, owner, "create_community", "create a community",
                           name=name or f"msgops probe {uuid.uuid4().hex[:8]}", description=description,
                           is_private=private)


async def optional(ctx: Context, user: ProbeUser | None, name: str, /, **values: Any) -> apimap.Answer | None:
    """Operation `name` as `user`, or None when it is not part of this API: for probes that read
    whatever the target offers."""
    try:
        return await apimap.call(ctx, user, name, **values)
    except Skip:
        return None


def walk_strings(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """Every string in a JSON document with its JSON path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from walk_strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_strings(v, f"{path}[{i}]")
