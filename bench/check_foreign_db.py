"""Wall time of `msgops check` with only DATABASE_URL set, against one schema of tests/corpus.

    python bench/check_foreign_db.py                         # recursive_participants, 5 runs
    python bench/check_foreign_db.py team_channels --runs 9

Starts an embedded PostgreSQL, applies tests/corpus/supabase_stub.sql and the schema, then times fresh
`msgops check` processes (no API, no secret: the database items run, the rest skip) as a user sees them.
Printed beside it, in the same run: the baseline of starting Python and importing msgops.cli.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from msgops.embedded import EmbeddedPostgres

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus"


def timed(cmd: list[str], env: dict[str, str], cwd: str) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - started, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("schema", nargs="?", default="recursive_participants")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    server = EmbeddedPostgres(Path(tempfile.mkdtemp()), settings={"fsync": "off"})
    server.start()
    try:
        admin = server.admin_url("postgres")
        name = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"create database {name}".encode())
        url = psycopg.conninfo.make_conninfo(admin, dbname=name)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute((CORPUS / "supabase_stub.sql").read_text().encode())
            conn.execute((CORPUS / args.schema / "schema.sql").read_text().encode())
        env = {k: v for k, v in os.environ.items() if not k.startswith("MSGOPS") and k != "SUPABASE_JWT_SECRET"}
        env["DATABASE_URL"] = url
        cwd = tempfile.mkdtemp()
        check = [sys.executable, "-m", "msgops.cli", "check", "-q"]
        timed(check, env, cwd)  # warm the OS caches
        walls, codes = zip(*(timed(check, env, cwd) for _ in range(args.runs)), strict=True)
        imports = [timed([sys.executable, "-c", "import msgops.cli"], env, cwd)[0] for _ in range(args.runs)]
        print(f"msgops check, DATABASE_URL only, schema {args.schema}: median {statistics.median(walls):.2f} s, "
              f"min {min(walls):.2f} s, max {max(walls):.2f} s over {args.runs} runs (exit {sorted(set(codes))})")
        print(f"baseline, python -c 'import msgops.cli': median {statistics.median(imports):.2f} s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
