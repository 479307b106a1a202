"""Where a persona's token comes from: the five sources of `personas.source`.

Each source gives a token for a persona (and the user id the identity provider put in it), a token for
the service persona when it can (admin actions), and, for the two signing sources, any token msgops
needs to forge (expired, another audience) for the authentication checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from msgops.errors import UserError
from msgops.personas.model import (
    FixedUser,
    HS256Source,
    PrivateKeySource,
    SourceConfig,
    SupabaseSource,
    TokenCommandSource,
    TokensSource,
)

SERVICE_ROLE = "service_role"


class PersonaError(UserError):
    """A persona could not get a token because of how msgops is configured (one line, names the fix)."""


@dataclass
class Persona:
    name: str
    role: str
    id: str  # opaque, as the identity provider issues it
    email: str
    fixed: FixedUser | None = None


@dataclass(frozen=True)
class Issued:
    token: str
    id: str


def subject(token: str) -> str | None:
    """The `sub` of a JWT as the identity provider wrote it (unverified: the target verifies it), whatever
    its form (a UUID, Clerk's `user_2N...`, Auth0's `auth0|...`); None for an opaque token or one without
    `sub`."""
    try:
        sub = jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.PyJWTError:
        return None
    if sub is None or isinstance(sub, bool | dict | list) or not str(sub).strip():
        return None
    return str(sub).strip()


class TokenSource(ABC):
    can_sign = False

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def _env(self, name: str, setting: str) -> str:
        value = self.env.get(name, "").strip()
        if not value:
            raise PersonaError(f"msgops.yaml personas.{setting}: the environment variable {name} is not set; "
                               f"export it")
        return value

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    async def token(self, persona: Persona) -> Issued: ...

    def refused_fix(self) -> str:
        """What to change when the API refuses this source's tokens."""
        return f"make personas issue tokens the API accepts (now {self.describe()})"

    async def service_token(self) -> str | None:
        return None

    def sign(self, sub: str, role: str = "authenticated", ttl: int = 900, **claims: Any) -> str:
        raise NotImplementedError

    def check(self) -> None:
        """Static validation (variables set, keys parse): PersonaError on a mistake."""
        return None


class _Signer(TokenSource):
    can_sign = True

    def __init__(self, env: Mapping[str, str], config: HS256Source | PrivateKeySource, key: Any, label: str) -> None:
        super().__init__(env)
        self.config, self.key, self.label = config, key, label
        self.minting = config.minting()

    def describe(self) -> str:
        return self.label

    def refused_fix(self) -> str:
        if isinstance(self.config, HS256Source):
            return f"set {self.config.secret_env} to the secret the service verifies tokens with"
        kid = f" under kid {self.config.kid}" if self.config.kid else " (and give personas.kid)"
        return (f"put in {self.config.key_env} the private key whose public key the API's JWKS publishes{kid}, "
                "with the audience and claims the API expects (personas.audience, personas.claims)")

    def sign(self, sub: str, role: str = "authenticated", ttl: int = 900, **claims: Any) -> str:
        return self.minting.mint(self.key, sub, role, ttl, claims)

    async def token(self, persona: Persona) -> Issued:
        token = self.sign(persona.id, ttl=self.config.ttl_s, email=persona.email, name=persona.name)
        return Issued(token, persona.id)

    async def service_token(self) -> str | None:
        claims = dict(self.config.service_claims)
        role = str(claims.pop("role", SERVICE_ROLE))
        return self.sign(str(uuid.uuid4()), role=role, ttl=self.config.ttl_s, **claims)


def hs256(config: HS256Source, env: Mapping[str, str], fallback_secret: str | None) -> _Signer:
    secret = env.get(config.secret_env) or fallback_secret
    if not secret:
        raise PersonaError(f"msgops.yaml personas.secret_env: the environment variable {config.secret_env} is not "
                           "set; export the HS256 secret the API verifies tokens with")
    return _Signer(env, config, secret, "minted with the configured HS256 secret")


def private_key(config: PrivateKeySource, env: Mapping[str, str]) -> _Signer:
    value = env.get(config.key_env, "").strip()
    if not value:
        raise PersonaError(f"msgops.yaml personas.key_env: the environment variable {config.key_env} is not set; "
                           "export the PEM private key of the staging identity provider")
    pem = value.replace("\\n", "\n").encode()
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        reason = str(exc).split(".")[0].split("\n")[0] or type(exc).__name__
        raise PersonaError(f"msgops.yaml personas.key_env: {config.key_env} does not hold an unencrypted PEM "
                           f"private key ({reason}); export the key's PEM text (-----BEGIN PRIVATE KEY-----...)"
                           ) from None
    wants_rsa = config.algorithm.startswith(("RS", "PS"))
    if wants_rsa != isinstance(key, rsa.RSAPrivateKey) or (not wants_rsa and not isinstance(
            key, ec.EllipticCurvePrivateKey)):
        raise PersonaError(f"msgops.yaml personas.algorithm: {config.algorithm} needs "
                           f"{'an RSA' if wants_rsa else 'an EC'} key, but {config.key_env} holds "
                           f"{type(key).__name__.removeprefix('_')}; fix algorithm or the key")
    kid = f", kid {config.kid}" if config.kid else ""
    label = f"signed {config.algorithm} with the key in {config.key_env}{kid}"
    return _Signer(env, config, key, label)


class TokenCommand(TokenSource):
    def __init__(self, config: TokenCommandSource, env: Mapping[str, str]) -> None:
        super().__init__(env)
        self.config = config
        self.shown = config.command if isinstance(config.command, str) else shlex.join(config.command)

    def describe(self) -> str:
        return f"printed by `{self.shown}`, once per persona"

    def check(self) -> None:
        argv = shlex.split(self.config.command) if isinstance(self.config.command, str) else self.config.command
        if not argv:
            raise PersonaError("msgops.yaml personas.command: empty; give the command that prints a persona's token")
        if isinstance(self.config.command, list) and shutil.which(argv[0]) is None and not os.path.isfile(argv[0]):
            raise PersonaError(f"msgops.yaml personas.command: {argv[0]!r} not found; fix the path or install it")

    async def _run(self, name: str, pid: str | None, role: str, email: str) -> str:
        env = {**os.environ, **self.env, "MSGOPS_PERSONA_NAME": name, "MSGOPS_PERSONA_ROLE": role,
               "MSGOPS_PERSONA_EMAIL": email, "MSGOPS_PERSONA_ID": pid or ""}
        cmd = self.config.command
        try:
            if isinstance(cmd, str):
                proc = await asyncio.create_subprocess_shell(cmd, env=env, stdout=asyncio.subprocess.PIPE,
                                                             stderr=asyncio.subprocess.PIPE,
                                                             stdin=asyncio.subprocess.DEVNULL)
            else:
                proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=asyncio.subprocess.PIPE,
                                                            stderr=asyncio.subprocess.PIPE,
                                                            stdin=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            raise PersonaError(f"msgops.yaml personas.command: cannot run `{self.shown}` ({exc.strerror}); fix the "
                               "command") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.config.timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise PersonaError(f"msgops.yaml personas.command: `{self.shown}` printed no token within "
                               f"{self.config.timeout_s:g} s for persona {name}; fix the command or raise "
                               "personas.timeout_s") from None
        if proc.returncode != 0:
            last = (err.decode(errors="replace").strip().splitlines() or ["no message"])[-1][:200]
            raise PersonaError(f"msgops.yaml personas.command: `{self.shown}` exited {proc.returncode} for persona "
                               f"{name} ({last}); fix the command")
        lines = [line.strip() for line in out.decode(errors="replace").splitlines() if line.strip()]
        if not lines:
            raise PersonaError(f"msgops.yaml personas.command: `{self.shown}` printed nothing for persona {name}; "
                               "it must print the persona's token on stdout")
        token = lines[-1].removeprefix("Bearer ").strip()
        if " " in token:
            raise PersonaError(f"msgops.yaml personas.command: `{self.shown}` printed {len(lines[-1])} characters "
                               "with spaces on its last line; it must print only the token")
        return token

    async def token(self, persona: Persona) -> Issued:
        token = await self._run(persona.name, persona.id, persona.role, persona.email)
        return Issued(token, subject(token) or persona.id)

    async def service_token(self) -> str | None:
        if not self.config.service:
            return None
        return await self._run("service", None, SERVICE_ROLE, "")


class PreIssued(TokenSource):
    def __init__(self, config: TokensSource, env: Mapping[str, str]) -> None:
        super().__init__(env)
        self.config = config

    def describe(self) -> str:
        return f"pre-issued tokens of {len(self.config.users)} personas from the environment"

    def check(self) -> None:
        for user in self.config.users:
            assert user.token_env
            self._env(user.token_env, f"users[{user.name}].token_env")
        if self.config.service_token_env:
            self._env(self.config.service_token_env, "service_token_env")

    async def token(self, persona: Persona) -> Issued:
        assert persona.fixed is not None and persona.fixed.token_env
        token = self._env(persona.fixed.token_env, f"users[{persona.name}].token_env")
        uid = persona.fixed.id or subject(token)
        if uid is None:
            raise PersonaError(f"msgops.yaml personas.users[{persona.name}]: the token carries no user id (sub); "
                               "give the persona's id")
        return Issued(token, uid)

    async def service_token(self) -> str | None:
        env = self.config.service_token_env
        return self._env(env, "service_token_env") if env else None


class SupabasePassword(TokenSource):
    """Supabase Auth (GoTrue): password sign-in of seeded test users."""

    def __init__(self, config: SupabaseSource, env: Mapping[str, str]) -> None:
        super().__init__(env)
        self.config = config

    def describe(self) -> str:
        return f"Supabase Auth password sign-in of {len(self.config.users)} seeded users at ${self.config.url_env}"

    def check(self) -> None:
        self._env(self.config.url_env, "url_env")
        self._env(self.config.anon_key_env, "anon_key_env")
        for user in self.config.users:
            assert user.password_env
            self._env(user.password_env, f"users[{user.name}].password_env")

    async def token(self, persona: Persona) -> Issued:
        user = persona.fixed
        assert user is not None and user.password_env and user.email
        url = self._env(self.config.url_env, "url_env").rstrip("/") + "/auth/v1/token?grant_type=password"
        key = self._env(self.config.anon_key_env, "anon_key_env")
        password = self._env(user.password_env, f"users[{user.name}].password_env")
        import httpx  # here: signers (a load generator's, for one) need no HTTP client

        async with httpx.AsyncClient(timeout=15) as client:
            try:
                r = await client.post(url, json={"email": user.email, "password": password},
                                      headers={"apikey": key, "Authorization": f"Bearer {key}"})
            except httpx.HTTPError as exc:
                raise PersonaError(f"msgops.yaml personas.url_env: cannot reach Supabase Auth at {url} "
                                   f"({type(exc).__name__}); fix {self.config.url_env}") from None
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        token = body.get("access_token") if isinstance(body, dict) else None
        if r.status_code != 200 or not isinstance(token, str):
            why = (body.get("error_description") or body.get("msg") or body.get("error")) if isinstance(
                body, dict) else None
            raise PersonaError(f"msgops.yaml personas.users[{user.name}]: Supabase Auth refused the password sign-in "
                               f"of {user.email} ({r.status_code} {why or r.text[:120]}); seed the user or fix "
                               f"{user.password_env}")
        uid = (body.get("user") or {}).get("id")
        found = str(uid) if uid else subject(token)
        if found is None:
            raise PersonaError(f"msgops.yaml personas.users[{persona.name}]: Supabase Auth returned no user id")
        return Issued(token, found)

    async def service_token(self) -> str | None:
        env = self.config.service_key_env
        return self.env.get(env) or None if env else None


def build(config: SourceConfig, env: Mapping[str, str], fallback_secret: str | None) -> TokenSource:
    """The token source a validated configuration describes; PersonaError when it cannot work."""
    source: TokenSource
    if isinstance(config, HS256Source):
        source = hs256(config, env, fallback_secret)
    elif isinstance(config, PrivateKeySource):
        source = private_key(config, env)
    elif isinstance(config, TokenCommandSource):
        source = TokenCommand(config, env)
    elif isinstance(config, TokensSource):
        source = PreIssued(config, env)
    else:
        source = SupabasePassword(config, env)
    source.check()
    return source
