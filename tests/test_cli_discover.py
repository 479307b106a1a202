"""`msgops discover`: prints the model with its reasons and keeps it under schema: in msgops.yaml (the rest
of the file untouched); the checks then read the written model."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import yaml
from typer.testing import CliRunner

from msgops.cli import app
from msgops.config import resolve
from tests.corpus_check import CORPUS


def test_discover_prints_the_model_and_writes_it(new_database: Callable[..., str], tmp_path: Path) -> None:
    url = new_database(migrated=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((CORPUS / "supabase_stub.sql").read_text().encode())
        conn.execute((CORPUS / "team_channels" / "schema.sql").read_text().encode())
    target = tmp_path / "msgops.yaml"
    target.write_text("# my target\napi_url: http://127.0.0.1:9\nschema:\n  rooms: []\nchecks:\n  concurrency: 4\n")
    result = CliRunner().invoke(app, ["discover", "--database-url", url, "--config", str(target)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "membership public.team_channel_members (channel_id, user_id)" in out
    assert "public.team_channel_members.channel_id references public.team_channels" in out
    assert "users public.users.id (auth id in auth_id)" in out
    text = target.read_text()
    assert text.startswith("# my target\napi_url: http://127.0.0.1:9\n") and "concurrency: 4" in text
    data = yaml.safe_load(text)
    assert data["schema"]["messages"][0]["table"] == "public.team_messages"
    assert data["checks"] == {"concurrency": 4}
    again = CliRunner().invoke(app, ["discover", "--database-url", url, "--config", str(target)])
    assert again.exit_code == 0 and target.read_text().count("schema:") == 1
    assert resolve(target, environ={"DATABASE_URL": url}).schema == data["schema"]


def test_discover_without_a_database_is_one_line_and_non_zero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("MSGOPS")}
    done = subprocess.run([sys.executable, "-m", "msgops.cli", "discover", "--no-write"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "DATABASE_URL" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
