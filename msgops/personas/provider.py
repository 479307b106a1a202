"""Personas for a run: hands probes the test users they ask for, makes them exist, and cleans up.

Fresh users (no `users:` list): each request for a role makes a new user — a token from the source, the
`create` action, then `grant_role` unless the role is the base role — and `delete` erases it at the end.
Fixed users (`users:`): each call gets distinct personas of the roles it asks for, set up once per run
and kept afterwards. What could not be cleaned is said, never silently left behind.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import psycopg

from msgops.personas import model, tokens
from msgops.personas.tokens import Persona, PersonaError, TokenSource
from msgops.probes.context import CannotEvaluate, NotRun, ProbeUser

if TYPE_CHECKING:
    from msgops.config import Target
    from msgops.probes.context import Context

log = logging.getLogger("msgops.personas")
NO_PERSONAS = ("no way to get test users: configure personas: in msgops.yaml (hs256, private_key, token_command, "
               "tokens or supabase), or set MSGOPS_JWT_SECRET to the HS256 secret the API verifies tokens with")
_PLACEHOLDER = re.compile(r"\{(id|name|email|role)\}")


def environment(target: Target) -> dict[str, str]:
    return {**os.environ, **dict(target.env)}


def config_of(target: Target) -> model.SourceConfig | None:
    """The validated `personas:` section; without one, HS256 minting when a secret is known; else None."""
    if target.personas is not None:
        return model.parse(target.personas)
    if target.jwt_secret:
        return model.HS256Source(source="hs256")
    return None


class Personas:
    def __init__(self, config: model.SourceConfig, source: TokenSource, target: Target) -> None:
        self.config, self.source, self.target = config, source, target
        self._serial = itertools.count(1)
        self._fixed = [Persona(u.name, u.role, u.id or str(uuid.uuid4()), u.email or "", u) for u in config.users]
        self._ready: dict[str, asyncio.Task[ProbeUser]] = {}
        self._turn: dict[str, int] = {}
        self._service: asyncio.Task[str | None] | None = None
        self.created: list[Persona] = []

    @classmethod
    def of(cls, target: Target) -> Personas | None:
        """The personas `target` describes (UserError on a configuration mistake); None when there is no way."""
        config = config_of(target)
        if config is None:
            return None
        for name, action in (("create", config.create_action), ("grant_role", config.grant_action),
                             ("delete", config.delete_action)):
            if action is not None and action.sql is not None and not target.database_url:
                raise PersonaError(f"msgops.yaml personas.{name}: runs SQL but no database is configured; set "
                                   "DATABASE_URL (or database_url_env) or use a request")
        return cls(config, tokens.build(config, environment(target), target.jwt_secret), target)

    # --- what probes ask for ------------------------------------------------------------------

    @property
    def can_sign(self) -> bool:
        return self.source.can_sign

    def describe(self) -> str:
        how = self.source.describe()
        if self.config.fresh:
            erased = "erased after the run" if self.config.delete_action else "NOT erased (no personas.delete)"
            return f"fresh users per check, tokens {how}; {erased}"
        return f"{len(self._fixed)} fixed personas ({', '.join(p.name for p in self._fixed)}), tokens {how}"

    def sign(self, sub: str, role: str = "authenticated", ttl: int = 900, **claims: Any) -> str:
        if not self.source.can_sign:
            raise NotRun("this check forges tokens (expired, another audience) and needs a signing key: configure "
                         "personas.source hs256 or private_key")
        return self.source.sign(sub, role=role, ttl=ttl, **claims)

    async def users(self, ctx: Context, *roles: str) -> list[ProbeUser]:
        """Distinct users with these app roles."""
        try:
            if self.config.fresh:
                return list(await asyncio.gather(*(self._fresh(ctx, role) for role in roles)))
            return list(await asyncio.gather(*(self._setup(ctx, p) for p in self._pick(roles))))
        except PersonaError as exc:
            raise CannotEvaluate(str(exc)) from None

    async def trial(self) -> str:
        """One persona's token, got now: a source that cannot work fails before the run (PersonaError,
        exit 3), and the preflight can try the token where probes will present it."""
        persona = self._fixed[0] if self._fixed else self._persona(self.config.base_role, "preflight")
        return (await self.source.token(persona)).token

    # --- fresh users ------------------------------------------------------------------------

    def _persona(self, role: str, label: str | None = None) -> Persona:
        pid = uuid.uuid4()  # the id msgops proposes; a token source that knows better replaces it
        name = f"msgops-{label or next(self._serial)}-{role}"
        return Persona(name, role, str(pid), f"msgops-probe-{pid.hex[:12]}@{self.config.email_domain}")

    async def _fresh(self, ctx: Context, role: str) -> ProbeUser:
        persona = self._persona(role)
        persona.name = f"msgops-{ctx.run_id}-{persona.name.removeprefix('msgops-')}"
        issued = await self.source.token(persona)
        persona.id = issued.id
        self.created.append(persona)
        user = ProbeUser(persona.id, issued.token, role, name=persona.name, email=persona.email)
        await self._act(ctx, "create", self.config.create_action, persona, user)
        if role != self.config.base_role:
            if self.config.grant_action is None:
                raise NotRun(f"this check needs a user with the role {role}: configure personas.grant_role, or "
                             f"list a fixed persona with that role under personas.users")
            await self._act(ctx, "grant_role", self.config.grant_action, persona, user)
        return user

    # --- fixed users ------------------------------------------------------------------------

    def _pick(self, roles: tuple[str, ...]) -> list[Persona]:
        chosen: list[Persona] = []
        for role in roles:
            pool = [p for p in self._fixed if p.role == role and p not in chosen]
            if not pool:
                have = sum(1 for p in self._fixed if p.role == role)
                need = roles.count(role)
                raise NotRun(f"this check needs {need} distinct personas with the role {role}; personas.users lists "
                             f"{have}: add more")
            turn = self._turn.get(role, 0)
            self._turn[role] = turn + 1
            chosen.append(pool[turn % len(pool)])
        return chosen

    async def _setup(self, ctx: Context, persona: Persona) -> ProbeUser:
        if persona.name not in self._ready:
            self._ready[persona.name] = asyncio.ensure_future(self._prepare(ctx, persona))
        return await self._ready[persona.name]

    async def _prepare(self, ctx: Context, persona: Persona) -> ProbeUser:
        issued = await self.source.token(persona)
        persona.id = issued.id
        email = persona.email or _claim(issued.token, "email")
        user = ProbeUser(persona.id, issued.token, persona.role, name=persona.name, email=email)
        await self._act(ctx, "create", self.config.create_action, persona, user)
        return user

    # --- actions ----------------------------------------------------------------------------

    async def service_headers(self) -> dict[str, str]:
        if self._service is None:
            self._service = asyncio.ensure_future(self.source.service_token())
        token = await self._service
        if not token:
            raise NotRun("an action of personas runs `as: service` but the source gives no service token: set "
                         "personas.service_token_env (tokens), service_key_env (supabase) or act as self")
        return {"Authorization": f"Bearer {token}"}

    async def _act(self, ctx: Context, name: str, action: model.Action | None, persona: Persona,
                   user: ProbeUser | None) -> None:
        if action is None:
            return
        values = {"id": persona.id, "name": persona.name, "email": persona.email, "role": persona.role}
        if action.sql is not None:
            try:
                async with await psycopg.AsyncConnection.connect(ctx.require_db(), autocommit=True) as conn:
                    await conn.execute(action.sql.encode(), values)
            except psycopg.Error as exc:
                raise CannotEvaluate(f"personas.{name} SQL failed for {persona.name}: "
                                     f"{str(exc).strip().splitlines()[0][:200]}") from None
            return
        headers = await self.service_headers() if action.as_ == "service" else (user.headers if user else {})
        path = _fill(action.path, {k: quote(v, safe='') for k, v in values.items()})  # auth0|… in a path
        body = _fill_json(action.json_body, values) if action.json_body is not None else None
        r = await ctx.http.request(action.method, path, json=body, headers=headers)
        if r.status_code in (401, 403) and action.as_ == "self" and name == "create":
            raise CannotEvaluate(f"the API refused the token of persona {persona.name} ({action.method} "
                                 f"{action.path} answered {r.status_code} {r.text[:120]}): "
                                 f"{self.source.refused_fix()}")
        if not 200 <= r.status_code < 300:
            raise CannotEvaluate(f"personas.{name} failed for {persona.name}: {action.method} {action.path} answered "
                                 f"{r.status_code} {r.text[:160]}")

    async def close(self, ctx: Context) -> list[str]:
        """Erase the users made for this run; what could not be erased, one line each."""
        if not self.created:
            return []
        action = self.config.delete_action
        names = ", ".join(p.name for p in self.created[:5]) + ("…" if len(self.created) > 5 else "")
        if action is None:
            return [f"{len(self.created)} test users made for this run remain in the target ({names}): the target "
                    "offers no way to erase them to msgops (configure personas.delete)"]

        async def erase(persona: Persona) -> str | None:
            try:
                await self._act(ctx, "delete", action, persona, None)
            except (CannotEvaluate, NotRun, httpx.HTTPError, OSError) as exc:
                return f"{persona.name}: {exc}"
            return None

        # All at once, as a target's own clean-up would: an erasure that fails under concurrency (a deadlock
        # in the target) is reported with the target's answer, not hidden by retrying one at a time.
        failures = [f for f in await asyncio.gather(*(erase(p) for p in self.created)) if f]
        if failures:
            return [f"{len(failures)} of {len(self.created)} test users could not be erased "
                    f"({action.describe()}): {failures[0]}"]
        return []


def _fill(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _fill_json(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _fill(value, values)
    if isinstance(value, dict):
        return {k: _fill_json(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_json(v, values) for v in value]
    return value


def _claim(token: str, name: str) -> str:
    import jwt

    try:
        value = jwt.decode(token, options={"verify_signature": False}).get(name)
    except jwt.PyJWTError:
        return ""
    return value if isinstance(value, str) else ""

