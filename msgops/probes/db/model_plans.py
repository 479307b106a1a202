"""The hot queries of the discovered model, for db.query_plan on a schema that is not the seeds': a room's
message page (newest first, 50 rows) on each family's message table, the unread counts of a member (the
messages after their read position on the membership table, or the messages still flagged unread), and a
search over the message content (its tsvector column, a full-text expression index, or ILIKE).

Rows are arranged in the caller's rolled-back transaction: 40 rooms, 600 messages in the room paged and
30 in each other, then ANALYZE, so that the planner sees a table where reading one room through an index
in order beats a scan and a sort. Unread counts and search are planned with sequential scans discouraged
(`enable_seqscan = off`, transaction-local): the question is whether an index can serve them at all, which
a few thousand rows cannot make a planner show, so an index scan only counts when its condition constrains
the index's leading column. A table or column the model lacks makes a query not applicable, with the reason.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from msgops.dbmodel.arrange import ArrangeError, Arranger, arrange, room_values
from msgops.dbmodel.discover import Catalog, Table, read_catalog
from msgops.dbmodel.model import MessageTable, Model
from msgops.probes.context import Skip
from msgops.probes.db.meaning import families
from msgops.probes.db.plans import Query

ROOMS, PER_ROOM, BUSY = 40, 30, 600
TIME_NAMES = ("created_at", "inserted_at", "sent_at", "time_sent", "timestamp", "created", "posted_at")
PAGE_QUERIES = {"message_page": 0, "community_message_page": 1}


def _time_column(t: Table) -> str | None:
    return next((n for n in TIME_NAMES if n in t.columns), t.pk)


async def _fill(conn: AsyncConnection[Any], cat: Catalog, model: Model, msg: MessageTable
                ) -> tuple[Any, str, Any]:
    """Arrange ROOMS rooms of PER_ROOM messages; return one room's id, what was done, and the key of the
    member of that room."""
    a = await arrange(conn, cat, model)
    arranger = Arranger(conn, cat, model)
    t = cat.tables[msg.table]
    assert msg.room_column is not None
    room_type = t.columns[msg.room_column].type
    first = a.rooms.get(msg.room or msg.table)
    if first is None:
        raise Skip(f"could not arrange a room for {msg.table}: {'; '.join(a.notes)}")
    rooms = [first]
    people = [a.keys["other"], a.keys["member"], a.keys["outsider"]]
    pairs = [(x, y) for x in people for y in people if x != y]
    for i in range(ROOMS - 1):
        if msg.room:
            room = model.room(msg.room)
            x, y = pairs[i % len(pairs)]
            try:  # participant columns may be unique together: the personas in turn
                row = await arranger.insert(msg.room, room_values(cat, model, msg.room, x, y), x)
            except ArrangeError:
                break  # enough rooms for the planner: the paged one is what counts
            rooms.append(row[room.key if room else "id"])
        else:
            rooms.append(f"msgops-room-{i}" if t.columns[msg.room_column].textual else i + 1000)
    fixed = {msg.sender: a.keys["other"] if not t.columns[msg.sender].textual else str(a.keys["other"]),
             msg.content: "msgops planner row", msg.room_column: first}
    values = await arranger.values(msg.table, fixed, a.keys["other"])
    time_col = _time_column(t)
    exprs: list[sql.Composable] = []
    for name, value in values.items():
        col = t.columns[name]
        if name == msg.room_column:
            exprs.append(sql.SQL("r.id"))
        elif name == time_col and col.category == "D":
            exprs.append(sql.SQL("now() - g * interval '1 minute'"))
        elif col.is_pk and col.type == "uuid":
            exprs.append(sql.SQL("gen_random_uuid()"))
        elif col.is_pk:
            raise Skip(f"{msg.table}.{name} is a key without a default: msgops cannot make rows for the planner")
        else:
            exprs.append(sql.SQL("{}::{}").format(sql.Literal(value), sql.SQL(col.type)))
    names = list(values)
    if time_col and time_col not in names and t.columns[time_col].category == "D":
        names.append(time_col)
        exprs.append(sql.SQL("now() - g * interval '1 minute'"))
    for group, count in (([first], BUSY), (rooms[1:], PER_ROOM)):  # the page is read from the busiest room
        bulk = sql.SQL("insert into {} ({}) select {} from unnest({}::{}[]) as r(id) "
                       "cross join generate_series(1, {}) g").format(
            sql.SQL(msg.table), sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(exprs),
            sql.Literal(group), sql.SQL(room_type), sql.Literal(count))
        await conn.execute(bulk)
    await conn.execute(sql.SQL("analyze {}").format(sql.SQL(msg.table)))
    return first, (f"{ROOMS} rooms in {msg.room or msg.table}, {BUSY} messages in the one paged and {PER_ROOM} in "
                   f"each other in {msg.table}, then ANALYZE (all rolled back)"), a.keys["member"]


async def observe_pages(conn: AsyncConnection[Any], model: Model) -> dict[str, Any]:
    """{query name: observation or Skip} for the message pages of the model."""
    cat = await read_catalog(conn)
    fams = families(model)
    observed: dict[str, Any] = {}
    for name, index in PAGE_QUERIES.items():
        fam = fams[index] if index < len(fams) else None
        msg = next((m for m in model.messages if fam and m.table == fam.message), None)
        if msg is None or not msg.room_column:
            observed[name] = Skip(f"not applicable: the schema has no message table with a room for {name}")
            continue
        t = cat.tables[msg.table]
        order = _time_column(t)
        if order is None:
            observed[name] = Skip(f"not applicable: {msg.table} has no time or key column to page by")
            continue
        query = Query(name, sql.SQL("select m.* from {} m where m.{} = %(room)s order by m.{} desc limit 50").format(
            sql.SQL(msg.table), sql.Identifier(msg.room_column), sql.Identifier(order)).as_string(conn),
            (), (t.bare,), True, f"an index on {msg.table} ({msg.room_column}, {order} desc)")
        try:
            async with conn.transaction(force_rollback=True):
                room, setup, _ = await _fill(conn, cat, model, msg)
                cur = await conn.execute(f"explain (analyze, buffers, format json) {query.sql}", {"room": room})
                row = await cur.fetchone()
        except (ArrangeError, psycopg.Error) as exc:
            observed[name] = Skip(f"could not arrange rows for the planner on {msg.table}: {exc}")
            continue
        assert row is not None
        document = (next(iter(row.values())) if isinstance(row, dict) else row[0])[0]
        observed[name] = {"setup": {"synthetic_rows": True, "arranged": setup}, "params": {"room": str(room)},
                          "document": document, "query": query}
    return observed


READ_POSITION = re.compile(r"^last_(read|seen|viewed)(_at|_seq|_message_id|_message|_id|_time|_timestamp)?$"
                           r"|^(read|seen)_(at|until|up_to|seq)$")
READ_FLAGS = ("is_read", "read", "seen", "is_seen", "read_at", "seen_at")
SEARCH_WORD = "msgopsneedle"  # in a few arranged rows only: a search that matches a sliver of the table


def _unread(cat: Catalog, model: Model, msg: MessageTable) -> Query | str:
    """The unread-count query of a member on the model, or why there is none."""
    t = cat.tables[msg.table]
    time_col = _time_column(t)
    m = model.membership_of(msg.room) if msg.room else None
    if m and m.kind == "table" and m.table and m.room_column and m.user_column and msg.room_column:
        mt = cat.tables[m.table]
        position = next((c for c in mt.columns.values() if READ_POSITION.match(c.name) and c.category != "B"), None)
        if position is not None:
            mb, rc, uc, mrc = m.table, m.room_column, m.user_column, msg.room_column
            if position.category == "D" and time_col and t.columns[time_col].category == "D":
                after, served = f"m.{_q(time_col)} > mb.{_q(position.name)}", time_col
            elif position.fk and position.fk[0] == msg.table and time_col:
                after = (f"m.{_q(time_col)} > (select r.{_q(time_col)} from {msg.table} r "
                         f"where r.{_q(position.fk[1])} = mb.{_q(position.name)})")
                served = time_col
            elif position.category == "N":
                seq = next((c for c in ("seq", "sequence", "message_seq", "position") if c in t.columns), t.pk)
                if seq is None or t.columns[seq].category != "N":
                    return f"{mb}.{position.name} counts messages, and {msg.table} has no number to compare it with"
                after, served = f"m.{_q(seq)} > mb.{_q(position.name)}", seq
            else:
                return f"{mb}.{position.name} is a read position msgops cannot compare with {msg.table}"
            query = (f"select mb.{_q(rc)} as room, count(m.*) as unread from {mb} mb join {msg.table} m "
                     f"on m.{_q(mrc)} = mb.{_q(rc)} and {after} where mb.{_q(uc)} = %(user)s group by mb.{_q(rc)}")
            return Query("unread_counts", query, (), (_bare(mb), t.bare), False,
                         f"an index on {mb} leading with {uc}, and one on {msg.table} ({mrc}, {served})")
    flag = next((t.columns[c] for c in READ_FLAGS if c in t.columns), None)
    if flag is None:
        where = f"{m.table} has no read position (last_read_at, last_read_seq, ...)" if m and m.table else \
            "no membership table holds a read position"
        return f"{where}, and {msg.table} has no read flag (is_read, read_at, ...)"
    unread = f"m.{_q(flag.name)} is null" if flag.category == "D" else f"not m.{_q(flag.name)}"
    receiver = next(iter(msg.extra_users), None)
    if receiver:
        query = f"select count(*) as unread from {msg.table} m where m.{_q(receiver)} = %(user)s and {unread}"
        return Query("unread_counts", query, (), (t.bare,), False,
                     f"an index on {msg.table} ({receiver}) (e.g. partial: where {unread.removeprefix('m.')})")
    if m and m.kind == "table" and m.table and m.room_column and m.user_column and msg.room_column:
        query = (f"select mb.{_q(m.room_column)} as room, count(m.*) as unread from {m.table} mb "
                 f"join {msg.table} m on m.{_q(msg.room_column)} = mb.{_q(m.room_column)} "
                 f"where mb.{_q(m.user_column)} = %(user)s and m.{_q(msg.sender)} <> %(user)s and {unread} "
                 f"group by mb.{_q(m.room_column)}")
        return Query("unread_counts", query, (), (_bare(m.table), t.bare), False,
                     f"an index on {m.table} leading with {m.user_column}, and one on {msg.table} "
                     f"leading with {msg.room_column}")
    return f"{msg.table}.{flag.name} flags unread messages, but nothing says whose (no receiver, no membership table)"


_FULLTEXT_INDEX = """
select substring(pg_get_indexdef(i.indexrelid) from 'USING gin \\((.*)\\)$') as expression
  from pg_index i join pg_class c on c.oid = i.indexrelid join pg_am am on am.oid = c.relam
 where i.indrelid = to_regclass(%s) and am.amname = 'gin' and i.indisvalid
   and pg_get_indexdef(i.indexrelid) ~ 'to_tsvector'
"""


async def _search(conn: AsyncConnection[Any], cat: Catalog, msg: MessageTable) -> Query:
    """A search over the message content: its tsvector column, the expression of a full-text index, or ILIKE."""
    t = cat.tables[msg.table]
    key = t.pk or msg.content
    vector = next((c.name for c in t.columns.values() if c.type == "tsvector"), None)
    expression: str | None = None
    if vector is None:
        cur = await conn.execute(_FULLTEXT_INDEX, (msg.table,))
        row = await cur.fetchone()
        expression = (row["expression"] if isinstance(row, dict) else row[0]) if row else None
    if vector is not None or expression:
        matched = f"m.{_q(vector)}" if vector else f"({expression})"
        query = (f"select m.{_q(key)} from {msg.table} m where {matched} @@ websearch_to_tsquery('english', "
                 f"%(words)s) limit 20")
        return Query("search", query, (), (t.bare,), False,
                     f"a GIN index on {msg.table} ({vector or expression})")
    query = f"select m.{_q(key)} from {msg.table} m where m.{_q(msg.content)} ilike %(pattern)s limit 20"
    return Query("search", query, (), (t.bare,), False,
                 f"a trigram index on {msg.table} using gin ({msg.content} gin_trgm_ops), or a full-text index "
                 f"(gin on to_tsvector({msg.content}))")


def _q(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def _bare(table: str) -> str:
    return table.split(".", 1)[1].strip('"')


async def observe_model(conn: AsyncConnection[Any], model: Model) -> dict[str, Any]:
    """{query name: observation or Skip}: the message pages, unread counts and search of the model."""
    observed = await observe_pages(conn, model)
    cat = await read_catalog(conn)
    fams = families(model)
    msg = next((m for f in fams for m in model.messages if m.table == f.message), None)
    if msg is None or not msg.room_column:
        reason = "not applicable: the schema has no message table with a room"
        return {**observed, "unread_counts": Skip(reason), "search": Skip(reason)}
    unread = _unread(cat, model, msg)
    queries: dict[str, Query] = {"search": await _search(conn, cat, msg)}
    if isinstance(unread, str):
        observed["unread_counts"] = Skip(f"not applicable: {unread}")
    else:
        queries["unread_counts"] = unread
    for name, query in queries.items():
        try:
            async with conn.transaction(force_rollback=True):
                room, setup, user = await _fill(conn, cat, model, msg)
                await conn.execute(sql.SQL("update {} set {} = {} where {} in (select {} from {} limit 3)").format(
                    sql.SQL(msg.table), sql.Identifier(msg.content), sql.Literal(f"msgops {SEARCH_WORD} row"),
                    sql.Identifier(t_key := cat.tables[msg.table].pk or msg.content), sql.Identifier(t_key),
                    sql.SQL(msg.table)))
                await conn.execute("set local enable_seqscan = off")
                params = {"user": user, "words": SEARCH_WORD, "pattern": f"%{SEARCH_WORD}%"}
                cur = await conn.execute(f"explain (analyze, buffers, format json) {query.sql}", params)
                row = await cur.fetchone()
                assert row is not None
                document = (next(iter(row.values())) if isinstance(row, dict) else row[0])[0]
                leading = await leading_columns(conn, document)
        except (ArrangeError, psycopg.Error) as exc:
            observed[name] = Skip(f"could not arrange rows for the planner on {msg.table}: {exc}")
            continue
        observed[name] = {"setup": {"synthetic_rows": True, "arranged": setup, "enable_seqscan": "off"},
                          "params": {k: str(v) for k, v in params.items() if f"%({k})s" in query.sql},
                          "document": document, "query": query, "leading": leading, "room": str(room)}
    return observed


async def leading_columns(conn: AsyncConnection[Any], document: dict[str, Any]) -> dict[str, list[str]]:
    """{index name: [its table, its leading column]} for the indexes the plan uses (expression indexes left
    out: their expression is their condition)."""
    from msgops.probes.db.plans import walk

    names = sorted({n["Index Name"] for n in walk(document["Plan"]) if n.get("Index Name")})
    if not names:
        return {}
    cur = await conn.execute(
        "select c.relname as index, t.relname as table, a.attname as column from pg_index i "
        "join pg_class c on c.oid = i.indexrelid join pg_class t on t.oid = i.indrelid "
        "join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0] "
        "where c.relname = any(%s) and i.indkey[0] <> 0", (names,))
    rows = [r if isinstance(r, dict) else dict(zip(("index", "table", "column"), r, strict=True))
            for r in await cur.fetchall()]
    return {r["index"]: [r["table"], r["column"]] for r in rows}
