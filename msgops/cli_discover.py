"""`msgops discover`: infer the messaging model of a database, print it with the reasons, and keep it
under `schema:` in msgops.yaml where a person corrects it."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
import yaml
from rich.console import Console
from rich.markup import escape

from msgops import config
from msgops.dbmodel import Model
from msgops.dbmodel import discover as infer_model
from msgops.errors import UserError

console = Console()


def describe(model: Model) -> list[str]:
    """The model as lines a person reads: each part with why it was chosen."""
    lines: list[str] = []
    if model.users:
        auth = f" (auth id in {model.users.auth_column})" if model.users.auth_column else ""
        lines.append(f"users      {model.users.table}.{model.users.key}{auth}: {model.users.reason}")
    for room in model.rooms:
        lines.append(f"room       {room.table}: {room.reason}")
    for m in model.memberships:
        if m.kind == "table":
            what = f"{m.table} ({m.room_column}, {m.user_column})"
        elif m.kind == "columns":
            what = f"{m.room} columns {', '.join(m.user_columns)}"
        elif m.kind == "array":
            what = f"{m.room}.{m.user_column}[]"
        else:
            what = f"none for {m.room}"
        lines.append(f"membership {what}: {m.reason}")
    for msg in model.messages:
        lines.append(f"messages   {msg.table} (sender {msg.sender}, content {msg.content}"
                     + (f", room {msg.room_column}" if msg.room_column else "") + f"): {msg.reason}")
    for s in model.staff:
        granted = f"; policies grant {len(s.grants)} (command, table, role)" if s.grants else \
            "; no policy grants these roles anything"
        lines.append(f"staff      {s.table}.{s.role_column}: {s.reason}{granted}")
    for c in model.contact_columns:
        lines.append(f"contact    {c}")
    lines.extend(f"finding    {f}" for f in model.findings)
    if not model.messages:
        lines.append("finding    no message table found (a text column such as content/message/body next to a "
                     "sender column): write the schema: section by hand")
    return lines


_TOP_KEY = re.compile(r"^[A-Za-z_][\w-]*\s*:")


def write_schema(path: Path, model: Model) -> None:
    """Replace (or add) the top-level `schema:` block of `path`, keeping the rest of the file as it is."""
    block = yaml.safe_dump({"schema": model.to_mapping()}, sort_keys=False, width=110)
    header = "# database model found by `msgops discover`; correct it here (it is read instead of the catalog)\n"
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    kept: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith("schema:"):
            skipping = True
            if kept and kept[-1] == header:
                kept.pop()
            continue
        if skipping and (_TOP_KEY.match(line) or (line.startswith("#") and not line.startswith("# "))):
            skipping = False
        if not skipping:
            kept.append(line)
    text = "".join(kept)
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + header + block)


async def _discover(url: str, written: dict[str, Any] | None) -> Model:
    try:
        async with await psycopg.AsyncConnection.connect(url, connect_timeout=5) as conn:
            return Model.from_mapping(written) if written else await infer_model(conn)
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or ["cannot connect"])[0]
        raise UserError(f"cannot connect to the database ({first}): fix DATABASE_URL or --database-url") from None
    except ValueError as exc:
        raise UserError(f"msgops.yaml {exc}: fix the schema: section, or delete it and run `msgops discover`") \
            from None


async def _matrix(url: str, model: Model, pgtap: Path | None) -> dict[str, str]:
    """Run the matrix (and write the pgTAP file): {cell key: outcome}."""
    from psycopg.rows import tuple_row

    from msgops.dbmodel.pgtap import matrix_file
    from msgops.probes.db.rls_model import run_matrix

    async with await psycopg.AsyncConnection.connect(url, connect_timeout=5, row_factory=tuple_row) as conn:
        if pgtap is not None:
            text, _ = await matrix_file(conn, model)
            pgtap.write_text(text)
        matrix = await run_matrix(conn, model)
        await conn.rollback()
    return {f"{c.persona}|{c.op}|{c.object}|{c.what}": str(seen.outcome) for c, seen in matrix.cells}


def discover(
    database_url: Annotated[str | None, typer.Option("--database-url", envvar="DATABASE_URL",
                                                     help="The PostgreSQL to inspect.", show_default=False)] = None,
    target_file: Annotated[Path | None, typer.Option("--config", "-c",
                                                     help="msgops.yaml to write the schema: section into "
                                                          "[default: ./msgops.yaml].")] = None,
    write: Annotated[bool | None, typer.Option("--write/--no-write",
                                               help="Write the model under schema: in msgops.yaml [default: write "
                                                    "unless the file already has a schema: section, which is then "
                                                    "used as written].", show_default=False)] = None,
    pgtap: Annotated[Path | None, typer.Option("--pgtap", help="Export the RLS matrix as a pgTAP file (run it with "
                                               "pg_prove).", show_default=False)] = None,
    save_matrix: Annotated[Path | None, typer.Option("--save-matrix", help="Save this run's matrix (JSON) as a "
                                                     "baseline.", show_default=False)] = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="Compare the matrix with a saved one; a cell "
                                                  "that turned from denied to allowed is a regression (exit 1).",
                                                  show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only regressions and errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print the schema: section as YAML.")]
    = False,
) -> None:
    """Infer the messaging model (rooms, membership, messages, users, staff) and say why.

    The model is written under schema: in msgops.yaml, where you correct it; the database checks read it
    from there. The RLS matrix generated from it can be kept as a pgTAP file or a baseline.

    Examples:

      msgops discover --database-url postgresql://postgres@localhost:54322/postgres

      msgops discover --no-write -v                       # print the model and its YAML, write nothing

      msgops discover --pgtap supabase/tests/rls_matrix.sql

      msgops discover --save-matrix rls.json && msgops discover --baseline rls.json
    """
    path = target_file if target_file and target_file.exists() else None
    target = config.resolve(path, database_url=database_url)
    if not target.database_url:
        raise UserError("no database to inspect: set DATABASE_URL or pass --database-url")
    written = dict(target.schema) if target.schema and not write else None
    if write is None:
        write = written is None
    if written:
        Console(quiet=quiet).print(f"using the schema: section of {path} (pass --write to discover it again)",
                                   highlight=False)
    model = asyncio.run(_discover(target.database_url, written))
    say = Console(quiet=quiet)
    for line in describe(model):
        say.print(escape(line), highlight=False, soft_wrap=True)
    if verbose:
        say.print(escape(yaml.safe_dump({"schema": model.to_mapping()}, sort_keys=False, width=110)),
                  highlight=False)
    if write:
        out = target_file or Path(config.CONFIG_FILE)
        write_schema(out, model)
        say.print(f"wrote the model under schema: in {out}; correct it there", highlight=False)
    if not (pgtap or save_matrix or baseline):
        return
    if baseline is not None and not baseline.exists():
        raise UserError(f"--baseline {baseline}: no such file (write one with --save-matrix)")
    cells = asyncio.run(_matrix(target.database_url, model, pgtap))
    if pgtap:
        say.print(f"wrote {len(cells)} matrix cells as pgTAP tests to {pgtap}", highlight=False)
    if save_matrix:
        save_matrix.write_text(json.dumps(cells, indent=1, sort_keys=True) + "\n")
        say.print(f"saved the matrix ({len(cells)} cells) to {save_matrix}", highlight=False)
    if baseline is not None:
        from msgops.dbmodel.pgtap import regressions

        try:
            saved = json.loads(baseline.read_text())
        except ValueError:
            raise UserError(f"--baseline {baseline}: not a saved matrix (JSON); write one with --save-matrix") \
                from None
        worse = regressions(saved, cells)
        for key in worse:
            console.print(f"regression: {escape(key)}: denied in the baseline, allowed now", highlight=False)
        if worse:
            raise typer.Exit(1)
        say.print(f"no regression against {baseline} ({len(saved)} cells)", highlight=False)
