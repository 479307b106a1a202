"""db.query_plan: EXPLAIN ANALYZE of the hot read paths, in a rolled-back transaction.

When the tables are (nearly) empty the planner's choice says nothing, so a few thousand synthetic rows
are inserted first and the tables ANALYZEd, inside the same transaction: the rows and the new
statistics vanish with the rollback. All four queries are planned once per run and shared.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from psycopg import AsyncConnection, sql
from pydantic import Field

from msgops.probes import OneOf, probe
from msgops.probes.context import Context, Skip
from msgops.probes.db.catalog import sql_text
from msgops.probes.db.meaning import seed_schema
from msgops.results import Outcome, failed, passed

ENOUGH_ROWS = 200  # below this many rows the tables get synthetic ones for the planner


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    needs: tuple[str, ...]  # table.column pairs the query reads
    watched: tuple[str, ...]  # tables that must not be read with a Seq Scan
    ordered: bool  # a page: the index must deliver the order (no Sort node)
    expected_index: str


QUERIES = {
    "message_page": Query(
        "message_page",
        "select m.* from public.messages m where m.conversation_id = %(conversation)s "
        "order by m.created_at desc limit 50",
        ("messages.conversation_id", "messages.created_at"), ("messages",), True,
        "an index on public.messages (conversation_id, created_at desc), e.g. idx_messages_conversation_created"),
    "community_message_page": Query(
        "community_message_page",
        "select m.* from public.community_messages m where m.community_id = %(community)s "
        "order by m.created_at desc limit 50",
        ("community_messages.community_id", "community_messages.created_at"), ("community_messages",), True,
        "an index on public.community_messages (community_id, created_at desc), "
        "e.g. idx_community_messages_community_created"),
    "unread_counts": Query(
        "unread_counts",
        "select c.id, greatest(c.last_seq - cm.last_read_seq, 0) as unread from public.conversation_members cm "
        "join public.conversations c on c.id = cm.conversation_id where cm.user_id = %(user)s",
        ("conversation_members.user_id", "conversation_members.last_read_seq", "conversations.last_seq"),
        ("conversation_members", "messages"), False,
        "an index on public.conversation_members starting with user_id"),
    "search": Query(
        "search",
        "select m.id, ts_rank(m.search, q) as rank from public.messages m, "
        "websearch_to_tsquery('english', %(words)s) as q where m.conversation_id = %(quiet_conversation)s "
        "and m.search @@ q order by rank desc limit 20",
        ("messages.conversation_id", "messages.search"), ("messages",), False,
        "an index on public.messages (conversation_id, ...) or a GIN index on messages.search"),
}

# Synthetic rows on the seed schema: 60 users, 60 group conversations of 8, 1200 messages, 20 communities
# with 1200 messages; conversation 0 and community 0 hold half of them, more than a page, so that the
# planner must choose between reading the page in index order and sorting. Keys derive from a per-call
# salt so concurrent runs never collide.
_ARRANGE = (
    "insert into public.profiles (id, display_name) "
    "select md5(%(salt)s || 'u' || g)::uuid, 'plan user ' || g from generate_series(0, 59) g",
    "insert into public.conversations (id, kind, title, created_by) "
    "select md5(%(salt)s || 'c' || g)::uuid, 'group', 'plan', md5(%(salt)s || 'u' || g)::uuid "
    "from generate_series(0, 59) g",
    "insert into public.conversation_members (conversation_id, user_id) "
    "select md5(%(salt)s || 'c' || g)::uuid, md5(%(salt)s || 'u' || ((g + k) %% 60))::uuid "
    "from generate_series(0, 59) g, generate_series(0, 7) k",
    "insert into public.messages (conversation_id, sender_id, content, created_at) "
    "select md5(%(salt)s || 'c' || (case when g %% 2 = 0 then 0 else g %% 60 end))::uuid, "
    "md5(%(salt)s || 'u' || (g %% 60))::uuid, "
    "'synthetic message ' || g || ' about ' || (array['launch', 'pricing', 'dinner', 'tickets'])[1 + g %% 4], "
    "now() - make_interval(secs => g) from generate_series(1, 1200) g",
    "insert into public.communities (id, name, created_by) "
    "select md5(%(salt)s || 'm' || g)::uuid, 'plan community ' || g, md5(%(salt)s || 'u' || g)::uuid "
    "from generate_series(0, 19) g",
    "insert into public.community_messages (community_id, sender_id, content, created_at) "
    "select md5(%(salt)s || 'm' || (case when g %% 2 = 0 then 0 else g %% 20 end))::uuid, "
    "md5(%(salt)s || 'u' || (g %% 20))::uuid, "
    "'synthetic community message ' || g, now() - make_interval(secs => g) from generate_series(1, 1200) g",
)
_ANALYZE = ("analyze public.profiles, public.conversations, public.conversation_members, public.messages, "
            "public.communities, public.community_messages")
_PARAMS = {
    "conversation": "select conversation_id as v from public.messages limit 1",
    "community": "select community_id as v from public.community_messages limit 1",
    "user": "select user_id as v from public.conversation_members limit 1",
}


def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from walk(child)


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan as a flat list of its nodes, with what matters for evidence."""
    return [{k: v for k, v in {
        "node": n.get("Node Type"), "relation": n.get("Relation Name"), "index": n.get("Index Name"),
        "filter": n.get("Filter") or n.get("Index Cond") or n.get("Recheck Cond"), "index_cond": n.get("Index Cond"),
        "sort_key": n.get("Sort Key"), "rows": n.get("Actual Rows"), "ms": n.get("Actual Total Time"),
    }.items() if v is not None} for n in walk(plan)]


def judge(query: Query, plan_nodes: list[dict[str, Any]], leading: dict[str, list[str]] | None = None) -> list[str]:
    """Why the plan is not acceptable (empty when it is). With `leading` ({index: [table, leading column]}),
    an index scan of a watched table whose condition leaves the leading column free reads the whole index:
    it is a scan too (what the planner does when sequential scans are switched off and no index serves)."""
    problems = [f"Seq Scan on public.{n['relation']}" for n in plan_nodes
                if n.get("node") == "Seq Scan" and n.get("relation") in query.watched]
    for n in plan_nodes:
        table, column = (leading or {}).get(n.get("index", ""), (None, None))
        if table in query.watched and column and not re.search(rf"(?<![.\w]){re.escape(column)}\b",
                                                                str(n.get("index_cond") or "")):
            problems.append(f"{n['node']} using {n['index']} on public.{table} reads the whole index "
                            f"(its condition leaves {column} free)")
    if query.ordered and any(n.get("node") in ("Sort", "Incremental Sort") for n in plan_nodes):
        problems.append(f"the page is sorted after reading ({query.watched[0]} rows are not read in index order)")
    return problems


async def _missing_columns(conn: AsyncConnection[Any], query: Query) -> list[str]:
    missing = []
    for need in query.needs:
        table, column = need.split(".")
        cur = await conn.execute("select 1 from pg_attribute where attrelid = to_regclass(%s) and attname = %s "
                                 "and not attisdropped", (f"public.{table}", column))
        if await cur.fetchone() is None:
            missing.append(f"public.{need}")
    return missing


async def _arrange(conn: AsyncConnection[Any]) -> dict[str, Any]:
    """Synthetic rows when the hot tables are nearly empty; returns what was done, for evidence."""
    counts = {}
    for table in ("messages", "community_messages", "conversation_members"):
        cur = await conn.execute(f"select count(*) as n from (select 1 from public.{table} limit {ENOUGH_ROWS}) x")
        row = await cur.fetchone()
        counts[table] = int(row["n"]) if row else 0
    if all(n >= ENOUGH_ROWS for n in counts.values()):
        return {"synthetic_rows": False, "rows_seen": counts}
    salt = uuid.uuid4().hex
    try:
        async with conn.transaction():  # a savepoint: a schema that differs only loses the synthetic rows
            for statement in _ARRANGE:
                await conn.execute(statement, {"salt": salt})
            await conn.execute(_ANALYZE)
    except psycopg.Error as exc:
        raise Skip(f"the tables hold under {ENOUGH_ROWS} rows and synthetic rows could not be inserted for the "
                   f"planner [{exc.sqlstate}] {exc.diag.message_primary}: load representative data first") from None
    return {"synthetic_rows": True, "rows_seen": counts, "salt": salt,
            "arranged": "60 users, 60 conversations x 8 members, 1200 messages, 20 communities, "
                        "1200 community messages; then ANALYZE (all rolled back)"}


def _synthetic_id(salt: str, kind: str, n: int = 0) -> uuid.UUID:
    """The id `md5(salt || kind || n)::uuid` that _ARRANGE gave to a synthetic row (0 is the busiest)."""
    return uuid.UUID(hashlib.md5(f"{salt}{kind}{n}".encode()).hexdigest())


async def _params(conn: AsyncConnection[Any], setup: dict[str, Any]) -> dict[str, Any]:
    """Parameters for the queries: the busiest synthetic rows, or some existing row of a real dataset."""
    params: dict[str, Any] = {"words": "launch pricing"}
    salt = setup.get("salt")
    for key, lookup in _PARAMS.items():
        if salt:
            params[key] = _synthetic_id(salt, {"conversation": "c", "community": "m", "user": "u"}[key])
            continue
        try:
            async with conn.transaction():
                cur = await conn.execute(lookup)
                row = await cur.fetchone()
            params[key] = row["v"] if row else uuid.uuid4()
        except psycopg.errors.UndefinedTable:
            params[key] = uuid.uuid4()
    # search runs in an ordinary conversation (a sliver of the table), as most searches do
    params["quiet_conversation"] = _synthetic_id(salt, "c", 1) if salt else params["conversation"]
    return params


async def _observe_all(ctx: Context) -> dict[str, Any]:
    """Plan every query once, in one rolled-back transaction."""
    observed: dict[str, Any] = {}
    if not await seed_schema(ctx):  # the model's hot queries instead of the seeds' SQL
        from msgops.dbmodel.target import target_model
        from msgops.probes.db.model_plans import observe_model

        model = await target_model(ctx)
        async with ctx.db() as conn:
            observed = await observe_model(conn, model)
        await _restore_statistics(ctx, [m.table for m in model.messages])
        return observed
    async with ctx.db() as conn:
        applicable = {}
        for name, query in QUERIES.items():
            missing = await _missing_columns(conn, query)
            if missing:
                observed[name] = Skip(f"query {name} needs {', '.join(missing)}, which this schema lacks")
            else:
                applicable[name] = query
        if not applicable:
            return observed
        setup = await _arrange(conn)
        params = await _params(conn, setup)
        for name, query in applicable.items():
            cur = await conn.execute(f"explain (analyze, buffers, format json) {query.sql}", params)
            row = await cur.fetchone()
            assert row is not None
            document = next(iter(row.values()))[0]
            observed[name] = {"setup": setup, "params": {k: str(v) for k, v in params.items()},
                              "document": document}
    if setup["synthetic_rows"]:
        await _restore_statistics(ctx, [t.strip() for t in _ANALYZE.removeprefix("analyze ").split(",")])
    return observed


async def _restore_statistics(ctx: Context, tables: list[str]) -> None:
    """ANALYZE again once the synthetic rows are rolled back. PostgreSQL writes a table's row and page
    estimates (pg_class.reltuples, relpages) in place, so a rollback does not undo what an ANALYZE of the
    synthetic rows left there; the planner of the user's database would go on believing them."""
    if tables:
        async with ctx.db() as conn:
            await conn.execute(sql.SQL("analyze {}").format(sql.SQL(", ").join(sql.SQL(t) for t in tables)))


async def observe(ctx: Context) -> dict[str, Any]:
    lock = ctx.cache.setdefault("db.query_plan.lock", asyncio.Lock())
    async with lock:
        if "db.query_plan" not in ctx.cache:
            ctx.cache["db.query_plan"] = await _observe_all(ctx)
        return ctx.cache["db.query_plan"]


@probe("db.query_plan",
       what="EXPLAIN ANALYZE of a hot read (message_page, community_message_page, unread_counts, search) in a "
            "rolled-back transaction, with synthetic rows and ANALYZE when the tables are nearly empty: passes "
            "when the plan reads messages through an index (no Seq Scan; pages served in index order, no Sort) "
            "and, with `max_ms`, runs within that time. On a schema that is not the seeds' the queries are the "
            "model's: its message page, unread counts from its read position or read flag, search over its "
            "message content.",
       why="A page query that scans or sorts a conversation's whole history gets slower with every message; "
           "it is fast in staging with 100 rows and times out in production with 10M.",
       example="idx_messages_conversation_created was dropped: message_page does a Seq Scan on messages and "
               "sorts every row of the conversation.",
       fix="Create the index the query needs (evidence names it), e.g. `create index concurrently "
           "idx_messages_conversation_created on public.messages (conversation_id, created_at desc)`.")
async def query_plan(ctx: Context, query: Annotated[str, OneOf(QUERIES, "query")],
                     max_ms: Annotated[float, Field(gt=0)] | None = None) -> Outcome:
    if query not in QUERIES:
        raise ValueError(f"unknown query {query!r} (expected one of {', '.join(QUERIES)})")
    seen = (await observe(ctx)).get(query)
    if isinstance(seen, Skip):
        raise Skip(str(seen))
    assert seen is not None
    q = seen.get("query") or QUERIES[query]
    document = seen["document"]
    plan_nodes = nodes(document["Plan"])
    execution_ms = float(document.get("Execution Time", 0.0))
    evidence = {"query": query, "sql": sql_text(q.sql), "params": seen["params"], "setup": seen["setup"],
                "plan": plan_nodes, "planning_ms": document.get("Planning Time"), "execution_ms": execution_ms,
                "expected_index": q.expected_index, "max_ms": max_ms}
    problems = judge(q, plan_nodes, seen.get("leading"))
    if problems:
        problems.append(f"expected {q.expected_index}")
    if max_ms is not None and execution_ms > max_ms:
        problems.append(f"took {execution_ms:.1f} ms (budget {max_ms:g} ms)")
    if problems:
        return failed(f"{query}: " + "; ".join(problems), **evidence)
    indexes = sorted({n["index"] for n in plan_nodes if "index" in n})
    return passed(f"{query}: {execution_ms:.2f} ms using {', '.join(indexes) or 'no index needed'}", **evidence)
