"""The command line as a user meets it: real processes, real exit codes, one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support import free_port

MSGOPS = [sys.executable, "-m", "msgops.cli"]


def msgops(*args: str, cwd: Path, env: dict[str, str] | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MSGOPS_JWT_SECRET")}
    full_env.update(env or {})
    return subprocess.run([*MSGOPS, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("service did not become healthy")


def postgres_running(data_dir: Path) -> bool:
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_serve_on_embedded_postgres_stops_cleanly_and_reuses_data(tmp_path: Path):
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MSGOPS_JWT_SECRET")}

    def start() -> subprocess.Popen:
        return subprocess.Popen([*MSGOPS, "serve", "--port", str(port), "--data-dir", str(data_dir)], cwd=tmp_path,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    first = start()
    try:
        wait_healthy(url, first)
        token = msgops("token", "--data-dir", str(data_dir), cwd=tmp_path)
        assert token.returncode == 0, token.stderr
        me = httpx.get(url + "/me", headers={"Authorization": f"Bearer {token.stdout.strip()}"})
        assert me.status_code == 200
        created = me.json()["created_at"]
        sub = jwt.decode(token.stdout.strip(), options={"verify_signature": False})["sub"]
    finally:
        first.send_signal(signal.SIGINT)
        out, _ = first.communicate(timeout=30)
    assert first.returncode == 0, out
    assert "msgops service stopped" in out and "Traceback" not in out
    assert not postgres_running(data_dir), "Ctrl-C must stop the embedded PostgreSQL it started"
    assert (data_dir / "jwt_secret").stat().st_mode & 0o077 == 0

    second = start()
    try:
        wait_healthy(url, second)
        token = msgops("token", "--sub", sub, "--data-dir", str(data_dir), cwd=tmp_path)
        me = httpx.get(url + "/me", headers={"Authorization": f"Bearer {token.stdout.strip()}"})
        assert me.status_code == 200 and me.json()["created_at"] == created, "the second start reuses the data"
    finally:
        second.send_signal(signal.SIGTERM)  # systemd, docker stop: the same clean stop as Ctrl-C
        out, _ = second.communicate(timeout=30)
    assert "applied" not in out.split("database:")[1].splitlines()[0], "no migration is applied twice"
    assert second.returncode == 0 and "msgops service stopped" in out, out
    assert not postgres_running(data_dir), "SIGTERM must stop the embedded PostgreSQL too"


def test_serve_refuses_a_busy_port_in_one_line(tmp_path: Path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = msgops("serve", "--port", str(port), "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert_one_line_error(proc, 3, f"127.0.0.1:{port}", "--port")


def test_serve_with_unreachable_database_names_it(tmp_path: Path):
    proc = msgops("serve", "--port", str(free_port()), "--database-url",
                  "postgresql://u:hunter2@127.0.0.1:1/db", cwd=tmp_path)
    assert_one_line_error(proc, 3, "cannot connect to postgresql://u:****@127.0.0.1:1/db", "DATABASE_URL")
    assert "hunter2" not in proc.stderr


def test_token_without_a_secret_says_how_to_get_one(tmp_path: Path):
    assert_one_line_error(msgops("token", "--data-dir", str(tmp_path), cwd=tmp_path), 3,
                          "MSGOPS_JWT_SECRET", "msgops serve")
    assert_one_line_error(msgops("token", "--sub", "nope", cwd=tmp_path, env={"MSGOPS_JWT_SECRET": "s"}), 3,
                          "--sub must be a UUID")


def test_token_is_accepted_by_the_service(service, tmp_path: Path):
    from tests.support import JWT_SECRET

    proc = msgops("token", "--ttl", "60", cwd=tmp_path, env={"MSGOPS_JWT_SECRET": JWT_SECRET})
    assert proc.returncode == 0
    claims = jwt.decode(proc.stdout.strip(), JWT_SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["role"] == "authenticated" and claims["exp"] - claims["iat"] == 60
    r = service.http.get("/me", headers={"Authorization": f"Bearer {proc.stdout.strip()}"})
    assert r.status_code == 200


def test_check_rejects_bad_configuration_with_exit_3(tmp_path: Path):
    bad = tmp_path / "msgops.yaml"
    bad.write_text("api_url: http://x\n  nested: [\n")
    assert_one_line_error(msgops("check", "--target", str(bad), cwd=tmp_path), 3, "msgops.yaml:", "invalid YAML")
    bad.write_text("api_url: http://x\ndatabase_url: postgresql://secret@h/db\n")
    assert_one_line_error(msgops("check", "--target", str(bad), cwd=tmp_path), 3, "environment only")
    assert_one_line_error(msgops("check", "--target", str(tmp_path / "missing.yaml"), cwd=tmp_path), 3,
                          "msgops init")
    bad.unlink()
    assert_one_line_error(msgops("check", "--fail-on", "urgent", cwd=tmp_path), 3, "unknown severity urgent")
    assert_one_line_error(msgops("check", "--only", "no/such-item", cwd=tmp_path), 3, "no item 'no/such-item'")
    assert_one_line_error(msgops("check", "--checklist", "nope", cwd=tmp_path), 3, "no built-in checklist 'nope'")


def test_check_against_an_unreachable_target_names_it_once_and_exits_2(tmp_path: Path):
    api, db = free_port(), free_port()  # nothing listens on either
    proc = msgops("check", "-c", "000-messaging-production", "--api-url", f"http://127.0.0.1:{api}",
                  "--database-url", f"postgresql://probe:secret@127.0.0.1:{db}/app", "--json", "out.json",
                  cwd=tmp_path, env={"MSGOPS_JWT_SECRET": "cli-test-secret-0123456789abcdef0123456789",
                                     "COLUMNS": "200"})
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr and "secret@" not in proc.stdout
    out = " ".join(proc.stdout.split())  # rich wraps long lines
    assert f"cannot connect to PostgreSQL at postgresql://probe:****@127.0.0.1:{db}/app (Connection refused)" in out
    assert f"cannot reach the API at http://127.0.0.1:{api} (Connection refused)" in out
    assert "items could not be evaluated" in out and "DATABASE_URL" in out and "MSGOPS_API_URL" in out
    import json

    results = json.loads((tmp_path / "out.json").read_text())["results"]
    by_kind = {r["kind"].split(".")[0]: r for r in results if r["kind"]}
    assert by_kind["db"]["status"] == by_kind["http"]["status"] == by_kind["realtime"]["status"] == "error"
    assert by_kind["db"]["evidence"] == {"unreachable": True}
    assert by_kind["env"]["status"] != "error"  # checks that need neither endpoint still ran


def test_init_writes_a_target_file_that_loads(tmp_path: Path):
    proc = msgops("init", cwd=tmp_path)
    assert proc.returncode == 0
    from msgops.config import resolve

    target = resolve(tmp_path / "msgops.yaml", environ={})
    assert target.api_url == "http://127.0.0.1:8000" and target.environment == "staging"
    assert_one_line_error(msgops("init", cwd=tmp_path), 3, "--force")
