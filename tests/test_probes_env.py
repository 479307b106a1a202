"""env probes: environment variables (values never shown) and git repositories built here."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from msgops import probes
from msgops.config import Target
from msgops.probes import Context, NotRun, Skip
from msgops.probes import env as env_family  # importing registers the family, whatever was imported first
from msgops.results import Outcome
from service.auth import mint_token
from tests.support import JWT_SECRET, RunningService

SECRET_VALUE = "s3cr3t-value-that-must-never-appear-9f8e7d6c"


async def run(kind: str, target: Target, **params: Any) -> Outcome:
    ctx = Context(target)
    implementation = probes.get(kind)
    assert implementation is not None and implementation.fn.__module__.startswith(env_family.__name__), kind
    try:
        return await implementation.fn(ctx, **params)
    finally:
        await ctx.close()


def env_target(env: dict[str, str] | None = None, **fields: Any) -> Target:
    return Target(env=env or {}, **fields)


# --- env.vars ----------------------------------------------------------------------------------


async def test_vars_supplied_by_a_local_target_pass(service: RunningService) -> None:
    target = Target(api_url=service.url, database_url=service.database_url, jwt_secret=JWT_SECRET)
    out = await run("env.vars", target, vars=["DATABASE_URL", "MSGOPS_API_URL", ["JWT_SECRET", "SUPABASE_JWT_SECRET"]])
    assert out.status == "pass", out.message
    assert {p["name"]: p["source"] for p in out.evidence["present"]} == {
        "DATABASE_URL": "target database_url", "MSGOPS_API_URL": "target api_url", "JWT_SECRET": "target jwt_secret"}
    assert JWT_SECRET not in repr(out.evidence) and service.database_url not in repr(out.evidence)


async def test_core_variable_missing_fails() -> None:
    out = await run("env.vars", env_target({"APP_SECRET": SECRET_VALUE}), vars=["APP_SECRET", "DATABASE_URL"])
    assert out.status == "fail"
    assert out.evidence["missing"] == ["DATABASE_URL"]
    assert out.evidence["present"] == [{"name": "APP_SECRET", "source": "environment"}]
    assert SECRET_VALUE not in repr(out.evidence) + out.message


async def test_empty_or_placeholder_values_fail() -> None:
    env = {"REDIS_HOST": "   ", "REDIS_PORT": "6379", "AWS_ACCESS_KEY_ID": "your_access_key"}
    out = await run("env.vars", env_target(env), vars=["REDIS_HOST", "REDIS_PORT", "AWS_ACCESS_KEY_ID"])
    assert out.status == "fail"
    assert out.evidence["missing"] == ["REDIS_HOST"]
    assert out.evidence["placeholder_values"] == ["AWS_ACCESS_KEY_ID"]


async def test_unused_vendor_is_not_configured_skip() -> None:
    with pytest.raises(Skip, match="CLERK_SECRET_KEY: not configured for this target"):
        await run("env.vars", env_target({"DATABASE_URL": "postgres://db/x"}), vars=["CLERK_SECRET_KEY"])
    with pytest.raises(Skip, match="SUPABASE_SERVICE_ROLE_KEY or SUPABASE_KEY: not configured"):
        await run("env.vars", env_target(), vars=[["SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_KEY"]])


async def test_vendor_tool_settings_do_not_make_a_vendor_used() -> None:
    with pytest.raises(Skip, match="AWS_REGION: not configured for this target"):
        await run("env.vars", env_target({"AWS_CA_BUNDLE": "/etc/ssl/ca.pem"}), vars=["AWS_REGION"])
    out = await run("env.vars", env_target({"AWS_S3_BUCKET": "b"}), vars=["AWS_REGION"])
    assert out.status == "fail" and out.evidence["missing"] == ["AWS_REGION"]


async def test_used_vendor_missing_a_variable_fails() -> None:
    env = {"SUPABASE_URL": "https://abc.supabase.co"}
    out = await run("env.vars", env_target(env), vars=["SUPABASE_URL", ["SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_KEY"]])
    assert out.status == "fail"
    assert out.evidence["missing"] == ["SUPABASE_SERVICE_ROLE_KEY | SUPABASE_KEY"]


async def test_present_core_with_unused_vendor_passes_noting_it() -> None:
    out = await run("env.vars", env_target({"DATABASE_URL": "postgres://db/x"}), vars=["DATABASE_URL", "REDIS_HOST"])
    assert out.status == "pass"
    assert out.evidence["not_configured"] and "REDIS_HOST" in out.evidence["not_configured"][0]


# --- env.url -------------------------------------------------------------------------------------


async def test_url_from_the_reference_target_passes(service: RunningService) -> None:
    target = Target(api_url=service.url, database_url=service.database_url)
    out = await run("env.url", target, var="DATABASE_URL", schemes=["postgres", "postgresql"])
    assert out.status == "pass", out.message
    assert out.evidence["host"] == "127.0.0.1" and out.evidence["source"] == "target database_url"
    out = await run("env.url", target, var="MSGOPS_API_URL", schemes=["http", "https"])
    assert out.status == "pass"


@pytest.mark.parametrize(("value", "schemes", "problem"), [
    ("abc.supabase.co/project", None, "has no scheme"),
    ("https:///nohost", None, "has no host"),
    ("https://abc.supabase.co:notaport", None, "cannot be parsed"),
    ("https://abc.supabase.co /x", None, "whitespace"),
    ("http://abc.supabase.co", ["https"], "expected https"),
])
async def test_malformed_url_fails_naming_the_variable(value: str, schemes: list[str] | None, problem: str) -> None:
    out = await run("env.url", env_target({"SUPABASE_URL": value}), var="SUPABASE_URL", schemes=schemes)
    assert out.status == "fail"
    assert out.evidence["var"] == "SUPABASE_URL" and problem in out.message


async def test_url_unset_core_fails_vendor_skips() -> None:
    out = await run("env.url", env_target(), var="DATABASE_URL", schemes=["postgresql"])
    assert out.status == "fail" and out.evidence == {"var": "DATABASE_URL"}
    with pytest.raises(Skip, match="NEXT_PUBLIC_APP_URL: not configured for this target"):
        await run("env.url", env_target(), var="NEXT_PUBLIC_APP_URL", schemes=["https"])


async def test_url_never_shows_the_password() -> None:
    env = {"DATABASE_URL": f"postgresql://app:{SECRET_VALUE}@db.example.com:5432/app?sslmode=require"}
    out = await run("env.url", env_target(env), var="DATABASE_URL", schemes=["postgresql"])
    assert out.status == "pass"
    assert SECRET_VALUE not in repr(out.evidence) + out.message
    assert out.evidence["sslmode"] == "require"


# --- env.service_key -----------------------------------------------------------------------------


def supabase_key(role: str, ttl: int = 10 * 365 * 86400) -> str:
    return mint_token(SECRET_VALUE, uuid.uuid4(), role=role, ttl=ttl, extra={"iss": "supabase"})


async def test_service_role_key_passes() -> None:
    key = supabase_key("service_role")
    out = await run("env.service_key", env_target({"SUPABASE_KEY": key}), var="SUPABASE_KEY")
    assert out.status == "pass"
    assert out.evidence["role"] == "service_role" and key not in repr(out.evidence)


async def test_anon_key_as_service_key_fails() -> None:
    out = await run("env.service_key", env_target({"SUPABASE_KEY": supabase_key("anon")}), var="SUPABASE_KEY")
    assert out.status == "fail"
    assert out.evidence["var"] == "SUPABASE_KEY" and out.evidence["role"] == "anon"


@pytest.mark.parametrize(("value", "problem"), [
    ("not-a-jwt", "not a JWT"), ("a.b.c", "not base64url JSON"), ("sb_publishable_abc123", "publishable"),
])
async def test_unreadable_or_public_keys_fail(value: str, problem: str) -> None:
    out = await run("env.service_key", env_target({"SUPABASE_SERVICE_ROLE_KEY": value}),
                    var="SUPABASE_SERVICE_ROLE_KEY")
    assert out.status == "fail" and problem in out.message


async def test_expired_service_key_fails_and_unset_skips() -> None:
    out = await run("env.service_key", env_target({"SUPABASE_KEY": supabase_key("service_role", ttl=-60)}),
                    var="SUPABASE_KEY")
    assert out.status == "fail" and "expired" in out.message
    with pytest.raises(Skip, match="SUPABASE_KEY is not set"):
        await run("env.service_key", env_target(), var="SUPABASE_KEY")


# --- env.tls_urls --------------------------------------------------------------------------------


async def test_plaintext_production_url_fails() -> None:
    target = Target(api_url="http://api.example.com", environment="production",
                    env={"DATABASE_URL": "postgresql://app@db.example.com/app"})
    out = await run("env.tls_urls", target, vars=["MSGOPS_API_URL", "DATABASE_URL"])
    assert out.status == "fail"
    problems = {row["var"]: row["problem"] for row in out.evidence["checked"]}
    assert "use https://" in problems["MSGOPS_API_URL"] and "sslmode" in problems["DATABASE_URL"]


async def test_tls_everywhere_passes_and_loopback_is_noted() -> None:
    target = Target(api_url="https://api.example.com", environment="staging", database_url="host=127.0.0.1 dbname=x",
                    env={"REALTIME_URL": "wss://api.example.com/realtime"})
    out = await run("env.tls_urls", target, vars=["MSGOPS_API_URL", "REALTIME_URL", "DATABASE_URL", "REDIS_URL"])
    assert out.status == "pass", out.message
    notes = {row["var"]: row.get("note") for row in out.evidence["checked"]}
    assert notes["DATABASE_URL"] and "loopback" in notes["DATABASE_URL"] and notes["MSGOPS_API_URL"] is None
    assert out.evidence["unset"] == ["REDIS_URL"]


async def test_tls_is_not_judged_in_development() -> None:
    with pytest.raises(Skip, match="'development'"):
        await run("env.tls_urls", Target(api_url="http://api.example.com"), vars=["MSGOPS_API_URL"])


# --- env.log_level -------------------------------------------------------------------------------


async def test_log_level_from_environment() -> None:
    out = await run("env.log_level", env_target({"MSGOPS_LOG_LEVEL": "debug"}))
    assert out.status == "fail" and out.evidence == {"source": "MSGOPS_LOG_LEVEL", "observed": "DEBUG",
                                                     "expected": "INFO"}
    assert (await run("env.log_level", env_target({"LOG_LEVEL": "INFO"}))).status == "pass"
    assert (await run("env.log_level", env_target({"LOG_LEVEL": "loud"}))).status == "fail"


async def test_log_level_from_the_services_health(service: RunningService) -> None:
    level = service.settings.log_level  # the test service logs at WARNING
    target = Target(api_url=service.url)
    out = await run("env.log_level", target, expected=level)
    assert out.status == "pass" and out.evidence["source"] == "GET /health log_level"
    other = "INFO" if level != "INFO" else "DEBUG"
    out = await run("env.log_level", target, expected=other)
    assert out.status == "fail" and out.evidence["observed"] == level


async def test_log_level_unknown_is_not_run() -> None:
    with pytest.raises(NotRun, match="MSGOPS_LOG_LEVEL"):
        await run("env.log_level", env_target())


# --- git: a repository per test ------------------------------------------------------------------

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.test", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, env=GIT_ENV, check=True, capture_output=True,
                               text=True).stdout.strip()

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, content in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(content)
            self.git("add", "-f", name)
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "--short", "HEAD")

    @property
    def target(self) -> Target:
        return Target(repo=self.path)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "repo")
    r.commit({".gitignore": ".env\n*.pyc\n", ".env.example": "DATABASE_URL=\n", "app.py": "print('hi')\n"}, "init")
    return r


async def test_dotenv_ignored_passes_on_a_clean_repo(repo: Repo) -> None:
    out = await run("env.dotenv_ignored", repo.target)
    assert out.status == "pass", out.message
    assert out.evidence["ignore_rule"].startswith(".gitignore:1:")


async def test_committed_dotenv_fails(repo: Repo) -> None:
    sha = repo.commit({"config/.env": f"SECRET={SECRET_VALUE}\n"}, "oops")
    out = await run("env.dotenv_ignored", repo.target)
    assert out.status == "fail"
    assert out.evidence["tracked"] == ["config/.env"]
    assert out.evidence["added_in_history"][0] == {"commit": sha, "date": out.evidence["added_in_history"][0]["date"],
                                                   "path": "config/.env"}


async def test_dotenv_deleted_but_in_history_fails(repo: Repo) -> None:
    sha = repo.commit({"production.env": "X=1\n"}, "oops")
    repo.git("rm", "-q", "production.env")
    repo.git("commit", "-q", "-m", "remove")
    out = await run("env.dotenv_ignored", repo.target)
    assert out.status == "fail" and out.evidence["tracked"] == []
    assert [(a["commit"], a["path"]) for a in out.evidence["added_in_history"]] == [(sha, "production.env")]


async def test_dotenv_not_ignored_fails(tmp_path: Path) -> None:
    r = Repo(tmp_path / "r")
    r.commit({"app.py": "x = 1\n"})
    out = await run("env.dotenv_ignored", r.target)
    assert out.status == "fail" and out.evidence["ignored"] is False and ".env is not ignored" in out.message


async def test_not_a_git_repository_skips(tmp_path: Path) -> None:
    with pytest.raises(NotRun, match="not a git repository"):
        await run("env.dotenv_ignored", Target(repo=tmp_path))
    with pytest.raises(NotRun, match="not a git repository"):
        await run("env.no_secrets_in_git", Target(repo=tmp_path))


async def test_history_without_secrets_passes(repo: Repo) -> None:
    repo.commit({
        "settings.py": "JWT_SECRET = os.environ['JWT_SECRET']\nTEST_SECRET = 'test-secret-0123456789abcdef'\n",
        "docker-compose.yml": "DATABASE_URL: postgres://app:devpass@localhost:5432/app\n",
        "deploy.sh": "export DATABASE_URL=postgres://app:${DB_PASSWORD}@db.example.com/app\n",
        "aws.md": "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n",
        "anon.ts": f"const anon = '{supabase_key('anon')}'\n",
        "known.txt": "API_TOKEN=Zq8Xw2Lp9Rt4Vb7Nc3Md  # msgops:allow-secret\n",
    })
    out = await run("env.no_secrets_in_git", repo.target)
    assert out.status == "pass", out.evidence["findings"]
    assert out.evidence["commits_scanned"] == 2


def aws_key() -> str:
    return "AKIA" + uuid.uuid4().hex[:16].upper()


@pytest.mark.parametrize(("path", "content", "pattern"), [
    ("deploy/config.sh", "export AWS_ACCESS_KEY_ID={aws}\n", "aws_access_key_id"),
    ("web/lib/admin.ts", "const key = '{service_jwt}'\n", "service_role_jwt"),
    ("keys/id_rsa", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n", "private_key"),
    ("app/db.py", "URL = 'postgresql://app:Xk29fLq8Zp@db.prod.example.com:5432/app'\n", "postgres_url_password"),
    ("ops/notify.py", "SLACK = 'xoxb-1234567890-abcdefghijkl'\n", "slack_token"),
    ("config/prod.yml", "STRIPE_SECRET_KEY: sk_live_51Hh2kLmN9pQ7rS3tU5v\n", "secret_assignment"),
])
async def test_committed_secret_fails_naming_commit_and_file(repo: Repo, path: str, content: str,
                                                            pattern: str) -> None:
    content = content.format(aws=aws_key(), service_jwt=supabase_key("service_role"))
    sha = repo.commit({path: content}, "add config")
    repo.commit({path: "# moved to the secret store\n"}, "remove it again")
    out = await run("env.no_secrets_in_git", repo.target)
    assert out.status == "fail"
    finding = out.evidence["findings"][0]
    assert (finding["commit"], finding["file"], finding["pattern"]) == (sha, path, pattern)
    assert "…" in finding["match"] or "****" in finding["match"] or pattern == "private_key"
    assert sha in out.message and path in out.message


async def test_secret_on_another_branch_is_found(repo: Repo) -> None:
    repo.git("checkout", "-q", "-b", "feature")
    key = aws_key()
    sha = repo.commit({"feature.env.sh": f"AWS_ACCESS_KEY_ID={key}\n"})
    repo.git("checkout", "-q", "main")
    out = await run("env.no_secrets_in_git", repo.target)
    assert out.status == "fail" and out.evidence["findings"][0]["commit"] == sha
    assert key not in repr(out.evidence)


async def test_allowlisted_fixture_paths_pass_and_say_so(repo: Repo) -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\n-----END RSA PRIVATE KEY-----\n"
    repo.commit({"tests/fixtures/keys.py": f'FAKE = """{key}"""\n'}, "scanner fixtures")
    out = await run("env.no_secrets_in_git", repo.target)
    assert out.status == "fail" and out.evidence["findings"][0]["file"] == "tests/fixtures/keys.py"

    repo.commit({".msgops-allow-secrets": "tests/fixtures/*   # the scanner's own test data\n"}, "allowlist")
    out = await run("env.no_secrets_in_git", repo.target)
    assert out.status == "pass", out.message
    assert out.evidence["allowlist"] == {"file": ".msgops-allow-secrets", "paths": ["tests/fixtures/*"],
                                         "findings_allowed": 1}

    sha = repo.commit({"deploy/key.pem": key}, "a real key elsewhere")
    out = await run("env.no_secrets_in_git", repo.target)
    assert out.status == "fail" and [(f["commit"], f["file"]) for f in out.evidence["findings"]] == [
        (sha, "deploy/key.pem")]


def test_the_shape_of_a_key_in_a_message_is_not_a_key() -> None:
    from msgops.probes.env.secret_patterns import scan_line

    assert not list(scan_line('hint = "export the PEM text (-----BEGIN PRIVATE KEY-----...)"'))
    assert [m.pattern for m in scan_line('KEY = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg"')] == ["private_key"]
