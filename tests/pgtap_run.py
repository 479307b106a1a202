"""pgTAP and pg_prove for the tests: pgTAP's SQL installed into a schema of a test database (the embedded
server has no pgtap extension; Debian's `pgtap` package ships the SQL, which needs no compiled part), and
pg_prove run on a file against that database with the schema on its search_path."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

SCHEMA = "tap"
_SQL_GLOBS = ("/usr/share/postgresql/*/extension/pgtap--*.sql", "/usr/local/share/postgresql/extension/pgtap--*.sql")


def pgtap_sql() -> Path | None:
    """pgTAP's install script (`PGTAP_SQL`, or the newest `pgtap--X.Y.Z.sql` a package installed)."""
    if os.environ.get("PGTAP_SQL"):
        given = Path(os.environ["PGTAP_SQL"])
        return given if given.is_file() else None
    found = [p for g in _SQL_GLOBS for p in Path("/").glob(g.lstrip("/"))
             if re.fullmatch(r"pgtap--\d+\.\d+\.\d+\.sql", p.name)]
    return max(found, key=lambda p: tuple(int(x) for x in re.findall(r"\d+", p.name)), default=None)


def require_pg_prove() -> tuple[str, Path]:
    """pg_prove and pgTAP's SQL, or a skip; a failure when MSGOPS_REQUIRE_PGTAP is set (CI installs them)."""
    prove, script = shutil.which("pg_prove"), pgtap_sql()
    if prove and script:
        return prove, script
    missing = " and ".join(x for x, ok in (("pg_prove", prove), ("pgTAP's SQL", script)) if not ok)
    if os.environ.get("MSGOPS_REQUIRE_PGTAP"):
        pytest.fail(f"{missing} required (MSGOPS_REQUIRE_PGTAP is set) but not installed")
    pytest.skip(f"{missing} not installed (apt-get install pgtap libtap-parser-sourcehandler-pgtap-perl)")


def install_pgtap(url: str, script: Path) -> None:
    """pgTAP's functions in their own schema (the extension script is plain SQL once it runs there)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"create schema if not exists {SCHEMA}")
        with conn.transaction():
            conn.execute(f"set local search_path to {SCHEMA}")
            # a source checkout's script names its schema as a placeholder; a packaged one has none
            conn.execute(script.read_text().replace("@extschema@", SCHEMA).encode())


def pg_prove(prove: str, url: str, file: Path) -> subprocess.CompletedProcess[str]:
    info = psycopg.conninfo.conninfo_to_dict(url)
    env = {**os.environ, "PGOPTIONS": f"-c search_path=public,{SCHEMA}"}
    if info.get("password"):
        env["PGPASSWORD"] = str(info["password"])
    command = [prove, "--verbose", "-h", str(info.get("host", "localhost")), "-p", str(info.get("port", 5432)),
               "-U", str(info.get("user", "postgres")), "-d", str(info["dbname"]), str(file)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
