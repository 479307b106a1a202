"""msgops.yaml as typed settings: every key, its type and what it allows.

Types are strict (a quoted "16" is not a number, `true` is not an integer) and unknown keys are
refused, so a typo never silently falls back to a default. An empty value (`api_url:`) means "not set".
Secrets are not settings: the file names the environment variables that hold them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from msgops.urls import http_url_problem, origin_problem

Environment = Literal["development", "staging", "production"]
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)
SECRET_KEYS = {"database_url": "database_url_env", "jwt_secret": "jwt_secret_env"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _http_url(value: Any) -> Any:
    problem = http_url_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _origin(value: Any) -> Any:
    problem = origin_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _env_name(value: Any) -> Any:
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise ValueError("must be an environment variable name like DATABASE_URL")
    return value


def _path(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a path (a non-empty string)")
    return value


HttpUrl = Annotated[str, BeforeValidator(_http_url)]
Origin = Annotated[str, BeforeValidator(_origin)]
EnvName = Annotated[str, BeforeValidator(_env_name)]
PathText = Annotated[str, BeforeValidator(_path)]
Name = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ChecksSettings(_Section):
    concurrency: int = Field(default=16, ge=1, le=1024, description="checks in flight at once")
    timeout_s: float = Field(default=30.0, gt=0, le=86_400, description="per check, in seconds")
    retries: int = Field(default=0, ge=0, le=10, description="re-runs of a check that errored")


class CorsSettings(_Section):
    allowed_origin: Origin | None = None
    disallowed_origin: Origin = "https://attacker.example"


class ScopeSettings(_Section):
    """The part of the checklists this target is checked against, on purpose."""

    checklists: list[Name] = Field(default_factory=list)
    tags: list[Name] = Field(default_factory=list)
    only: list[Name] = Field(default_factory=list)
    reason: Name | None = None

    @model_validator(mode="after")
    def _narrows(self) -> ScopeSettings:
        if not (self.checklists or self.tags or self.only):
            raise ValueError("a scope names at least one of checklists, tags, only")
        return self


class Settings(_Section):
    api_url: HttpUrl | None = None
    database_url_env: EnvName = "DATABASE_URL"
    jwt_secret_env: EnvName = "MSGOPS_JWT_SECRET"
    environment: Environment | None = None
    repo: PathText | None = None
    env_file: PathText | None = None
    cors: CorsSettings = Field(default_factory=CorsSettings)
    load_results: PathText | None = None
    waivers: PathText | None = None
    attestations: PathText | None = None
    checks: ChecksSettings = Field(default_factory=ChecksSettings)
    scope: ScopeSettings | None = None
    checklists: list[PathText] = Field(default_factory=list)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")  # validated where it is used
    # Validated by the modules that own them (msgops.personas, msgops.apimap, the realtime adapters).
    personas: dict[str, Any] | None = None
    api: dict[str, Any] | None = None
    realtime: dict[str, Any] | None = None


_AS_WRITTEN = frozenset({"schema", "personas", "api", "realtime"})  # null means something inside these


def without_empty(data: dict[str, Any]) -> dict[str, Any]:
    """`key:` with no value means "not set" (except inside the sections passed through as written)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        out[key] = without_empty(value) if isinstance(value, dict) and key not in _AS_WRITTEN else value
    return out
