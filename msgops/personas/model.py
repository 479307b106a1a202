"""The `personas:` section of msgops.yaml: where test users' tokens come from and how users come to exist.

    personas:
      source: token_command            # hs256 | private_key | token_command | tokens | supabase
      command: ["./scripts/token.sh"]  # run once per persona, MSGOPS_PERSONA_NAME/_ID/_ROLE/_EMAIL set
      create: {request: "GET /conversations", as: self}           # how a fresh user comes to exist
      grant_role: {request: "PUT /admin/users/{id}/role", json: {role: "{role}"}, as: service}
      delete: {request: "DELETE /admin/users/{id}", as: service}  # clean-up

`users:` lists fixed personas (users that already exist at the identity provider); without it msgops
makes fresh users for each check (hs256, private_key and token_command only). Placeholders in paths,
JSON and SQL: {id}, {name}, {email}, {role}.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from msgops import placeholders
from msgops.errors import UserError
from msgops.tokens import Minting

PLACEHOLDERS = frozenset({"id", "name", "email", "role"})
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
BASE_ROLE = "attendee"  # the role a new user has without any grant (the reference's default app role)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _check_placeholders(text: str, where: str) -> None:
    for name in placeholders.unknown([text], PLACEHOLDERS):
        raise ValueError(f"{where}: unknown placeholder {{{name}}} (known: {placeholders.listed(PLACEHOLDERS)})")


class Action(_Strict):
    """One step against the target: an HTTP request (as the persona or as the service) or SQL."""

    request: str | None = None  # "METHOD /path/{id}"
    json_body: dict[str, Any] | None = Field(default=None, alias="json")
    as_: Literal["self", "service"] = Field(default="self", alias="as")
    sql: str | None = None  # run with autocommit on the configured database; %(id)s, %(email)s, ...

    @model_validator(mode="after")
    def _one_kind(self) -> Action:
        if (self.request is None) == (self.sql is None):
            raise ValueError("give exactly one of request: \"METHOD /path\" or sql: \"...\"")
        if self.request is not None:
            method, _, path = self.request.strip().partition(" ")
            if method.upper() not in _METHODS or not path.strip().startswith("/"):
                raise ValueError(f"request {self.request!r}: expected \"METHOD /path\" (METHOD one of "
                                 f"{', '.join(sorted(_METHODS))})")
            _check_placeholders(path, f"request {self.request!r}")
        for text in placeholders.strings(self.json_body):
            _check_placeholders(text, "json")
        return self

    @property
    def method(self) -> str:
        assert self.request is not None
        return self.request.strip().partition(" ")[0].upper()

    @property
    def path(self) -> str:
        assert self.request is not None
        return self.request.strip().partition(" ")[2].strip()

    def describe(self) -> str:
        return (f"{self.method} {self.path} as {self.as_}" if self.request else "SQL")


def _id_text(value: Any) -> Any:
    """A user id as text: YAML reads a numeric id as a number, Python callers may pass a UUID."""
    return str(value) if isinstance(value, int | uuid.UUID) and not isinstance(value, bool) else value


# A user id is opaque to msgops: a UUID (Supabase), `user_2NNEqL2nrIRdJ194ndJqAHwEfxC` (Clerk),
# `auth0|6543...` (Auth0), a 28-character Firebase uid. Only the target knows what it means.
UserId = Annotated[str, BeforeValidator(_id_text),
                   StringConstraints(strip_whitespace=True, min_length=1, max_length=255, pattern=r"^\S+$")]


class FixedUser(_Strict):
    """A persona that already exists at the identity provider."""

    name: str
    role: str = BASE_ROLE
    id: UserId | None = None
    email: str | None = None
    token_env: str | None = None     # source: tokens
    password_env: str | None = None  # source: supabase


# The reference's built-in defaults for fresh users: the first request creates the profile, an admin
# endpoint grants app roles, another erases the user and everything they made.
REFERENCE_CREATE = Action.model_validate({"request": "GET /conversations", "as": "self"})
REFERENCE_GRANT = Action.model_validate({"request": "PUT /admin/users/{id}/role", "json": {"role": "{role}"},
                                         "as": "service"})
REFERENCE_DELETE = Action.model_validate({"request": "DELETE /admin/users/{id}", "as": "service"})
_UNSET: Any = "default"


class _Common(_Strict):
    users: list[FixedUser] = Field(default_factory=list)
    # "default": the reference's actions for fresh users, nothing for fixed ones; null: nothing.
    create: Action | Literal["existing", "default"] | None = _UNSET
    grant_role: Action | Literal["default"] | None = _UNSET
    delete: Action | Literal["default"] | None = _UNSET
    base_role: str = BASE_ROLE
    email_domain: str = "probe.invalid"

    @model_validator(mode="after")
    def _unique_names(self) -> _Common:
        names = [u.name for u in self.users]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"users: the name {dup[0]!r} is used twice")
        return self

    @property
    def fresh(self) -> bool:
        """Fresh users per check (no `users:` list)."""
        return not self.users

    def _resolved(self, value: Any, reference: Action) -> Action | None:
        if value == "default":
            return reference if self.fresh else None
        return value if isinstance(value, Action) else None

    @property
    def create_action(self) -> Action | None:
        return self._resolved(self.create, REFERENCE_CREATE)

    @property
    def grant_action(self) -> Action | None:
        return self._resolved(self.grant_role, REFERENCE_GRANT)

    @property
    def delete_action(self) -> Action | None:
        return self._resolved(self.delete, REFERENCE_DELETE)


class _Signing(_Common):
    claims: dict[str, Any] = Field(default_factory=dict)  # extra claims, e.g. iss
    audience: str | None = "authenticated"
    ttl_s: int = Field(default=900, gt=0)
    service_claims: dict[str, Any] = Field(default_factory=lambda: {"role": "service_role"})


class HS256Source(_Signing):
    source: Literal["hs256"]
    secret_env: str = "MSGOPS_JWT_SECRET"

    def minting(self) -> Minting:
        """How this source signs its tokens, but for the key."""
        return Minting("HS256", self.audience, dict(self.claims))


class PrivateKeySource(_Signing):
    source: Literal["private_key"]
    key_env: str
    algorithm: Literal["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"] = "RS256"
    kid: str | None = None

    def minting(self) -> Minting:
        return Minting(self.algorithm, self.audience, dict(self.claims), self.kid)


class TokenCommandSource(_Common):
    source: Literal["token_command"]
    command: str | list[str]
    timeout_s: float = Field(default=20, gt=0)
    service: bool = True  # the command can also print a token for the service persona (role service_role)


class TokensSource(_Common):
    source: Literal["tokens"]
    service_token_env: str | None = None

    @model_validator(mode="after")
    def _tokens(self) -> TokensSource:
        if not self.users:
            raise ValueError("users: list the personas, each with token_env")
        for user in self.users:
            if not user.token_env:
                raise ValueError(f"users[{user.name}]: token_env is required with source: tokens")
        return self


class SupabaseSource(_Common):
    source: Literal["supabase"]
    url_env: str = "SUPABASE_URL"
    anon_key_env: str = "SUPABASE_ANON_KEY"
    service_key_env: str | None = "SUPABASE_SERVICE_ROLE_KEY"

    @model_validator(mode="after")
    def _passwords(self) -> SupabaseSource:
        if not self.users:
            raise ValueError("users: list the seeded test users, each with email and password_env")
        for user in self.users:
            if not user.email or not user.password_env:
                raise ValueError(f"users[{user.name}]: email and password_env are required with source: supabase")
        return self


SourceConfig = Annotated[HS256Source | PrivateKeySource | TokenCommandSource | TokensSource | SupabaseSource,
                         Field(discriminator="source")]
SOURCES = ("hs256", "private_key", "token_command", "tokens", "supabase")
_ADAPTER: TypeAdapter[SourceConfig] = TypeAdapter(SourceConfig)


def parse(raw: Mapping[str, Any]) -> SourceConfig:
    """The validated `personas:` section; UserError (exit 3) naming the first mistake and the fix."""
    if "source" not in raw:
        raise UserError(f"msgops.yaml personas: say where tokens come from with source: ({' | '.join(SOURCES)})")
    try:
        return _ADAPTER.validate_python(dict(raw))
    except ValidationError as exc:
        errors = exc.errors()  # a misspelt setting explains the missing one it was meant to be
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = ".".join(str(p) for p in error["loc"] if p not in SOURCES)
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "union_tag_invalid":
            message = f"unknown source {raw.get('source')!r} (known: {', '.join(SOURCES)})"
        elif error["type"] == "extra_forbidden":
            message = "unknown setting (see the personas section of the README)"
        elif error["type"] == "missing":
            message = f"required with source: {raw.get('source')}"
        raise UserError(f"msgops.yaml personas{'.' + loc if loc else ''}: {message}; fix msgops.yaml") from None
