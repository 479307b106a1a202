"""The target of a check run, resolved from flags > environment > msgops.yaml > a local `msgops serve`.

Secrets come only from the environment (or the local development data directory), never from
msgops.yaml: the file names the variables that hold them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from msgops import target as local
from msgops.errors import UserError

CONFIG_FILE = "msgops.yaml"

_KEYS = {
    "api_url", "database_url_env", "jwt_secret_env", "environment", "repo", "cors", "load_results",
    "waivers", "attestations", "checks", "env_file", "personas", "api", "realtime",
}


@dataclass(frozen=True)
class CheckSettings:
    concurrency: int = 16
    timeout_s: float = 30.0
    retries: int = 0


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
    # Raw sections, validated by the modules that own them (msgops.personas, the API map, realtime adapters).
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


def _load_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)}); fix the file") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of settings (see `msgops init`)")
    if "database_url" in data or "jwt_secret" in data:
        raise UserError(f"{path}: secrets are read from the environment only; use database_url_env / jwt_secret_env")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise UserError(f"{path}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    return data


def _section(path: Path | None, data: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = data.get(key)
    if value is not None and not isinstance(value, Mapping):
        raise UserError(f"{path}: {key}: expected a mapping of settings")
    return value


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def resolve(config_path: Path | None = None, *, api_url: str | None = None, database_url: str | None = None,
            environment: str | None = None, data_dir: Path | None = None,
            environ: Mapping[str, str] | None = None) -> Target:
    env = dict(os.environ if environ is None else environ)
    path = config_path or (Path(CONFIG_FILE) if Path(CONFIG_FILE).exists() else None)
    if config_path is not None and not config_path.exists():
        raise UserError(f"target file {config_path} not found; create one with `msgops init`")
    data = _load_file(path) if path else {}
    base = path.parent if path else Path.cwd()

    def rel(value: Any) -> Path | None:
        return (base / str(value)).resolve() if value else None

    checks = data.get("checks") or {}
    cors = data.get("cors") or {}
    inspected_env = dict(env)
    if data.get("env_file"):
        env_file = rel(data["env_file"])
        assert env_file is not None
        if not env_file.exists():
            raise UserError(f"{path}: env_file {env_file} not found")
        inspected_env.update(_read_env_file(env_file))
    try:
        check_settings = CheckSettings(int(checks.get("concurrency", 16)), float(checks.get("timeout_s", 30)),
                                       int(checks.get("retries", 0)))
    except (TypeError, ValueError):
        raise UserError(f"{path}: checks.concurrency/timeout_s/retries must be numbers") from None

    db_var = str(data.get("database_url_env", "DATABASE_URL"))
    secret_var = str(data.get("jwt_secret_env", "MSGOPS_JWT_SECRET"))
    result = Target(
        api_url=api_url or env.get("MSGOPS_API_URL") or data.get("api_url"),
        database_url=database_url or env.get(db_var) or None,
        jwt_secret=env.get(secret_var) or env.get("SUPABASE_JWT_SECRET") or None,
        environment=environment or env.get("MSGOPS_ENV") or data.get("environment") or "development",
        repo=rel(data.get("repo")) or Path.cwd(),
        env=inspected_env,
        cors_allowed_origin=cors.get("allowed_origin"),
        cors_disallowed_origin=cors.get("disallowed_origin", "https://attacker.example"),
        load_results=rel(data.get("load_results")),
        waivers=rel(data.get("waivers")),
        attestations=rel(data.get("attestations")),
        checks=check_settings,
        personas=_section(path, data, "personas"),
        api=_section(path, data, "api"),
        realtime=_section(path, data, "realtime"),
        source="flags/environment" + (f" + {path}" if path else ""),
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

checks:
  concurrency: 16                       # checks in flight at once
  timeout_s: 30                         # per check
  retries: 0                            # re-run a check that errored (never one that failed)
"""
