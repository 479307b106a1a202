"""Catalog probes: what exists in the database (tables, columns, indexes, functions, triggers,
extensions, roles, publications), how Row Level Security is switched on, and operational settings.

Everything is read from the system catalogs inside `ctx.db()` (rolled back), so the probes work on
any PostgreSQL, not only the bundled schema. Names without a schema mean `public`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import psycopg
from pydantic import Field

from msgops.probes import Name, Names, probe
from msgops.probes.context import Context, Skip
from msgops.probes.db.meaning import page_index, resolve_tables, seed_schema
from msgops.results import Outcome, failed, passed

MAX_ROWS = 30  # rows kept in evidence
Command = Literal["select", "insert", "update", "delete"]
_COMMANDS: tuple[Command, ...] = get_args(Command)


# --- helpers shared by the db family ------------------------------------------------------------


def split_name(name: str, default_schema: str = "public") -> tuple[str, str]:
    """`messages` -> (public, messages); `auth.users` -> (auth, users)."""
    schema, _, rel = name.rpartition(".")
    return (schema or default_schema), rel


def qualified(name: str, default_schema: str = "public") -> str:
    return ".".join(split_name(name, default_schema))


def trim(rows: Sequence[dict[str, Any]], limit: int = MAX_ROWS) -> list[dict[str, Any]]:
    """Rows as evidence: JSON-friendly values, at most `limit` rows."""
    return [{k: _plain(v) for k, v in r.items()} for r in rows[:limit]]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value if not isinstance(value, str) or len(value) <= 400 else value[:400] + "…"
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def sql_text(sql: str) -> str:
    """A statement as evidence: one line, whitespace collapsed."""
    return " ".join(sql.split())


async def fetch(ctx: Context, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run one read in a rolled-back transaction and return its rows."""
    async with ctx.db() as conn:
        # always with parameters, so every statement here escapes a literal % as %%
        cur = await conn.execute(sql, params if params is not None else ())
        return [dict(r) for r in await cur.fetchall()] if cur.description else []


def missing_outcome(what: str, missing: list[str], found: list[str], sql: str, rows: list[dict[str, Any]],
                    **extra: Any) -> Outcome:
    evidence = {"sql": sql_text(sql), "rows": trim(rows), "missing": missing, "found": found, **extra}
    if missing:
        return failed(f"missing {what}: {', '.join(missing)}", **evidence)
    return passed(f"all {len(found)} {what} present", **evidence)


# --- schema objects -----------------------------------------------------------------------------

_TABLES = """
select n.nspname as schema, c.relname as name, c.relkind::text as kind
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p', 'v', 'm', 'f')
   and (n.nspname, c.relname) in (select * from unnest(%s::text[], %s::text[]))
"""


@probe("db.tables_exist",
       what="Checks that every named table exists (in `public` unless the name or `schema` says otherwise).",
       why="The API, the policies and the realtime publication all name these tables; one missing table is "
           "a failed migration that breaks every feature built on it.",
       example="`conversation_members` is missing: the migration stopped halfway.",
       fix="Apply the migrations (`msgops serve` migrates the bundled schema) and re-run the check.")
async def tables_exist(ctx: Context, tables: Names, schema: Name = "public") -> Outcome:
    names, meaning = await resolve_tables(ctx, [split_name(t, schema) for t in tables])
    rows = await fetch(ctx, _TABLES, ([s for s, _ in names], [t for _, t in names]))
    found = {(r["schema"], r["name"]) for r in rows}
    missing = [f"{s}.{t}" for s, t in names if (s, t) not in found]
    return missing_outcome("tables", missing, [f"{s}.{t}" for s, t in names if (s, t) in found], _TABLES, rows,
                           **({"by_meaning": meaning} if meaning else {}))


_COLUMNS = """
select a.attname as column, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as not_null
  from pg_attribute a
 where a.attrelid = to_regclass(%s) and a.attnum > 0 and not a.attisdropped
 order by a.attnum
"""


@probe("db.columns_exist",
       what="Checks that a table has the named columns.",
       why="A feature (threads, soft delete, read receipts) lives in its columns; without them the API "
           "answers 500 at the first request that needs one.",
       example="`messages.parent_id` is missing, so thread replies cannot be stored.",
       fix="Add the column in a migration (e.g. `alter table public.messages add column parent_id uuid "
           "references public.messages (id)`) and apply it.")
async def columns_exist(ctx: Context, table: Name, columns: Names) -> Outcome:
    name = qualified(table)
    rows = await fetch(ctx, _COLUMNS, (name,))
    if not rows:
        return failed(f"table {name} not found", sql=sql_text(_COLUMNS), table=name, rows=[])
    have = {r["column"] for r in rows}
    missing = [f"{name}.{c}" for c in columns if c not in have]
    return missing_outcome("columns", missing, [f"{name}.{c}" for c in columns if c in have], _COLUMNS,
                           [r for r in rows if r["column"] in columns], table=name)


_INDEXES = """
select n.nspname as schema, c.relname as index, t.relname as table, i.indisvalid as valid,
       pg_get_indexdef(c.oid) as definition
  from pg_index i
  join pg_class c on c.oid = i.indexrelid
  join pg_class t on t.oid = i.indrelid
  join pg_namespace n on n.oid = c.relnamespace
 where c.relname = any(%s::text[])
"""


@probe("db.indexes_exist",
       what="Checks that every named index exists and is valid (a failed CREATE INDEX CONCURRENTLY "
            "leaves an invalid one the planner ignores). On a schema that is not the seeds', a seed index is "
            "satisfied by the index doing its job: one leading with the room column for a message page, the one "
            "the model's search or unread-count query plan uses.",
       why="Message pages and unread counts are read far more often than written; without their index "
           "each read scans the whole table.",
       example="`idx_messages_conversation_created` was dropped: every conversation page is a Seq Scan.",
       fix="Recreate it, e.g. `create index concurrently idx_messages_conversation_created on "
           "public.messages (conversation_id, created_at desc)`.")
async def indexes_exist(ctx: Context, indexes: Names) -> Outcome:
    wanted = [split_name(i) for i in indexes]
    rows = await fetch(ctx, _INDEXES, ([n for _, n in wanted],))
    valid = {(r["schema"], r["index"]) for r in rows if r["valid"]}
    present = {(r["schema"], r["index"]) for r in rows}
    missing = [f"{s}.{n}" + (" (invalid)" if (s, n) in present else "") for s, n in wanted if (s, n) not in valid]
    if not missing or await seed_schema(ctx):
        return missing_outcome("indexes", missing, [f"{s}.{n}" for s, n in wanted if (s, n) in valid], _INDEXES,
                               rows)
    # another schema: an index that does the seed index's job under another name satisfies it
    meaning: dict[str, str] = {}
    still: list[str] = []
    for s, n in wanted:
        if (s, n) in valid:
            continue
        equivalent, why = await page_index(ctx, f"{s}.{n}")
        meaning[f"{s}.{n}"] = why
        if equivalent is None and not why.startswith("not applicable"):
            still.append(f"{s}.{n} ({why})")
    if all(v.startswith("not applicable") for v in meaning.values()) and not valid:
        raise Skip("; ".join(meaning.values()))
    return missing_outcome("indexes", still, [f"{s}.{n}" for s, n in wanted if (s, n) in valid], _INDEXES, rows,
                           by_meaning=meaning)



_FUNCTIONS = """
select n.nspname as schema, p.proname as name, pg_get_function_identity_arguments(p.oid) as arguments,
       pg_get_function_result(p.oid) as returns, p.prosecdef as security_definer, p.proconfig as config
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
 where p.proname = any(%s::text[])
"""


def _function_name(name: str) -> tuple[str, str]:
    return split_name(name.removesuffix("()"))


@probe("db.functions_exist",
       what="Checks that every named function exists (any argument list).",
       why="The API calls these functions (e.g. `get_or_create_conversation()` to open a direct "
           "conversation); a missing one is a 500 on that endpoint.",
       example="`get_or_create_conversation` was dropped: starting a direct message fails.",
       fix="Re-apply the migration that defines it.")
async def functions_exist(ctx: Context, functions: Names) -> Outcome:
    wanted = [_function_name(f) for f in functions]
    rows = await fetch(ctx, _FUNCTIONS, ([n for _, n in wanted],))
    have = {(r["schema"], r["name"]) for r in rows}
    missing = [f"{s}.{n}()" for s, n in wanted if (s, n) not in have]
    if missing and not await seed_schema(ctx):
        raise Skip(f"not applicable: {', '.join(missing)} belong to the seeds' schema and this one has no function "
                   "of that name (its rooms and messages are checked by the RLS matrix instead)")
    return missing_outcome("functions", missing, [f"{s}.{n}()" for s, n in wanted if (s, n) in have],
                           _FUNCTIONS, rows)


_TRIGGERS = """
select t.tgname as trigger, format('%%I.%%I', tn.nspname, c.relname) as table,
       fn.nspname as function_schema, p.proname as function, t.tgenabled::text as enabled
  from pg_trigger t
  join pg_class c on c.oid = t.tgrelid
  join pg_namespace tn on tn.oid = c.relnamespace
  join pg_proc p on p.oid = t.tgfoid
  join pg_namespace fn on fn.oid = p.pronamespace
 where not t.tgisinternal and p.proname = any(%s::text[])
 order by 2, 1
"""


@probe("db.triggers_exist",
       what="Checks that each named trigger function exists and is attached, enabled, to at least one table.",
       why="Triggers keep derived data right (updated_at, member counts); a dropped or disabled trigger "
           "lets it drift silently.",
       example="The trigger on `community_members` was dropped: `member_count` no longer changes on join.",
       fix="Recreate the trigger, e.g. `create trigger update_community_member_count after insert or delete "
           "on public.community_members for each row execute function public.update_community_member_count()`.")
async def triggers_exist(ctx: Context, functions: Names) -> Outcome:
    wanted = [_function_name(f) for f in functions]
    names = [n for _, n in wanted]
    rows = await fetch(ctx, _TRIGGERS, (names,))
    fn_rows = await fetch(ctx, _FUNCTIONS, (names,))
    problems: list[str] = []
    found: list[str] = []
    for schema, name in wanted:
        exists = any(r["schema"] == schema and r["name"] == name for r in fn_rows)
        attached = [r for r in rows if r["function_schema"] == schema and r["function"] == name]
        enabled = [r for r in attached if r["enabled"] != "D"]
        if not exists:
            problems.append(f"function {schema}.{name}() does not exist")
        elif not attached:
            problems.append(f"no trigger executes {schema}.{name}()")
        elif not enabled:
            problems.append(f"every trigger executing {schema}.{name}() is disabled: "
                            + ", ".join(f"{r['trigger']} on {r['table']}" for r in attached))
        else:
            found.append(f"{schema}.{name}() on " + ", ".join(sorted({r["table"] for r in enabled})))
    evidence = {"sql": sql_text(_TRIGGERS), "rows": trim(rows), "found": found, "problems": problems}
    absent = [p for p in problems if p.endswith("does not exist")]
    if absent and len(absent) == len(problems) and not await seed_schema(ctx):
        raise Skip(f"not applicable: {'; '.join(absent)}: trigger functions of the seeds' schema with no "
                   "counterpart here")
    if problems:
        return failed("; ".join(problems), **evidence)
    return passed(f"{len(found)} trigger functions attached and enabled", **evidence)


_EXTENSIONS = """
select a.name, a.default_version, e.extversion as installed_version
  from pg_available_extensions a
  full join pg_extension e on e.extname = a.name
 where coalesce(a.name, e.extname) = any(%s::text[])
"""


@probe("db.extensions",
       what="Checks that the named extensions are installed in the database (`create extension`).",
       why="Monitoring and features depend on them: without pg_stat_statements nobody can tell which "
           "query is slow in production.",
       example="pg_stat_statements is available on the server but was never created in the database.",
       fix="`create extension if not exists pg_stat_statements;` (and add it to shared_preload_libraries).")
async def extensions(ctx: Context, extensions: Names) -> Outcome:
    rows = await fetch(ctx, _EXTENSIONS, (extensions,))
    preload = await fetch(ctx, "select current_setting('shared_preload_libraries') as value")
    installed = {r["name"] for r in rows if r["installed_version"]}
    available = {r["name"] for r in rows if r["default_version"]}
    missing = [e + ("" if e in available else " (not available on the server)")
               for e in extensions if e not in installed]
    return missing_outcome("extensions", missing, sorted(installed), _EXTENSIONS, rows,
                           shared_preload_libraries=preload[0]["value"] if preload else None)


_ROLES = """
select rolname as role, rolsuper as superuser, rolbypassrls as bypass_rls, rolcanlogin as can_login,
       rolinherit as inherit
  from pg_roles where rolname = any(%s::text[])
"""
_API_ROLES = ("anon", "authenticated")  # must obey RLS: they run the public's requests


@probe("db.roles",
       what="Checks that the named roles exist, and that the API roles `anon` and `authenticated` "
            "are neither superusers nor BYPASSRLS.",
       why="Supabase/PostgREST-style APIs switch into these roles per request; a missing role breaks every "
           "request, and an API role that bypasses RLS makes every policy decorative.",
       example="`authenticated` was created with BYPASSRLS: any signed-in user reads every message.",
       fix="Create the role (`create role authenticated nologin noinherit`) or "
           "`alter role authenticated nobypassrls nosuperuser`.")
async def roles(ctx: Context, roles: Names) -> Outcome:
    rows = await fetch(ctx, _ROLES, (roles,))
    by_name = {r["role"]: r for r in rows}
    problems = [f"role {r} does not exist" for r in roles if r not in by_name]
    for name in _API_ROLES:
        r = by_name.get(name)
        if r and (r["superuser"] or r["bypass_rls"]):
            problems.append(f"role {name} bypasses row level security (superuser={r['superuser']}, "
                            f"bypassrls={r['bypass_rls']})")
    evidence = {"sql": sql_text(_ROLES), "rows": trim(rows)}
    if problems:
        return failed("; ".join(problems), **evidence)
    return passed(f"roles present: {', '.join(roles)}", **evidence)


# --- row level security -------------------------------------------------------------------------

_RLS = """
select n.nspname as schema, c.relname as table, c.relrowsecurity as enabled, c.relforcerowsecurity as forced
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p') and (n.nspname, c.relname) in (select * from unnest(%s::text[], %s::text[]))
"""


@probe("db.rls_enabled",
       what="Checks that Row Level Security is enabled on each named table (and forced, with `forced: true`, "
            "so that the table owner obeys the policies too).",
       why="Without RLS every role with a grant on the table reads and writes every row: the API's "
           "authorization is the only defence left, and one forgotten filter leaks everything.",
       example="`alter table public.messages disable row level security` shipped in a hotfix.",
       fix="`alter table public.messages enable row level security;` (and `force row level security`).")
async def rls_enabled(ctx: Context, tables: Names, forced: bool = False) -> Outcome:
    names, meaning = await resolve_tables(ctx, [split_name(t) for t in tables], every_model_table=True)
    rows = await fetch(ctx, _RLS, ([s for s, _ in names], [t for _, t in names]))
    by_name = {(r["schema"], r["table"]): r for r in rows}
    problems: list[str] = []
    for s, t in names:
        r = by_name.get((s, t))
        if r is None:
            problems.append(f"{s}.{t} does not exist")
        elif not r["enabled"]:
            problems.append(f"{s}.{t}: row level security disabled")
        elif forced and not r["forced"]:
            problems.append(f"{s}.{t}: row level security not forced")
    evidence = {"sql": sql_text(_RLS), "rows": trim(rows), **({"by_meaning": meaning} if meaning else {})}
    if problems:
        return failed("; ".join(problems), **evidence)
    return passed(f"row level security {'enabled and forced' if forced else 'enabled'} on {len(names)} tables",
                  **evidence)


_POLICIES = """
select p.schemaname as schema, p.tablename as table, p.policyname as policy, p.permissive, p.roles, p.cmd,
       p.qual as using, p.with_check
  from pg_policies p
 where (p.schemaname, p.tablename) in (select * from unnest(%s::text[], %s::text[]))
 order by 1, 2, 3
"""


@probe("db.rls_policies",
       what="Checks that each named table has Row Level Security on and at least one policy; with "
            "`commands`, a policy covering each of those commands (a FOR ALL policy covers all four).",
       why="RLS without a policy for a command denies it to everyone (a broken feature); a policy without "
           "RLS protects nothing.",
       example="`messages` has SELECT and INSERT policies but none for UPDATE: editing a message always fails.",
       fix="Write the missing policy, e.g. `create policy messages_update on public.messages for update to "
           "authenticated using (sender_id = (select auth.uid()))`.")
async def rls_policies(ctx: Context, tables: Names,
                       commands: Annotated[list[Command], Field(min_length=1)] | None = None) -> Outcome:
    names, meaning = await resolve_tables(ctx, [split_name(t) for t in tables], every_model_table=True)
    if meaning and commands:  # another design: a command without a policy is refused (the matrix shows the rest)
        meaning["commands"] = (f"each table needs RLS and a policy; policies for {', '.join(commands)} are the "
                               "seeds' design, shown in coverage, not required")
        commands = None
    schemas, rels = [s for s, _ in names], [t for _, t in names]
    rows = await fetch(ctx, _POLICIES, (schemas, rels))
    rls_rows = await fetch(ctx, _RLS, (schemas, rels))
    enabled = {(r["schema"], r["table"]): r["enabled"] for r in rls_rows}
    problems: list[str] = []
    coverage: dict[str, list[str]] = {}
    for s, t in names:
        mine = [r for r in rows if (r["schema"], r["table"]) == (s, t)]
        covered = sorted({c for r in mine for c in (_COMMANDS if r["cmd"] == "ALL" else (r["cmd"].lower(),))})
        coverage[f"{s}.{t}"] = covered
        if (s, t) not in enabled:
            problems.append(f"{s}.{t} does not exist")
            continue
        if not enabled[(s, t)]:
            problems.append(f"{s}.{t}: row level security disabled, policies are ignored")
        if not mine:
            problems.append(f"{s}.{t}: no policy")
            continue
        lacking = [c for c in (commands or []) if c not in covered]
        if lacking:
            problems.append(f"{s}.{t}: no policy for {', '.join(c.upper() for c in lacking)}")
    evidence = {"sql": sql_text(_POLICIES), "rows": trim(rows, 60), "coverage": coverage,
                **({"by_meaning": meaning} if meaning else {})}
    if problems:
        return failed("; ".join(problems), **evidence)
    return passed(f"policies present on {len(names)} tables"
                  + (f" for {', '.join(commands)}" if commands else ""), **evidence)


# --- realtime, maintenance, capacity --------------------------------------------------------------

_PUBLICATION = """
select p.pubname as publication, p.puballtables as all_tables, p.pubinsert as inserts, p.pubupdate as updates,
       p.pubdelete as deletes,
       coalesce((select array_agg(format('%%I.%%I', t.schemaname, t.tablename) order by 1)
                   from pg_publication_tables t where t.pubname = p.pubname), '{}') as tables
  from pg_publication p where p.pubname = %s
"""


@probe("db.publication",
       what="Checks that each named table is in the logical replication publication that realtime "
            "listens to (`supabase_realtime` unless `publication` says otherwise).",
       why="Supabase Realtime (Postgres Changes) only sees tables in its publication: a table left out "
           "never produces live events, and clients look frozen.",
       example="`community_messages` is not in `supabase_realtime`: community chats only update on reload.",
       fix="`alter publication supabase_realtime add table public.community_messages;`")
async def publication(ctx: Context, tables: Names, publication: Name = "supabase_realtime") -> Outcome:
    names, meaning = await resolve_tables(ctx, [split_name(t) for t in tables])
    tables = [f"{s}.{t}" for s, t in names]
    rows = await fetch(ctx, _PUBLICATION, (publication,))
    wal = await fetch(ctx, "select current_setting('wal_level') as wal_level")
    evidence: dict[str, Any] = {"sql": sql_text(_PUBLICATION), "rows": trim(rows), "wal_level": wal[0]["wal_level"],
                                **({"by_meaning": meaning} if meaning else {})}
    if not rows:
        return failed(f"publication {publication} does not exist", **evidence)
    pub = rows[0]
    members = set(pub["tables"])
    missing = [qualified(t) for t in tables if qualified(t) not in members]
    if missing:
        return failed(f"not in publication {publication}: {', '.join(missing)}", missing=missing, **evidence)
    if not (pub["inserts"] and pub["updates"]):
        return failed(f"publication {publication} does not publish inserts and updates", **evidence)
    return passed(f"{', '.join(qualified(t) for t in tables)} in publication {publication}", **evidence)


_AUTOVACUUM = """
select format('%%I.%%I', n.nspname, c.relname) as table, c.reloptions as options,
       s.n_live_tup as live_rows, s.n_dead_tup as dead_rows, s.last_autovacuum, s.last_autoanalyze
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  left join pg_stat_user_tables s on s.relid = c.oid
 where (n.nspname, c.relname) in (select * from unnest(%s::text[], %s::text[]))
"""
_AUTOVACUUM_SETTINGS = """
select name, setting from pg_settings
 where name in ('autovacuum', 'autovacuum_vacuum_scale_factor', 'autovacuum_analyze_scale_factor',
                'autovacuum_vacuum_threshold', 'track_counts')
"""


def _options(options: list[str] | None) -> dict[str, str]:
    return dict(o.split("=", 1) for o in options or [])


@probe("db.autovacuum",
       what="Checks that autovacuum is on, and that each named hot table has its own, more eager "
            "autovacuum settings (a vacuum/analyze scale factor or threshold below the server default) "
            "and is not excluded from autovacuum.",
       why="With the default 20% scale factor a 10M-row messages table waits for 2M dead rows before "
           "vacuuming: bloat, stale statistics and slower pages.",
       example="`messages` has no reloptions: it is vacuumed only after 20% of it is dead.",
       fix="`alter table public.messages set (autovacuum_vacuum_scale_factor = 0.05, "
           "autovacuum_analyze_scale_factor = 0.02);`")
async def autovacuum(ctx: Context, tables: Names) -> Outcome:
    names, _ = await resolve_tables(ctx, [split_name(t) for t in tables])
    rows = await fetch(ctx, _AUTOVACUUM, ([s for s, _ in names], [t for _, t in names]))
    settings = {r["name"]: r["setting"] for r in await fetch(ctx, _AUTOVACUUM_SETTINGS)}
    problems: list[str] = []
    if settings.get("autovacuum") != "on":
        problems.append("autovacuum is off for the whole server")
    if settings.get("track_counts") != "on":
        problems.append("track_counts is off: autovacuum cannot tell which tables need it")
    by_name = {r["table"]: r for r in rows}
    default_scale = float(settings.get("autovacuum_vacuum_scale_factor", "0.2"))
    for s, t in names:
        r = by_name.get(f"{s}.{t}")
        if r is None:
            problems.append(f"{s}.{t} does not exist")
            continue
        opts = _options(r["options"])
        if opts.get("autovacuum_enabled", "true").lower() in ("false", "off", "0"):
            problems.append(f"{s}.{t}: autovacuum disabled for the table")
            continue
        tuned = ("autovacuum_vacuum_threshold" in opts or "autovacuum_vacuum_insert_scale_factor" in opts
                 or float(opts.get("autovacuum_vacuum_scale_factor", default_scale)) < default_scale)
        if not tuned:
            problems.append(f"{s}.{t}: server defaults (vacuum scale factor {default_scale}); no table settings")
    evidence = {"sql": sql_text(_AUTOVACUUM), "rows": trim(rows), "settings": settings}
    if problems:
        return failed("; ".join(problems), **evidence)
    return passed(f"autovacuum tuned for {', '.join(f'{s}.{t}' for s, t in names)}", **evidence)


_CONNECTIONS = """
select current_setting('max_connections')::int as max_connections,
       current_setting('superuser_reserved_connections')::int as reserved,
       (select count(*) from pg_stat_activity where backend_type = 'client backend')::int as in_use,
       (select count(*) from pg_stat_activity where backend_type = 'client backend' and state = 'idle')::int as idle,
       (select count(*) from pg_stat_activity
         where state like 'idle in transaction%%' and xact_start < now() - interval '5 minutes')::int
         as stuck_in_transaction
"""
_BUSY_RATIO = 0.8


@probe("db.pool",
       what="Checks connection capacity: client connections in use stay under 80% of max_connections, no "
            "session sits idle in a transaction for over 5 minutes (a leaked pooled connection), the API's "
            "pool (from /health, when an API is configured) fits in the server's connections, and, with "
            "`max_connections`, that the server allows at least that many.",
       why="Without pooling each request or worker opens its own connection until PostgreSQL refuses new "
           "ones ('too many clients'), and a connection leaked inside a transaction holds locks and blocks "
           "vacuum.",
       example="190 of 200 connections are in use by idle app workers; the next deploy cannot connect.",
       fix="Put a pool in front (psycopg_pool in the service, PgBouncer/Supavisor in transaction mode for "
           "external clients) sized below max_connections; end or time out idle transactions "
           "(`idle_in_transaction_session_timeout`).")
async def pool(ctx: Context, max_connections: Annotated[int, Field(ge=1)] | None = None) -> Outcome:
    stats = (await fetch(ctx, _CONNECTIONS))[0]
    usable = stats["max_connections"] - stats["reserved"]
    evidence: dict[str, Any] = {"sql": sql_text(_CONNECTIONS), "connections": stats, "usable": usable}
    problems: list[str] = []
    if stats["in_use"] > _BUSY_RATIO * usable:
        problems.append(f"{stats['in_use']} of {usable} usable connections in use (over {_BUSY_RATIO:.0%})")
    if stats["stuck_in_transaction"]:
        problems.append(f"{stats['stuck_in_transaction']} sessions idle in a transaction for over 5 minutes")
    if max_connections is not None and stats["max_connections"] < max_connections:
        problems.append(f"max_connections is {stats['max_connections']}, below the required {max_connections}")
    if ctx.target.api_url:
        api_pool = await _api_pool(ctx)
        evidence["api_pool"] = api_pool
        if isinstance(api_pool, dict) and isinstance(api_pool.get("max"), int) and api_pool["max"] > usable:
            problems.append(f"the API pool may open {api_pool['max']} connections; the server allows {usable}")
    if problems:
        return failed("; ".join(problems), **evidence)
    return passed(f"{stats['in_use']} of {usable} connections in use" +
                  (f"; API pool max {evidence['api_pool']['max']}" if isinstance(evidence.get("api_pool"), dict)
                   and "max" in evidence["api_pool"] else ""), **evidence)


async def _api_pool(ctx: Context) -> dict[str, Any] | str:
    try:
        r = await ctx.http.get("/health")
    except Exception as exc:  # the API's pool is extra evidence; the database answer stands without it
        return f"GET /health failed: {type(exc).__name__}"
    try:
        body = r.json()
    except ValueError:
        return f"GET /health answered {r.status_code} without JSON"
    pool_info = body.get("pool") if isinstance(body, dict) else None
    return pool_info if isinstance(pool_info, dict) else f"GET /health answered {r.status_code} without pool stats"


_PARTITION = """
select format('%%I.%%I', n.nspname, c.relname) as table, c.relkind::text as kind,
       greatest(c.reltuples, 0)::bigint as estimated_rows, c.reltuples >= 0 as analyzed,
       coalesce(s.n_live_tup, 0) as live_rows,
       pg_total_relation_size(c.oid) as total_bytes, pg_size_pretty(pg_total_relation_size(c.oid)) as total_size
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  left join pg_stat_user_tables s on s.relid = c.oid
 where c.oid = to_regclass(%s)
"""


@probe("db.tables_partition_advice",
       what="Compares a table's estimated row count with a threshold (`rows`): passes while it is below, "
            "or when the table is already partitioned; fails when it is above and still one heap.",
       why="Past a few million rows a single messages table makes vacuum, index builds and retention "
           "deletes slow; partitioning by time keeps each piece small and lets old data be dropped whole.",
       example="`messages` holds 3.2M rows in one heap with a 1M threshold.",
       fix="Partition by range on created_at (e.g. monthly, with pg_partman) and detach/drop old partitions.")
async def tables_partition_advice(ctx: Context, table: Name, rows: Annotated[int, Field(ge=1)]) -> Outcome:
    names, _ = await resolve_tables(ctx, [split_name(table)])
    name = qualified(".".join(names[0]))
    found = await fetch(ctx, _PARTITION, (name,))
    evidence: dict[str, Any] = {"sql": sql_text(_PARTITION), "rows": trim(found), "threshold": rows}
    if not found:
        return failed(f"table {name} not found", **evidence)
    t = found[0]
    # reltuples once the table was analyzed (-1 before); the statistics collector's count until then
    estimate = int(t["estimated_rows"]) if t["analyzed"] else int(t["live_rows"])
    if t["kind"] == "p":
        return passed(f"{name} is partitioned (~{estimate} rows)", **evidence)
    if estimate >= rows:
        return failed(f"{name} holds ~{estimate} rows in one heap (threshold {rows}): partition it", **evidence)
    return passed(f"{name} holds ~{estimate} rows, below the {rows} threshold; partitioning not needed yet",
                  **evidence)


# --- migrations -------------------------------------------------------------------------------------

_MIGRATION_TABLES = (
    ("msgops_meta.schema_migrations", "select name, checksum, applied_at from msgops_meta.schema_migrations"),
    ("supabase_migrations.schema_migrations",
     "select version || coalesce('_' || name, '') as name, null::text as checksum, null::timestamptz as applied_at "
     "from supabase_migrations.schema_migrations"),
)
_MIGRATION_DIRS = ("service/migrations", "supabase/migrations", "migrations", "db/migrations")


def _repo_migrations(repo: Path) -> tuple[str | None, dict[str, str]]:
    """The repository's migration files: (directory, {file name: checksum as msgops records it})."""
    for d in _MIGRATION_DIRS:
        path = repo / d
        files = sorted(path.glob("*.sql")) if path.is_dir() else []
        if files:
            return d, {f.name: hashlib.sha256(f.read_text().encode()).hexdigest()[:16] for f in files}
    return None, {}


def _stem(name: str) -> str:
    return re.sub(r"\.sql$", "", name)


@probe("db.migrations_applied",
       what="Reads the database's migration history (msgops_meta.schema_migrations or Supabase's "
            "supabase_migrations.schema_migrations) and checks that every migration file in the repository "
            "is recorded as applied, with the same checksum where one is recorded.",
       why="A release whose code expects a migration the database never got fails at the first query that "
           "needs it; a migration edited after it ran means production differs from the repository.",
       example="`007_jobs_and_moderation.sql` is in the repository but not in schema_migrations.",
       fix="Apply the pending migrations (`msgops serve` or your migration tool); never edit an applied "
           "migration, add a new one.")
async def migrations_applied(ctx: Context) -> Outcome:
    applied: list[dict[str, Any]] = []
    source = None
    for table, query in _MIGRATION_TABLES:
        try:
            applied = await fetch(ctx, query)
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            continue
        source = table
        break
    if source is None:
        raise Skip("no migration history table (msgops_meta.schema_migrations or "
                   "supabase_migrations.schema_migrations): record migrations to let this check read them")
    directory, files = _repo_migrations(ctx.target.repo)
    evidence: dict[str, Any] = {"history": source, "applied": trim(applied, 100),
                                "repository": f"{ctx.target.repo}/{directory}" if directory else None}
    if not applied:
        return failed(f"{source} is empty: no migration recorded as applied", **evidence)
    recorded = {_stem(r["name"]): r for r in applied}
    pending = [n for n in files if _stem(n) not in recorded]
    changed = [n for n, checksum in files.items()
               if _stem(n) in recorded and recorded[_stem(n)]["checksum"] not in (None, checksum)]
    evidence.update(pending=pending, changed=changed)
    if pending or changed:
        parts = ([f"not applied: {', '.join(pending)}"] if pending else []) + \
                ([f"changed after applying: {', '.join(changed)}"] if changed else [])
        return failed("; ".join(parts), **evidence)
    if not files:
        return passed(f"{len(applied)} migrations recorded in {source} (no migration files found in "
                      f"{ctx.target.repo} to compare)", **evidence)
    return passed(f"all {len(files)} migrations in {directory} applied", **evidence)


# --- privacy ----------------------------------------------------------------------------------------

_SOFT_DELETE_TABLES = """
select format('%%I.%%I', n.nspname, c.relname) as table, flag.attname as flag,
       format_type(flag.atttypid, flag.atttypmod) as flag_type, body.attname as content
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  join pg_attribute flag on flag.attrelid = c.oid and flag.attnum > 0 and not flag.attisdropped
   and flag.attname in ('is_deleted', 'deleted', 'deleted_at')
  join pg_attribute body on body.attrelid = c.oid and body.attnum > 0 and not body.attisdropped
   and body.attname in ('content', 'body', 'text', 'message')
 where c.relkind in ('r', 'p') and n.nspname = 'public'
 order by 1
"""
_CONSTRAINTS = """
select conname as constraint, pg_get_constraintdef(oid) as definition
  from pg_constraint where conrelid = to_regclass(%s) and contype = 'c'
"""


def _deleted(flag: str, flag_type: str) -> str:
    return f"{flag} is not null" if flag_type.startswith("timestamp") else f"{flag}"


@probe("db.content_removed_on_delete",
       what="Finds soft-deletable message tables in `public` (a deleted flag such as is_deleted/deleted_at "
            "next to a content column) and checks that no deleted row still holds its content and that the "
            "database enforces it: a CHECK constraint, or (tested on a row, rolled back) a soft delete "
            "that empties the content.",
       why="A deleted message whose text stays in the row is still disclosed by backups, exports, support "
           "tools and breaches: flagged is not deleted.",
       example="`messages` has 12 rows with is_deleted = true and their content intact.",
       fix="Clear the content on delete (`update ... set content = null, is_deleted = true`) and enforce it: "
           "`alter table public.messages add check (not is_deleted or content is null)`.")
async def content_removed_on_delete(ctx: Context) -> Outcome:
    tables = await fetch(ctx, _SOFT_DELETE_TABLES)
    if not tables:
        raise Skip("no table in public has a deleted flag (is_deleted/deleted/deleted_at) and a content column")
    problems: list[str] = []
    observed: list[dict[str, Any]] = []
    for t in tables:
        name, flag, body = t["table"], t["flag"], t["content"]
        deleted = _deleted(flag, t["flag_type"])
        leak_sql = f"select count(*) as n from {name} where {deleted} and {body} is not null"
        leaked = (await fetch(ctx, leak_sql))[0]["n"]
        constraints = await fetch(ctx, _CONSTRAINTS, (name,))
        enforcing = [c for c in constraints if flag in c["definition"] and body in c["definition"]]
        entry: dict[str, Any] = {"table": name, "deleted_with_content": leaked, "sql": leak_sql,
                                 "constraints": trim(enforcing)}
        if leaked:
            problems.append(f"{name}: {leaked} deleted rows still hold their {body}")
        if not enforcing:
            entry["soft_delete_test"] = verdict = await _try_soft_delete(ctx, name, flag, t["flag_type"], body)
            if verdict != "content removed":
                problems.append(f"{name}: nothing in the database removes {body} when {flag} is set ({verdict})")
        observed.append(entry)
    if problems:
        return failed("; ".join(problems), tables=observed)
    return passed(f"deleted rows hold no content in {', '.join(t['table'] for t in tables)}", tables=observed)


async def _try_soft_delete(ctx: Context, table: str, flag: str, flag_type: str, body: str) -> str:
    """Soft-delete one live row (rolled back) the way an app would, and see whether its content goes."""
    value = "now()" if flag_type.startswith("timestamp") else "true"
    live = f"not ({_deleted(flag, flag_type)})" if flag_type.startswith("timestamp") else f"not {flag}"
    async with ctx.db() as conn:
        cur = await conn.execute(f"select ctid::text as ctid from {table} where {live} and {body} is not null limit 1")
        row = await cur.fetchone()
        if row is None:
            return "no live row to test on, and no CHECK constraint"
        try:
            cur = await conn.execute(f"update {table} set {flag} = {value} where ctid = %s::tid returning {body}",
                                     (row["ctid"],))
            after = await cur.fetchone()
        except psycopg.errors.CheckViolation:
            return "content removed"  # refused: a deleted row may not keep its content
        if after is None:
            return "the test row could not be updated"
        return "content removed" if after[body] is None else "content kept after setting the flag"
