"""Database lints, data-driven like Supabase's splinter: one SQL file per lint in `lints/`, each
returning the same columns (name, level, object, detail), and this tiny runner.

A lint passes when its query returns no row; every row is a finding naming the object. Adding a
lint is adding a file.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from msgops.probes import OneOf, probe
from msgops.probes.context import Context
from msgops.probes.db.catalog import sql_text, trim
from msgops.results import Outcome, failed, passed

LINTS_DIR = Path(__file__).resolve().parent / "lints"
COLUMNS = ("name", "level", "object", "detail")


def lint_names() -> list[str]:
    """The lints there are: one per SQL file in lints/."""
    return sorted(f.stem for f in LINTS_DIR.glob("*.sql"))


@cache
def lint_sql(lint: str) -> str:
    """The query of one lint (from lints/<lint>.sql)."""
    if lint not in lint_names():
        raise ValueError(f"unknown lint {lint!r} (expected one of {', '.join(lint_names())})")
    return (LINTS_DIR / f"{lint}.sql").read_text()


_DOC_KEYS = ("what", "why", "example", "fix")


@cache
def lint_doc(lint: str) -> dict[str, str]:
    """The lint's header: a summary, and what / why / example / fix where the file gives them."""
    doc: dict[str, str] = {}
    key = "summary"
    for line in lint_sql(lint).splitlines():
        if not line.startswith("--"):
            break
        text = line[2:].strip()
        head, _, rest = text.partition(":")
        if head in _DOC_KEYS:
            key, text = head, rest.strip()
        doc[key] = f"{doc[key]} {text}".strip() if key in doc else text
    return doc


async def run_lint(ctx: Context, lint: str) -> list[dict[str, Any]]:
    """The findings of one lint: rows of (name, level, object, detail)."""
    async with ctx.db() as conn:
        # no parameters: the files are plain SQL (runnable in psql), their % signs are literal
        cur = await conn.execute(lint_sql(lint).encode())
        rows = await cur.fetchall()
    return [{c: r[c] for c in COLUMNS} for r in rows]


@probe("db.lint",
       what="Runs one database lint (splinter's ideas in our own SQL): RLS disabled in public, policies on a "
            "table without RLS, RLS without a policy, USING (true) policies, several permissive policies per "
            "role and command, auth.uid() re-evaluated per row, SECURITY DEFINER functions with a mutable "
            "search_path or executable by anon, unindexed foreign keys, duplicate indexes, role-only policies, RLS not "
            "forced, policies reading user_metadata, tables without a primary key, readable email/phone columns.",
       why="Each lint is a mistake that reviews miss and that either leaks data (the security lints) or "
           "slows every request (the performance lints) once tables grow.",
       example="public.room_members has RLS disabled; public.join_any_room(uuid) is SECURITY DEFINER, "
               "executable by anon, without search_path.",
       fix="Each finding's detail names the object; the lint's SQL file (msgops/probes/db/lints/<lint>.sql) "
           "explains the rule and its fix in its header.")
async def lint(ctx: Context, lint: Annotated[str, OneOf(lint_names, "lint")]) -> Outcome:
    findings = await run_lint(ctx, lint)
    evidence = {"lint": lint, "doc": lint_doc(lint), "sql": sql_text(_body(lint_sql(lint))),
                "findings": trim(findings, 50), "count": len(findings)}
    if findings:
        objects = sorted({f["object"] for f in findings})
        shown = ", ".join(objects[:8]) + (f" and {len(objects) - 8} more" if len(objects) > 8 else "")
        return failed(f"{lint}: {len(findings)} finding{'s' if len(findings) != 1 else ''} on {shown}", **evidence)
    return passed(f"{lint}: no findings", **evidence)


def _body(sql: str) -> str:
    """The query without its comments (the files put none inside string literals)."""
    return "\n".join(re.sub(r"--.*$", "", line) for line in sql.splitlines())
