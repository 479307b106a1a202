"""The hot queries of the discovered model, for db.query_plan on a schema that is not the seeds': a room's
message page (newest first, 50 rows) on each family's message table.

Rows are arranged in the caller's rolled-back transaction: 40 rooms, 600 messages in the room paged and
30 in each other, then ANALYZE, so that the planner sees a table where reading one room through an index
in order beats a scan and a sort.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from msgops.dbmodel.arrange import ArrangeError, Arranger, arrange, room_values
from msgops.dbmodel.discover import Catalog, Table, read_catalog
from msgops.dbmodel.model import MessageTable, Model
from msgops.probes.context import Skip
from msgops.probes.db.meaning import families

ROOMS, PER_ROOM, BUSY = 40, 30, 600
TIME_NAMES = ("created_at", "inserted_at", "sent_at", "time_sent", "timestamp", "created", "posted_at")
PAGE_QUERIES = {"message_page": 0, "community_message_page": 1}


def _time_column(t: Table) -> str | None:
    return next((n for n in TIME_NAMES if n in t.columns), t.pk)


async def _fill(conn: AsyncConnection[Any], cat: Catalog, model: Model, msg: MessageTable) -> tuple[Any, str]:
    """Arrange ROOMS rooms of PER_ROOM messages; return one room's id and what was done."""
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
                   f"each other in {msg.table}, then ANALYZE (all rolled back)")


async def observe_pages(conn: AsyncConnection[Any], model: Model) -> dict[str, Any]:
    """{query name: observation or Skip} for the message pages of the model."""
    from msgops.probes.db.plans import Query

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
                room, setup = await _fill(conn, cat, model, msg)
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
