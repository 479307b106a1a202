"""The target of a check run, resolved from flags > environment > msgops.yaml > a local `msgops serve`.

msgops.yaml is `--target FILE`, else the file `MSGOPS_TARGET` names, else the first msgops.yaml found
from the working directory upward (stopping at a directory that holds .git, or at the root). It is
parsed into typed settings (msgops.settings_model); every problem of the file is reported at once.
Secrets come only from the environment (or the local development data directory), never from
msgops.yaml: the file names the variables that hold them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from msgops import target as local
from msgops.errors import UserError
from msgops.settings_model import ENVIRONMENTS, SECRET_KEYS, Settings, without_empty
from msgops.urls import check_api_url, check_database_url
from msgops.validation import InputError, Problem, problems, read_yaml

CONFIG_FILE = "msgops.yaml"
TARGET_ENV = "MSGOPS_TARGET"


@dataclass(frozen=True)
class CheckSettings:
    concurrency: int = 16
    timeout_s: float = 30.0
    retries: int = 0


@dataclass(frozen=True)
class Scope:
    """What this target is checked against on purpose (`scope:` in msgops.yaml); the report states it."""

    checklists: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    reason: str | None = None


@dataclass(frozen=True)
class Target:
    api_url: str | None = None
    database_url: str | None = None
    jwt_secret: str | None = None
    environment: str = "development"
    repo: Path = field(default_factory=Path.cwd)
    env: Mapping[str, str] = field(default_factory=dict)  # variables the env probes inspect
    cors_allowed_origin: str | None = None
    cors_disallowed_origin: str = "https://attacker.example"
    load_results: Path | None = None
    waivers: Path | None = None
    attestations: Path | None = None
    checks: CheckSettings = field(default_factory=CheckSettings)
    source: str = "defaults"
    scope: Scope | None = None
    checklists: tuple[Path, ...] = ()  # custom checklist files, besides the built-in ones
    schema: Mapping[str, Any] | None = None  # the `schema:` overrides, as written
    config_path: Path | None = None  # the msgops.yaml used, if any
    # Raw sections, validated by the modules that own them (msgops.personas, msgops.apimap, the realtime
    # adapters' settings).
    personas: Mapping[str, Any] | None = None
    api: Mapping[str, Any] | None = None
    realtime: Mapping[str, Any] | None = None

    @property
    def ws_url(self) -> str | None:
        if not self.api_url:
            return None
        return self.api_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1).rstrip("/") + "/realtime"

    def describe(self) -> dict[str, Any]:
        """For reports: identity of the target, with no secret in it."""
        return {
            "api_url": self.api_url,
            "database": local.mask_url(self.database_url) if self.database_url else None,
            "environment": self.environment,
            "jwt_secret": "set" if self.jwt_secret else "not set",
            "source": self.source,
        }


# Finding msgops.yaml ---------------------------------------------------------------------------


def discover(start: Path | None = None) -> Path | None:
    """The first msgops.yaml from `start` upward; the search stops at a directory holding .git."""
    directory = (start or Path.cwd()).resolve()
    for candidate in (directory, *directory.parents):
        path = candidate / CONFIG_FILE
        if path.is_file():
            return path
        if (candidate / ".git").exists():
            return None
    return None


def find_config(explicit: Path | None = None, environ: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> Path | None:
    """--target FILE, else $MSGOPS_TARGET, else msgops.yaml found upward from the working directory."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        if not explicit.is_file():
            raise UserError(f"target file {explicit} not found; create one with `msgops init`")
        return explicit
    named = env.get(TARGET_ENV, "").strip()
    if named:
        path = Path(named)
        if not path.is_absolute() and cwd is not None:
            path = cwd / path
        if not path.is_file():
            raise UserError(f"{TARGET_ENV}={named}: no such file; fix the variable or create it with `msgops init`")
        return path
    return discover(cwd)


# Reading it ------------------------------------------------------------------------------------


def load_settings(path: Path) -> Settings:
    """msgops.yaml as typed settings; every problem of the file in one UserError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    data, _ = read_yaml(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of settings such as `api_url: https://…` "
                        f"(got {type(data).__name__}); see `msgops init`")
    found: list[Problem] = []
    for key, instead in SECRET_KEYS.items():
        if key in data:
            found.append(Problem((key,), f"secrets are read from the environment only; name the variable that "
                                        f"holds it with {instead}"))
            del data[key]
    data = {str(k): v for k, v in without_empty(data).items()}
    settings = Settings()
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        found += problems(exc, Settings)
    if not found:
        base = path.parent
        paths: list[tuple[tuple[str | int, ...], str]] = [(("checklists", i), p)
                                                          for i, p in enumerate(settings.checklists)]
        if settings.env_file:
            paths.insert(0, (("env_file",), settings.env_file))
        found += [Problem(loc, f"file {(base / p).resolve()} not found") for loc, p in paths
                  if not (base / p).is_file()]
    if found:
        raise InputError(str(path), found)
    return settings


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def _environment(value: str, where: str) -> str:
    if value not in ENVIRONMENTS:
        raise UserError(f"{where}: must be one of {', '.join(ENVIRONMENTS)} (got {value!r})")
    return value


def resolve(config_path: Path | None = None, *, api_url: str | None = None, database_url: str | None = None,
            environment: str | None = None, data_dir: Path | None = None,
            environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Target:
    env = dict(os.environ if environ is None else environ)
    path = find_config(config_path, env, cwd)
    settings = load_settings(path) if path else Settings()
    base = path.parent.resolve() if path else (cwd or Path.cwd()).resolve()

    def rel(value: str | None) -> Path | None:
        return (base / value).resolve() if value else None

    inspected_env = dict(env)
    if settings.env_file:
        inspected_env.update(_read_env_file(base / settings.env_file))

    if api_url is not None:
        api_url = check_api_url(api_url, "--api-url")
    elif env.get("MSGOPS_API_URL"):
        api_url = check_api_url(env["MSGOPS_API_URL"], "MSGOPS_API_URL")
    else:
        api_url = settings.api_url
    db_var = settings.database_url_env
    if database_url is not None:
        database_url = check_database_url(database_url, "--database-url")
    elif env.get(db_var):
        database_url = check_database_url(env[db_var], db_var)
    if environment is not None:
        environment = _environment(environment, "environment")
    elif env.get("MSGOPS_ENV"):
        environment = _environment(env["MSGOPS_ENV"], "MSGOPS_ENV")
    scope = settings.scope
    result = Target(
        api_url=api_url,
        database_url=database_url,
        jwt_secret=env.get(settings.jwt_secret_env) or env.get("SUPABASE_JWT_SECRET") or None,
        environment=environment or settings.environment or "development",
        repo=rel(settings.repo) or base,
        env=inspected_env,
        cors_allowed_origin=settings.cors.allowed_origin,
        cors_disallowed_origin=settings.cors.disallowed_origin,
        load_results=rel(settings.load_results),
        waivers=rel(settings.waivers),
        attestations=rel(settings.attestations),
        checks=CheckSettings(settings.checks.concurrency, settings.checks.timeout_s, settings.checks.retries),
        personas=settings.personas,
        api=settings.api,
        realtime=settings.realtime,
        source="flags/environment" + (f" + {path}" if path else ""),
        scope=Scope(tuple(scope.checklists), tuple(scope.tags), tuple(scope.only), scope.reason) if scope else None,
        checklists=tuple((base / p).resolve() for p in settings.checklists),
        schema=settings.schema_,
        config_path=path.resolve() if path else None,
    )
    if result.api_url and result.database_url:
        return result
    # Nothing (or only part) configured: a local `msgops serve` fills the gaps.
    serving = local.ServeInfo.read(local.data_dir(data_dir))
    if serving is None:
        return result
    secret = result.jwt_secret
    if secret is None:
        try:
            secret = local.jwt_secret(local.data_dir(data_dir), create=False)
        except UserError:
            secret = None
    return replace(result, api_url=result.api_url or serving.api_url,
                   database_url=result.database_url or serving.database_url, jwt_secret=secret,
                   source="local msgops serve" if not path else result.source + " + local msgops serve")


INIT_TEMPLATE = """\
# msgops target: what `msgops check` and `msgops gate` inspect.
# Precedence: command-line flags > environment variables > this file.
# Found as --target FILE, else $MSGOPS_TARGET, else the first msgops.yaml from the working directory up.
# Secrets never live here: name the environment variables that hold them.

api_url: http://127.0.0.1:8000          # or MSGOPS_API_URL
database_url_env: DATABASE_URL          # the variable holding the PostgreSQL URL
jwt_secret_env: MSGOPS_JWT_SECRET       # the variable holding the HS256 secret (to mint probe users)
environment: staging                    # development | staging | production (production demands TLS)
repo: .                                 # git repository whose history and .gitignore the env checks read
# env_file: .env.production             # extra variables for the env checks (values never printed)

cors:
  allowed_origin: https://app.example.com     # must be allowed
  disallowed_origin: https://attacker.example # must be refused

load_results: msgops-out/load.json      # results of `msgops load`, read by load thresholds
# waivers: waivers.yaml                 # [{id, justification, approver, expires: 2026-12-31}]
# attestations: attestations.yaml       # [{id, by, role, note, date: 2026-11-20}]

# scope:                                # check part of the checklists on purpose; the report states it
#   tags: [db, rls]                     # and/or checklists: [ids], only: [item ids]
#   reason: the API is gated by its own pipeline
# checklists: [checks/our-team.yaml]    # custom checklist files (relative to this file), run with the built-in ones

checks:
  concurrency: 16                       # checks in flight at once
  timeout_s: 30                         # per check
  retries: 0                            # re-run a check that errored (never one that failed)
"""
