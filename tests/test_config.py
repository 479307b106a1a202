"""msgops.yaml as a user meets it: found upward or through MSGOPS_TARGET, every bad value reported in one
line with exit 3, URLs checked wherever they come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from msgops import config
from msgops.config import Scope, find_config, resolve
from msgops.errors import UserError
from msgops.settings_model import Settings
from msgops.validation import model_at
from tests.test_cli import assert_one_line_error, msgops

NO_ENV: dict[str, str] = {}


def write(directory: Path, text: str, name: str = "msgops.yaml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(UserError) as info:
        resolve(path, environ=NO_ENV, cwd=path.parent)
    assert info.value.exit_code == 3
    message = str(info.value)
    assert "\n" not in message
    return message


# The cases a user met, through the real command line ---------------------------------------------

CLI_CASES = [
    ("checks: 5\n", "checks: must be a mapping with keys concurrency, timeout_s, retries (got 5)"),
    ("cors: [a]\n", "cors: must be a mapping with keys allowed_origin, disallowed_origin (got ['a'])"),
    ("api_url: 12345\n", "api_url: must be an http(s) URL like https://api.example.com (got 12345)"),
    ("environment: prod\n", "environment: must be one of development, staging, production (got 'prod')"),
    ("checks: {concurrency: 0}\n", "checks.concurrency: must be >= 1 (got 0)"),
    ("checks: {timeout_s: -1}\n", "checks.timeout_s: must be > 0 (got -1)"),
    ("checks: {retries: -1}\n", "checks.retries: must be >= 0 (got -1)"),
    ("concurrency: 0\n", "concurrency: unknown setting (did you mean checks.concurrency?)"),
    ("api_url: http://x\n  nested: [\n", "invalid YAML"),
    ("- api_url: http://x\n", "expected a mapping of settings"),
    ("just text\n", "expected a mapping of settings"),
    ("checks: {concurrency: 0}\nenvironment: prod\napi_url: 12345\n",
     "msgops.yaml: 3 problems: api_url: must be an http(s) URL like https://api.example.com (got 12345); "
     "environment: must be one of development, staging, production (got 'prod'); "
     "checks.concurrency: must be >= 1 (got 0)"),
]


@pytest.mark.parametrize(("text", "expected"), CLI_CASES, ids=[c[0].split(":")[0].strip("- ") for c in CLI_CASES])
def test_a_bad_msgops_yaml_is_one_line_and_exit_3(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    assert_one_line_error(msgops("check", "--target", str(path), cwd=tmp_path), 3, "msgops.yaml", expected)


# A wrong type for every key ------------------------------------------------------------------------


def _keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, field in model.model_fields.items():
        key = (*prefix, field.alias or name)
        out.append(key)
        child = model_at(model, (name,))
        if child is not None:
            out += _keys(child, key)
    return out


EVERY_KEY = _keys(Settings)


def _wrong_value(key: tuple[str, ...]) -> Any:
    """A mapping for every key that is not one, a list for every key that is."""
    takes_mapping = model_at(Settings, key) is not None or key in {("schema",), ("personas",), ("api",), ("realtime",)}
    return [1] if takes_mapping else {"wrong": 1}


def _nested(key: tuple[str, ...], value: Any) -> dict[str, Any]:
    data: Any = value
    for part in reversed(key):
        data = {part: data}
    return data


def test_every_key_is_covered() -> None:
    assert len(EVERY_KEY) >= 20
    assert {("api_url",), ("checks", "concurrency"), ("cors", "allowed_origin"), ("scope", "tags"),
            ("checklists",), ("schema",)} <= set(EVERY_KEY)


@pytest.mark.parametrize("key", EVERY_KEY, ids=[".".join(k) for k in EVERY_KEY])
def test_a_wrong_type_for_any_key_names_it(tmp_path: Path, key: tuple[str, ...]) -> None:
    path = write(tmp_path, yaml.safe_dump(_nested(key, _wrong_value(key))))
    message = error_of(path)
    assert message.startswith(f"{path}: {'.'.join(key)}: must be "), message


def test_a_wrong_type_for_every_key_at_once_through_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from msgops.cli import main

    data: dict[str, Any] = {}
    for key in EVERY_KEY:
        if model_at(Settings, key) is None:  # leaves only: their parents must stay mappings
            section = data
            for part in key[:-1]:
                section = section.setdefault(part, {})
            section[key[-1]] = _wrong_value(key)
    path = write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(SystemExit) as exited:
        main(["check", "--target", str(path)])
    assert exited.value.code == 3
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    leaves = [k for k in EVERY_KEY if model_at(Settings, k) is None]
    assert f"{len(leaves)} problems" in lines[0]
    for key in leaves:
        assert f"{'.'.join(key)}: must be" in lines[0], key


def test_more_bad_values(tmp_path: Path) -> None:
    cases = {
        "scope: {}\n": "scope: a scope names at least one of checklists, tags, only",
        "scope: {tags: [db], reason: 7}\n": "scope.reason: must be a string (got 7)",
        "checklists: [ours.yaml]\n": "checklists[0]: file ",
        "env_file: .env.staging\n": "env_file: file ",
        "cors: {allowed_origin: 'https://app.example.com/login'}\n": "cors.allowed_origin: must be an origin",
        "database_url_env: 'DATABASE URL'\n": "database_url_env: must be an environment variable name",
        "checks: {concurrency: true}\n": "checks.concurrency: must be an integer (got true)",
        "checks: {timeout_s: '30'}\n": "checks.timeout_s: must be a number (got '30')",
        "api_ulr: https://api.example.com\n": "api_ulr: unknown setting (did you mean api_url?)",
        "jwt_secret: hunter2\n": "jwt_secret: secrets are read from the environment only",
    }
    for text, expected in cases.items():
        message = error_of(write(tmp_path, text))
        assert expected in message, (text, message)
    assert "hunter2" not in error_of(write(tmp_path, "jwt_secret: hunter2\n"))


def test_a_good_file_fills_the_target(tmp_path: Path) -> None:
    write(tmp_path, "", "checks/ours.yaml")
    write(tmp_path, "SENTRY_DSN=https://x@sentry.example/1\n", ".env.staging")
    path = write(tmp_path, """
api_url: https://api.example.com
environment: production
env_file: .env.staging
database_url_env: STAGING_DB
cors: {allowed_origin: 'https://app.example.com'}
checks: {concurrency: 4, timeout_s: 2.5, retries: 1}
waivers: waivers.yaml
scope: {tags: [db, rls], reason: the API has its own pipeline}
checklists: [checks/ours.yaml]
schema: {messages: {table: chat_messages}}
repo:
""")
    target = resolve(path, environ={"STAGING_DB": "postgresql://u@db.example/app", "MSGOPS_JWT_SECRET": "s"},
                     cwd=tmp_path / "elsewhere")
    assert target.api_url == "https://api.example.com" and target.environment == "production"
    assert target.database_url == "postgresql://u@db.example/app" and target.jwt_secret == "s"
    assert target.env["SENTRY_DSN"] == "https://x@sentry.example/1"
    assert target.cors_allowed_origin == "https://app.example.com"
    assert (target.checks.concurrency, target.checks.timeout_s, target.checks.retries) == (4, 2.5, 1)
    assert target.waivers == (tmp_path / "waivers.yaml").resolve()
    assert target.scope == Scope(tags=("db", "rls"), reason="the API has its own pipeline")
    assert target.checklists == ((tmp_path / "checks/ours.yaml").resolve(),)
    assert target.schema == {"messages": {"table": "chat_messages"}}
    assert target.config_path == path.resolve() and target.repo == tmp_path.resolve()  # `repo:` empty: not set


def test_init_template_is_valid(tmp_path: Path) -> None:
    target = resolve(write(tmp_path, config.INIT_TEMPLATE), environ=NO_ENV)
    assert target.scope is None and target.checklists == ()


# Finding msgops.yaml ---------------------------------------------------------------------------


def test_msgops_yaml_is_found_upward_and_the_search_stops_at_git(tmp_path: Path) -> None:
    project = tmp_path / "project"
    found = write(project, "environment: staging\n")
    deep = project / "src" / "app"
    deep.mkdir(parents=True)
    assert find_config(environ=NO_ENV, cwd=deep) == found
    assert resolve(environ=NO_ENV, cwd=deep).environment == "staging"

    (project / "src" / ".git").mkdir()  # a repository inside: its root is where the search ends
    assert find_config(environ=NO_ENV, cwd=deep) is None
    write(project / "src", "environment: production\n")
    assert find_config(environ=NO_ENV, cwd=deep) == project / "src" / "msgops.yaml"


def test_msgops_target_names_the_file_and_target_flag_wins(tmp_path: Path) -> None:
    upward = write(tmp_path, "environment: development\n")
    named = write(tmp_path / "deploy", "environment: staging\n", "staging.yaml")
    flag = write(tmp_path / "deploy", "environment: production\n", "prod.yaml")
    assert find_config(environ={"MSGOPS_TARGET": str(named)}, cwd=tmp_path) == named
    relative = find_config(environ={"MSGOPS_TARGET": "deploy/staging.yaml"}, cwd=tmp_path)
    assert relative == tmp_path / "deploy/staging.yaml"
    assert find_config(flag, environ={"MSGOPS_TARGET": str(named)}, cwd=tmp_path) == flag
    assert find_config(environ=NO_ENV, cwd=tmp_path) == upward
    with pytest.raises(UserError, match=r"MSGOPS_TARGET=nope\.yaml: no such file"):
        find_config(environ={"MSGOPS_TARGET": "nope.yaml"}, cwd=tmp_path)


def test_the_command_line_finds_msgops_yaml_upward_and_through_msgops_target(tmp_path: Path) -> None:
    write(tmp_path, "environment: prod\n")
    sub = tmp_path / "services" / "chat"
    sub.mkdir(parents=True)
    assert_one_line_error(msgops("check", cwd=sub), 3, f"{tmp_path / 'msgops.yaml'}: environment: must be one of")
    other = write(tmp_path / "deploy", "checks: {retries: -2}\n", "staging.yaml")
    assert_one_line_error(msgops("check", cwd=sub, env={"MSGOPS_TARGET": str(other)}), 3,
                          "staging.yaml: checks.retries: must be >= 0 (got -2)")


# URLs and other values from flags and the environment -------------------------------------------


@pytest.mark.parametrize(("kwargs", "environ", "expected"), [
    ({"api_url": "foo"}, {}, "--api-url: must be an http(s) URL like https://api.example.com (got 'foo')"),
    ({"api_url": "localhost:8000"}, {}, "--api-url: must be an http(s) URL"),
    ({"api_url": "http://:80"}, {}, "--api-url: must be an http(s) URL"),
    ({"api_url": "http://host:port"}, {}, "its port is not a number"),
    ({}, {"MSGOPS_API_URL": "ftp://files"}, "MSGOPS_API_URL: must be an http(s) URL"),
    ({"database_url": "foo"}, {}, "--database-url: must be a PostgreSQL URL"),
    ({"database_url": "mysql://u:hunter2@h/db"}, {}, "--database-url: must be a PostgreSQL URL"),
    ({}, {"DATABASE_URL": "not a url"}, "DATABASE_URL: must be a PostgreSQL URL"),
    ({}, {"MSGOPS_ENV": "prod"}, "MSGOPS_ENV: must be one of development, staging, production (got 'prod')"),
])
def test_bad_urls_from_flags_and_environment(tmp_path: Path, kwargs: dict[str, str], environ: dict[str, str],
                                             expected: str) -> None:
    with pytest.raises(UserError) as info:
        resolve(environ=environ, cwd=tmp_path, data_dir=tmp_path / ".msgops", **kwargs)
    assert expected in str(info.value) and info.value.exit_code == 3
    assert "hunter2" not in str(info.value)


def test_good_urls_pass(tmp_path: Path) -> None:
    target = resolve(api_url="https://api.example.com/v1", database_url="host=127.0.0.1 dbname=app",
                     environ={"MSGOPS_ENV": "staging"}, cwd=tmp_path)
    assert target.api_url == "https://api.example.com/v1" and target.database_url == "host=127.0.0.1 dbname=app"
    assert target.environment == "staging" and target.config_path is None and target.scope is None


def test_bad_urls_on_the_command_line_exit_3(tmp_path: Path) -> None:
    assert_one_line_error(msgops("check", "--api-url", "foo", cwd=tmp_path), 3, "--api-url: must be an http(s) URL")
    assert_one_line_error(msgops("check", "--database-url", "foo", cwd=tmp_path), 3,
                          "--database-url: must be a PostgreSQL URL")
    assert_one_line_error(msgops("load", "--api-url", "foo", cwd=tmp_path), 3, "--api-url: must be an http(s) URL")
    assert_one_line_error(msgops("db", "url", "--database-url", "foo", cwd=tmp_path), 3,
                          "Invalid value for '--database-url'", "must be a PostgreSQL URL")
