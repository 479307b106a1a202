"""The machinery of end-to-end flows: probe users with readable names, and a log of steps that
stops at the first unexpected answer. The log is the evidence a reviewer reads.

Each step names an operation of the API map (msgops/apimap.py), so a flow runs on any target the map
describes; a step whose operation the map lacks makes the flow `skip` "not part of this API"."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx

from msgops import apimap
from msgops.probes.context import Context, ProbeUser
from msgops.probes.http.common import target_of, trim

FlowFn = Callable[["Flow"], Awaitable[str]]
FLOWS: dict[str, FlowFn] = {}
OK: Final = "ok"  # expect the statuses of success the API map gives the operation (default: any 2xx)


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
            self._names[str(user.id)] = f"{role}{same + 1}"
        return list(made)

    def name(self, user: ProbeUser | None) -> str:
        return "anonymous" if user is None else self._names.get(str(user.id), str(user.id)[:8])

    async def call(self, name: str, user: ProbeUser | None, /, **values: Any) -> apimap.Answer:
        """Operation `name` as `user`, whose answer the flow judges itself (see `record`, `verify`)."""
        return await apimap.call(self.ctx, user, name, **values)

    async def op(self, what: str, name: str, user: ProbeUser | None, /, *,
                 expect: int | tuple[int, ...] | str, **values: Any) -> dict[str, Any]:
        """Operation `name` as `user`, which must answer one of `expect` (OK: the operation's statuses of
        success); returns the answer's fields under msgops's names (apimap.read)."""
        answer = await self.call(name, user, **values)
        r = answer.response
        codes = apimap.success(answer.op) if expect == OK else (expect,) if isinstance(expect, int) else expect
        assert isinstance(codes, tuple)
        self.record(what, user, r, codes, operation=name)
        if r.status_code not in codes:
            raise FlowFailed(f"{what}: {target_of(r)} answered {r.status_code}, expected {_codes(codes)}")
        return answer.fields

    def record(self, what: str, user: ProbeUser | None, r: httpx.Response, codes: tuple[int, ...], *,
               operation: str | None = None) -> None:
        entry: dict[str, Any] = {"step": what, "as": self.name(user), "request": trim(target_of(r), 160),
                                 "expect": list(codes) if len(codes) <= 5 else _codes(codes),
                                 "status": r.status_code, "ok": r.status_code in codes,
                                 "ms": round(r.elapsed.total_seconds() * 1000, 1)}
        if operation is not None:
            entry["operation"] = operation
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
        body = await self.op(f"{self.name(a)} starts a direct conversation with {self.name(b)}", "create_direct", a,
                             expect=OK, user_id=str(b.id))
        return str(body["id"])

    async def message(self, sender: ProbeUser, conversation: str, content: str | None = None,
                      **extra: Any) -> dict[str, Any]:
        return await self.op(f"{self.name(sender)} sends a message", "send_message", sender, expect=OK,
                             conversation_id=conversation, content=content or f"msgops flow {self.tag}", **extra)


def _codes(codes: tuple[int, ...]) -> str:
    return f"{min(codes)}-{max(codes)}" if len(codes) > 5 else " or ".join(map(str, codes))


def ids(items: list[dict[str, Any]] | None, key: str = "id") -> list[str]:
    return [str(i.get(key)) for i in items or []]


def find(items: list[dict[str, Any]] | None, value: str, key: str = "id") -> dict[str, Any] | None:
    return next((i for i in items or [] if str(i.get(key)) == value), None)
