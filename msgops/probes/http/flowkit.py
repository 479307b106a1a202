"""The machinery of end-to-end flows: probe users with readable names, and a log of steps that
stops at the first unexpected answer. The log is the evidence a reviewer reads."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from msgops.probes.context import Context, ProbeUser
from msgops.probes.http.common import call, json_of, target_of, trim

FlowFn = Callable[["Flow"], Awaitable[str]]
FLOWS: dict[str, FlowFn] = {}


def flow(name: str) -> Callable[[FlowFn], FlowFn]:
    """Register an end-to-end flow; it returns a one-line summary or raises FlowFailed."""

    def register(fn: FlowFn) -> FlowFn:
        FLOWS[name] = fn
        return fn

    return register


class FlowFailed(Exception):
    """A step answered something other than what the flow requires."""


class Flow:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.steps: list[dict[str, Any]] = []
        self.tag = uuid.uuid4().hex[:8]  # marks this run's texts, to find them among others
        self._names: dict[str, str] = {}

    async def user(self, role: str = "attendee") -> ProbeUser:
        return (await self.users(role))[0]

    async def users(self, *roles: str) -> list[ProbeUser]:
        """Distinct test users with these app roles, named attendee1, attendee2, ... in the evidence."""
        made = await self.ctx.users(*roles)
        for role, user in zip(roles, made, strict=True):
            same = sum(1 for name in self._names.values() if name.rstrip("0123456789") == role)
            self._names[user.id] = f"{role}{same + 1}"
        return list(made)

    def name(self, user: ProbeUser | None) -> str:
        return "anonymous" if user is None else self._names.get(user.id, str(user.id)[:8])

    async def send(self, user: ProbeUser | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request whose answer the flow judges itself (see `verify`)."""
        return await call(self.ctx, user, method, path, **kwargs)

    async def step(self, what: str, user: ProbeUser | None, method: str, path: str, *,
                   expect: int | tuple[int, ...], **kwargs: Any) -> Any:
        """Make a request that must answer one of `expect`; returns its JSON."""
        r = await self.send(user, method, path, **kwargs)
        codes = (expect,) if isinstance(expect, int) else expect
        self.record(what, user, r, codes)
        if r.status_code not in codes:
            raise FlowFailed(f"{what}: {target_of(r)} answered {r.status_code}, expected "
                             f"{' or '.join(map(str, codes))}")
        return json_of(r)

    def record(self, what: str, user: ProbeUser | None, r: httpx.Response, codes: tuple[int, ...]) -> None:
        entry: dict[str, Any] = {"step": what, "as": self.name(user), "request": trim(target_of(r), 160),
                                 "expect": list(codes) if len(codes) <= 5 else f"{min(codes)}-{max(codes)}",
                                 "status": r.status_code, "ok": r.status_code in codes,
                                 "ms": round(r.elapsed.total_seconds() * 1000, 1)}
        if r.status_code not in codes or r.status_code >= 400:
            entry["body"] = trim(r.text, 240)
        if "retry-after" in r.headers:
            entry["retry_after"] = r.headers["retry-after"]
        self.steps.append(entry)

    def verify(self, what: str, condition: bool, observed: Any = None) -> None:
        """A property of what the service returned; the flow stops when it does not hold."""
        entry: dict[str, Any] = {"step": what, "ok": bool(condition)}
        if observed is not None:
            entry["observed"] = observed if isinstance(observed, int | float | bool) else trim(str(observed), 300)
        self.steps.append(entry)
        if not condition:
            raise FlowFailed(f"{what}: not so (observed {entry.get('observed', 'nothing')})")

    # --- shortcuts for the situations most flows start from -----------------------------------

    async def direct(self, a: ProbeUser, b: ProbeUser) -> str:
        body = await self.step(f"{self.name(a)} starts a direct conversation with {self.name(b)}", a,
                               "POST", "/conversations", json={"kind": "direct", "user_id": str(b.id)},
                               expect=(201, 200))
        return str(body["id"])

    async def message(self, sender: ProbeUser, conversation: str, content: str | None = None,
                      **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = await self.step(
            f"{self.name(sender)} sends a message", sender, "POST", f"/conversations/{conversation}/messages",
            json={"content": content or f"msgops flow {self.tag}", **extra}, expect=201)
        return body


def ids(items: list[dict[str, Any]] | None, key: str = "id") -> list[str]:
    return [str(i.get(key)) for i in items or []]


def find(items: list[dict[str, Any]] | None, value: str, key: str = "id") -> dict[str, Any] | None:
    return next((i for i in items or [] if str(i.get(key)) == value), None)
