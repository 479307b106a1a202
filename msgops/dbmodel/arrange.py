"""Arrange fixture rows on any schema, as the owner, inside the caller's rolled-back transaction.

A row gets the values it is given; every other NOT NULL column without a default is filled from its
type (an enum's first label, a literal its CHECK allows, a parent row arranged for a foreign key, the
owner's user key for a user reference). A CHECK that refuses the first choice is retried with the next
literals it names. The users, a room shared by `other` and `member`, a message by `other` in it, and staff
personas (msgops.dbmodel.staff) are what the RLS matrix acts on.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import AsyncClientCursor, AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from msgops.dbmodel.discover import CREATOR_NAMES, Catalog, Column, Table
from msgops.dbmodel.model import Model

PERSONAS = ("member", "other", "outsider")
_PREFERRED = ("member", "group", "private", "channel", "user", "text", "active", "direct")
_TRIES = 4


class ArrangeError(Exception):
    """Rows could not be arranged on this schema; the message names the table and the reason."""


@dataclass
class Arranged:
    subs: dict[str, uuid.UUID]  # persona -> the JWT sub (auth user id)
    keys: dict[str, Any]  # persona -> what user columns store for them
    rooms: dict[str, Any] = field(default_factory=dict)  # room table (or message table for free rooms) -> id
    messages: dict[str, Any] = field(default_factory=dict)  # message table -> primary key of other's message
    notes: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)  # the arrangement as SQL with literals, to replay it
    staff: list[Any] = field(default_factory=list)  # msgops.dbmodel.staff.StaffPersona, arranged
    storage: Any = None  # msgops.dbmodel.storage.Storage: files arranged in Supabase Storage buckets


def _literals(table: Table, column: str) -> list[str]:
    found = [x for d in table.checks if re.search(rf"\b{re.escape(column)}\b", d)
             for x in re.findall(r"'([^']*)'", d)]
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=lambda x: _PREFERRED.index(x) if x in _PREFERRED else len(_PREFERRED))


def _by_type(col: Column, hint: str) -> Any:
    if col.labels:
        return col.labels[0]
    t = col.type
    if t == "uuid":
        return uuid.uuid4()
    if t.endswith("[]"):
        return []
    if t in ("json", "jsonb"):
        return "{}"
    if col.category == "S":
        return f"msgops {hint} {uuid.uuid4().hex[:8]}"
    if col.category == "N":
        return 1
    if col.category == "B":
        return False
    if col.category == "D":
        return "now"
    return None


def _user_value(col: Column, key: Any) -> Any:
    return str(key) if col.textual else key


class Arranger:
    def __init__(self, conn: AsyncConnection[Any], cat: Catalog, model: Model) -> None:
        self.conn, self.cat, self.model = conn, cat, model
        self.log: list[str] = []
        users = model.users
        self.user_targets = {("auth.users", "id")} | ({(users.table, users.key)} if users else set())

    def is_user_ref(self, col: Column) -> bool:
        return col.fk is not None and (col.fk[0], col.fk[1]) in self.user_targets

    async def values(self, table: str, fixed: dict[str, Any], owner: Any, depth: int = 0) -> dict[str, Any]:
        """Values for one row of `table`: `fixed`, plus whatever its NOT NULL columns need."""
        t = self.cat.tables[table]
        out = dict(fixed)
        for col in t.columns.values():
            if col.name in out:
                continue
            wants_owner = self.is_user_ref(col) and col.name in CREATOR_NAMES
            if not wants_owner and (not col.notnull or col.has_default):
                continue
            if self.is_user_ref(col):
                out[col.name] = _user_value(col, owner)
            elif col.fk and col.fk[0] in self.cat.tables and depth < 3 and col.fk[0] != table:
                parent = await self.insert(col.fk[0], {}, owner, depth + 1)
                out[col.name] = parent[col.fk[1]]
            elif (lits := _literals(t, col.name)) and col.textual:
                out[col.name] = lits[0]
            else:
                out[col.name] = _by_type(col, col.name)
        return out

    def statement(self, table: str, values: dict[str, Any], returning: bool = False,
                  on_conflict: bool = False) -> sql.Composed:
        t = self.cat.tables[table]
        names = list(values)
        casts = [sql.SQL("{}::{}").format(sql.Placeholder(n), sql.SQL(t.columns[n].type)) for n in names]
        query = sql.SQL("insert into {} ({}) values ({})").format(
            sql.SQL(table), sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(casts)) \
            if names else sql.SQL("insert into {} default values").format(sql.SQL(table))
        if on_conflict:
            query += sql.SQL(" on conflict do nothing")
        if returning:
            query += sql.SQL(" returning *")
        return query

    async def insert(self, table: str, fixed: dict[str, Any], owner: Any, depth: int = 0,
                     on_conflict: bool = False) -> dict[str, Any]:
        """Insert one row as the owner and return it; CHECK literals are tried in turn."""
        values = await self.values(table, fixed, owner, depth)
        t = self.cat.tables[table]
        alternatives = {n: _literals(t, n) for n in values if n not in fixed and t.columns[n].textual}
        alternatives = {n: lits for n, lits in alternatives.items() if len(lits) > 1}
        last: psycopg.Error | None = None
        for attempt in range(_TRIES):
            for n, lits in alternatives.items():
                values[n] = lits[attempt % len(lits)]
            try:
                async with self.conn.transaction(), self.conn.cursor(row_factory=dict_row) as cur:
                    await cur.execute(self.statement(table, values, returning=True, on_conflict=on_conflict),
                                      values)
                    row = await cur.fetchone()
                if row:
                    self._replay(table, dict(row), on_conflict)
                return dict(row) if row else {}
            except psycopg.errors.CheckViolation as exc:
                last = exc
                if not alternatives:
                    break
            except psycopg.Error as exc:
                last = exc
                break
        assert last is not None
        raise ArrangeError(f"could not insert a row into {table} [{last.sqlstate}] "
                           f"{last.diag.message_primary}")

    def _replay(self, table: str, row: dict[str, Any], on_conflict: bool) -> None:
        """Log the row as it was stored (ids made by the server included), so a file can recreate it."""
        t = self.cat.tables[table]
        values = {k: Jsonb(v) if t.columns[k].type in ("json", "jsonb") and v is not None else v
                  for k, v in row.items() if k in t.columns and not t.columns[k].generated}
        query = self.statement(table, values, on_conflict=on_conflict)
        text = AsyncClientCursor(self.conn).mogrify(query, values)
        self.log.append(text.replace(" values (", " overriding system value values (", 1))

    async def users(self) -> tuple[dict[str, uuid.UUID], dict[str, Any]]:
        subs: dict[str, uuid.UUID] = {}
        keys: dict[str, Any] = {}
        for p in PERSONAS:
            subs[p], keys[p] = await self.user(p)
        return subs, keys

    async def user(self, p: str) -> tuple[uuid.UUID, Any]:
        """A new auth user for persona `p` (and their row in the user table): their sub and their key."""
        sub = uuid.uuid4()
        key: Any = sub
        users = self.model.users
        contact = {c.rsplit(".", 1)[1] for c in self.model.contact_columns
                   if users and c.rsplit(".", 1)[0] == users.table}
        if "auth.users" in self.cat.tables:
            await self.insert("auth.users", {"id": sub, "email": f"{p}-{sub.hex[:8]}@msgops.invalid"}, sub)
        if users is None or users.table == "auth.users":
            return sub, key
        mapped = users.auth_column or users.key
        cur = await self.conn.execute(
            sql.SQL("select {} from {} where {} = %s").format(sql.Identifier(users.key), sql.SQL(users.table),
                                                             sql.Identifier(mapped)), (sub,))
        row = await cur.fetchone()
        fixed = {mapped: sub, **{c: f"{p}-{sub.hex[:8]}@msgops.invalid" for c in contact}}
        if row is None:
            made = await self.insert(users.table, fixed, sub)
            return sub, made[users.key]
        key = row[0] if not isinstance(row, dict) else row[users.key]
        if contact:
            update = sql.SQL("update {} set {} where {} = {}").format(
                sql.SQL(users.table),
                sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), sql.Literal(v))
                                   for c, v in fixed.items() if c in contact),
                sql.Identifier(users.key), sql.Literal(key))
            await self.conn.execute(update)
            self.log.append(update.as_string(self.conn))
        return sub, key


async def _room_of_their_own(a: Arranger, done: Arranged, table: str, m: Any) -> None:
    """The outsider is a member of a room of their own: a policy that asks "is the caller a member of some
    room" instead of "of this room" lets them in."""
    outsider = done.keys["outsider"]
    room = a.model.room(table)
    assert room is not None
    logged = len(a.log)
    try:
        async with a.conn.transaction():
            row = await a.insert(table, room_values(a.cat, a.model, table, outsider, outsider), outsider)
            mt = a.cat.tables[m.table]
            await a.insert(m.table, {m.room_column: row[room.key],
                                     m.user_column: _user_value(mt.columns[m.user_column], outsider)},
                           outsider, on_conflict=True)
    except (ArrangeError, psycopg.Error) as exc:
        del a.log[logged:]
        done.notes.append(f"the outsider's own room in {table} could not be arranged: {exc}")


def room_values(cat: Catalog, model: Model, table: str, other: Any, member: Any) -> dict[str, Any]:
    """What a room of `table` shared by `other` and `member` must say: private, and its participant columns."""
    t = cat.tables[table]
    m = model.membership_of(table)
    fixed: dict[str, Any] = {}
    for flag, value in (("is_private", True), ("private", True), ("is_public", False), ("public", False)):
        if flag in t.columns and t.columns[flag].category == "B":
            fixed[flag] = value
    if m.kind == "columns":
        for i, c in enumerate(m.user_columns):
            fixed[c] = _user_value(t.columns[c], member if i == 1 else other)
    elif m.kind == "array" and m.user_column:
        fixed[m.user_column] = [other, member] if t.columns[m.user_column].type == "uuid[]" \
            else [str(other), str(member)]
    return fixed


async def arrange(conn: AsyncConnection[Any], cat: Catalog, model: Model) -> Arranged:
    """Users, one room per room table with `other` and `member` in it, and one message by `other` in each
    message table. Rooms that cannot be arranged are left out, with a note saying why."""
    a = Arranger(conn, cat, model)
    subs, keys = await a.users()
    done = Arranged(subs, keys, statements=a.log)
    other, member = keys["other"], keys["member"]
    for room in model.rooms:
        m = model.membership_of(room.table)
        fixed = room_values(cat, model, room.table, other, member)
        try:
            row = await a.insert(room.table, fixed, other)
            done.rooms[room.table] = row[room.key]
            if m.kind == "table" and m.table and m.room_column and m.user_column:
                mt = cat.tables[m.table]
                for who in (other, member):
                    await a.insert(m.table, {m.room_column: row[room.key],
                                             m.user_column: _user_value(mt.columns[m.user_column], who)},
                                   other, on_conflict=True)
        except ArrangeError as exc:
            done.notes.append(str(exc))
        if m.kind == "table" and m.table and m.room_column and m.user_column and room.table in done.rooms:
            await _room_of_their_own(a, done, room.table, m)
    for msg in model.messages:
        t = cat.tables[msg.table]
        fixed = {msg.sender: _user_value(t.columns[msg.sender], other), msg.content: "msgops: other's message"}
        for extra in msg.extra_users:
            fixed[extra] = _user_value(t.columns[extra], member)
        if msg.room_column:
            if msg.room:
                if msg.room not in done.rooms:
                    continue
                fixed[msg.room_column] = done.rooms[msg.room]
            else:  # a free room value: this message table is its own room
                free = _by_type(t.columns[msg.room_column], "room")
                done.rooms[msg.table] = free
                fixed[msg.room_column] = free
        pk = t.pk
        if pk is None:
            done.notes.append(f"{msg.table} has no primary key: its rows cannot be pointed at")
            continue
        try:
            row = await a.insert(msg.table, fixed, other)
            done.messages[msg.table] = row[pk]
        except ArrangeError as exc:
            done.notes.append(str(exc))
    from msgops.dbmodel.staff import arrange_staff  # staff personas and files build on the rooms arranged here
    from msgops.dbmodel.storage import arrange_storage

    done.staff = await arrange_staff(a, done, model)
    shared = next((done.rooms[r.table] for r in model.rooms if r.table in done.rooms
                   and model.membership_of(r.table).kind != "none"), None)
    done.storage = await arrange_storage(conn, subs, shared, a.log)
    done.notes += done.storage.notes
    return done
