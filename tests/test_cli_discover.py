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
from msgops.dbmodel.pgtap import ENSURE_PGTAP
from tests.corpus_check import CORPUS


def test_discover_prints_the_model_and_writes_it(new_database: Callable[..., str], tmp_path: Path) -> None:
    url = new_database(migrated=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((CORPUS / "supabase_stub.sql").read_text().encode())
        conn.execute((CORPUS / "team_channels" / "schema.sql").read_text().encode())
    target = tmp_path / "msgops.yaml"
    target.write_text("# my target\napi_url: http://127.0.0.1:9\nschema:\n  rooms: []\nchecks:\n  concurrency: 4\n")
    kept = CliRunner().invoke(app, ["discover", "--database-url", url, "--config", str(target)])
    assert kept.exit_code == 0 and "using the schema: section" in kept.output, kept.output
    assert "rooms: []" in target.read_text()  # a person's section is not overwritten unless asked
    result = CliRunner().invoke(app, ["discover", "--database-url", url, "--config", str(target), "--write"])
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
    again = CliRunner().invoke(app, ["discover", "--database-url", url, "--config", str(target), "--write"])
    assert again.exit_code == 0 and target.read_text().count("schema:") == 1
    assert resolve(target, environ={"DATABASE_URL": url}).schema == data["schema"]


def test_discover_without_a_database_is_one_line_and_non_zero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("MSGOPS")}
    done = subprocess.run([sys.executable, "-m", "msgops.cli", "discover", "--no-write"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "DATABASE_URL" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def _run_pgtap(url: str, text: str) -> list[tuple[bool, str]]:
    """Run a generated file with stand-ins for pgTAP's plan/ok/finish that report each test as a notice."""
    seen: list[tuple[bool, str]] = []
    stub = """
    create or replace function pg_temp.plan(integer) returns text language sql as $$ select 'plan' $$;
    create or replace function public.ok(boolean, text) returns text language plpgsql as $$
    begin raise notice 'tap|%|%', $1, $2; return 'ok'; end $$;
    create or replace function public.skip(text, integer) returns text language plpgsql as $$
    begin raise notice 'tap|t|skipped: %', $1; return 'ok'; end $$;
    create or replace function pg_temp.finish() returns setof text language sql as $$ select 'done' $$;
    """
    body = (text.replace(ENSURE_PGTAP, stub)
            .replace("select plan(", "select pg_temp.plan(").replace("from finish()", "from pg_temp.finish()"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: seen.append(((d.message_primary or "").split("|")[1] == "t" and True)
                                                      or False) if False else None)
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute(body.encode())
    for n in notices:
        if n.startswith("tap|"):
            _, passed, what = n.split("|", 2)
            seen.append((passed == "t", what))
    return seen


def test_the_matrix_exported_as_pgtap_replays_and_finds_the_same_hole(new_database: Callable[..., str],
                                                                      tmp_path: Path) -> None:
    url = new_database(migrated=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((CORPUS / "supabase_stub.sql").read_text().encode())
        conn.execute((CORPUS / "team_channels" / "schema.sql").read_text().encode())
    tap, saved = tmp_path / "rls.sql", tmp_path / "matrix.json"
    done = CliRunner().invoke(app, ["discover", "--database-url", url, "--no-write", "--pgtap", str(tap),
                                    "--save-matrix", str(saved)])
    assert done.exit_code == 0, done.output
    results = _run_pgtap(url, tap.read_text())
    assert len(results) == tap.read_text().count("ok(msgops_tap.cell(") > 10
    failing = [what for passed, what in results if not passed]
    assert failing == ["member sends to public.team_messages as another user (sender_id forged): denied"], failing

    # the policy gets worse: an outsider may now read every channel's messages -> a regression
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create policy leak on public.team_messages for select to authenticated using (true)")
    again = CliRunner().invoke(app, ["discover", "--database-url", url, "--no-write", "--baseline", str(saved)])
    assert again.exit_code == 1, again.output
    assert "regression: outsider|select|public.team_messages" in " ".join(again.output.split())
