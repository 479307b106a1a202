"""The RLS matrix exported as pgTAP (`msgops discover --pgtap`) under a real pg_prove: every cell passes on
the reference database and on a corpus schema; a broken policy makes pg_prove exit non-zero naming the cell."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
from typer.testing import CliRunner

from msgops.cli import app
from tests.pgtap_run import install_pgtap, pg_prove, require_pg_prove
from tests.test_corpus import apply

NewDatabase = Callable[..., str]


def export(url: str, file: Path) -> int:
    done = CliRunner().invoke(app, ["discover", "--database-url", url, "--no-write", "--pgtap", str(file)])
    assert done.exit_code == 0, done.output
    return file.read_text().count("select ok(")


def test_the_reference_matrix_passes_under_pg_prove_and_a_broken_policy_fails(new_database: NewDatabase,
                                                                             tmp_path: Path) -> None:
    prove, script = require_pg_prove()
    url = new_database()
    install_pgtap(url, script)
    tap = tmp_path / "reference.sql"
    cells = export(url, tap)
    ran = pg_prove(prove, url, tap)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"ok {cells} - " in ran.stdout and "All tests successful" in ran.stdout, ran.stdout

    # an outsider may now read every conversation's messages: the same file, run again, names that cell
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create policy leak on public.messages for select to authenticated using (true)")
    ran = pg_prove(prove, url, tap)
    assert ran.returncode != 0
    failed = [line for line in ran.stdout.splitlines() if line.startswith("not ok")]
    assert failed and all("public.messages" in line for line in failed), ran.stdout
    assert any("outsider" in line and "denied" in line for line in failed), failed


def test_a_corpus_matrix_passes_under_pg_prove(new_database: NewDatabase, tmp_path: Path) -> None:
    prove, script = require_pg_prove()
    url = apply(new_database, "listing_participants")
    install_pgtap(url, script)
    tap = tmp_path / "corpus.sql"
    cells = export(url, tap)
    ran = pg_prove(prove, url, tap)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"ok {cells} - " in ran.stdout, ran.stdout
