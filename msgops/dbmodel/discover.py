"""Infer the messaging model from the catalog of a Supabase/PostgREST-style PostgreSQL.

Reads tables, columns and foreign keys of the exposed schema once, then decides, with a reason each:
the user table (auth.users, a profile keyed by the auth user, or an app table mapping an auth id),
message tables (a content column and a sender), the rooms they point at, who is in each room (a table
with a room FK and a user column, user columns on the room, an array of user ids, or nobody), staff
roles and contact columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from msgops.dbmodel.model import Membership, MessageTable, Model, Room, Staff, UserTable

EXPOSED = ("public",)
CONTENT_NAMES = ("content", "message", "body", "text", "message_body", "message_text", "msg")
SENDER_NAMES = ("sender_id", "author_id", "user_id", "sent_by", "from_user_id", "from_id", "profile_id",
                "member_id", "created_by", "owner_id")
USER_TOKENS = ("user", "sender", "author", "owner", "creator", "created_by", "member", "participant", "buyer",
               "seller", "receiver", "recipient", "sent_by", "profile", "from", "to_id")
CREATOR_NAMES = ("created_by", "creator_id", "owner_id", "author_id", "user_id", "updated_by")
ROOM_WORDS = ("conversation", "channel", "room", "community", "chat", "thread", "group", "dialog", "team")
USER_TABLE_NAMES = ("profiles", "users", "user_profiles", "accounts", "members", "app_users")
CONTACT = re.compile(r"^(e_?mail(_address)?|phone(_number)?|mobile(_number)?|telephone|phone_e164)$")
STAFF_ROLES = re.compile(r"admin|moderator|staff|owner|organizer")

_CATALOG = """
select n.nspname as schema, c.relname as table, c.oid as oid, a.attnum as num, a.attname as column,
       format_type(a.atttypid, a.atttypmod) as type, t.typcategory as category, a.attnotnull as notnull,
       (a.atthasdef or a.attidentity <> '' or a.attgenerated <> '') as has_default,
       coalesce((select array_agg(e.enumlabel order by e.enumsortorder) from pg_enum e
                  where e.enumtypid = a.atttypid), '{}') as labels,
       exists (select 1 from pg_constraint k where k.conrelid = c.oid and k.contype = 'p'
                and a.attnum = any (k.conkey) and cardinality(k.conkey) = 1) as is_pk,
       case when exists (select 1 from pg_roles where rolname = 'authenticated')
            then has_column_privilege('authenticated', c.oid, a.attnum, 'INSERT') else true end as insertable,
       a.attgenerated <> '' as generated
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
  join pg_type t on t.oid = a.atttypid
 where c.relkind in ('r', 'p') and (n.nspname = any (%(schemas)s) or (n.nspname, c.relname) = ('auth', 'users'))
 order by n.nspname, c.relname, a.attnum
"""
_FKS = """
select c.oid as oid, a.attname as column, fn.nspname as target_schema, f.relname as target_table,
       fa.attname as target_column, k.conname as name
  from pg_constraint k
  join pg_class c on c.oid = k.conrelid join pg_class f on f.oid = k.confrelid
  join pg_namespace fn on fn.oid = f.relnamespace
  join pg_attribute a on a.attrelid = c.oid and a.attnum = k.conkey[1]
  join pg_attribute fa on fa.attrelid = f.oid and fa.attnum = k.confkey[1]
 where k.contype = 'f' and cardinality(k.conkey) = 1
"""
_CHECKS = """
select conrelid as oid, pg_get_constraintdef(oid) as def from pg_constraint where contype = 'c'
"""
_POLICIES = """
select format('%%I.%%I', schemaname, tablename) as table, lower(cmd) as cmd,
       concat_ws(' ', qual, with_check) as text
  from pg_policies where schemaname = any (%(schemas)s)
"""
_FUNCTIONS = """
select p.proname as name, p.prosrc as body from pg_proc p join pg_namespace n on n.oid = p.pronamespace
 where n.nspname not in ('pg_catalog', 'information_schema') and p.prolang <> 13 and p.prokind = 'f'
"""


@dataclass
class Column:
    name: str
    type: str
    category: str
    notnull: bool
    has_default: bool
    labels: list[str]
    is_pk: bool
    insertable: bool = True  # may the API's authenticated role write it in an INSERT
    generated: bool = False  # a generated column: computed, never written
    fk: tuple[str, str, str] | None = None  # (target table, target column, constraint name)

    @property
    def textual(self) -> bool:
        return self.category == "S"

    @property
    def is_uuid(self) -> bool:
        return self.type == "uuid"


@dataclass
class Table:
    name: str  # schema.table, quoted where needed
    oid: int
    columns: dict[str, Column] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    @property
    def bare(self) -> str:
        return self.name.split(".", 1)[1].strip('"')

    @property
    def pk(self) -> str | None:
        return next((c.name for c in self.columns.values() if c.is_pk), None)


@dataclass(frozen=True)
class Policy:
    table: str
    cmd: str  # select, insert, update, delete or all
    text: str  # USING and WITH CHECK


@dataclass
class Catalog:
    tables: dict[str, Table]
    policies: list[Policy] = field(default_factory=list)
    functions: dict[str, list[str]] = field(default_factory=dict)  # bare name -> bodies (overloads)

    def get(self, name: str) -> Table | None:
        return self.tables.get(name)


async def read_catalog(conn: AsyncConnection[Any], schemas: tuple[str, ...] = EXPOSED) -> Catalog:
    tables: dict[str, Table] = {}
    by_oid: dict[int, Table] = {}
    cur = await conn.execute(_CATALOG, {"schemas": list(schemas)})
    for row in await cur.fetchall():
        r = _as_dict(row, cur)
        name = _qualified(r["schema"], r["table"])
        table = tables.setdefault(name, Table(name, r["oid"]))
        by_oid[r["oid"]] = table
        table.columns[r["column"]] = Column(r["column"], r["type"], r["category"], r["notnull"], r["has_default"],
                                            list(r["labels"]), r["is_pk"], r["insertable"], r["generated"])
    cur = await conn.execute(_FKS)
    for row in await cur.fetchall():
        r = _as_dict(row, cur)
        owner = by_oid.get(r["oid"])
        if owner is not None and r["column"] in owner.columns:
            target = _qualified(r["target_schema"], r["target_table"])
            owner.columns[r["column"]].fk = (target, r["target_column"], r["name"])
    cur = await conn.execute(_CHECKS)
    for row in await cur.fetchall():
        r = _as_dict(row, cur)
        if r["oid"] in by_oid:
            by_oid[r["oid"]].checks.append(r["def"])
    cat = Catalog(tables)
    cur = await conn.execute(_POLICIES, {"schemas": list(schemas)})
    for row in await cur.fetchall():
        r = _as_dict(row, cur)
        cat.policies.append(Policy(r["table"], r["cmd"], r["text"] or ""))
    cur = await conn.execute(_FUNCTIONS)
    for row in await cur.fetchall():
        r = _as_dict(row, cur)
        cat.functions.setdefault(r["name"], []).append(r["body"] or "")
    return cat


def _as_dict(row: Any, cur: Any) -> dict[str, Any]:
    if isinstance(row, dict):
        return row
    return {d.name: v for d, v in zip(cur.description, row, strict=True)}


def _qualified(schema: str, table: str) -> str:
    def q(x: str) -> str:
        return x if re.fullmatch(r"[a-z_][a-z0-9_]*", x) else '"' + x.replace('"', '""') + '"'
    return f"{q(schema)}.{q(table)}"


# --- inference ------------------------------------------------------------------------------------


def infer(cat: Catalog) -> Model:
    users = _user_table(cat)
    user_keys = {("auth.users", "id")} | ({(users.table, users.key)} if users else set())
    messages: list[MessageTable] = []
    for table in cat.tables.values():
        if table.name.startswith("auth.") or (users and table.name == users.table):
            continue
        found = _message_table(cat, table, user_keys)
        if found:
            messages.append(found)
    message_names = {m.table for m in messages}
    rooms: list[Room] = []
    for m in messages:
        if m.room and not any(r.table == m.room for r in rooms):
            room = cat.tables[m.room]
            rooms.append(Room(m.room, room.pk or "id", f"{m.table}.{m.room_column} references it"))
    memberships = [_membership(cat, room, user_keys, message_names) for room in rooms]
    staff = _staff(cat, user_keys, memberships)
    contacts = tuple(f"{t.name}.{c}" for t in cat.tables.values() if not t.name.startswith("auth.")
                     for c in t.columns if CONTACT.match(c))
    findings: list[str] = []
    if messages and not any(m.kind != "none" for m in memberships):
        findings.append("no membership: nothing in the schema says who may read a room, so every signed-in user "
                        f"is in every room ({', '.join(sorted(message_names))})")
    for m in messages:
        if m.room is None:
            findings.append(f"{m.table} has no room table"
                            + (f" ({m.room_column} is a free value)" if m.room_column else ""))
    return Model(users, tuple(rooms), tuple(memberships), tuple(messages), tuple(staff), contacts, tuple(findings))


def _user_table(cat: Catalog) -> UserTable | None:
    referenced: dict[str, int] = {}
    for t in cat.tables.values():
        for c in t.columns.values():
            if c.fk:
                referenced[c.fk[0]] = referenced.get(c.fk[0], 0) + 1
    candidates: list[tuple[int, UserTable]] = []
    for t in cat.tables.values():
        if t.name.startswith("auth."):
            continue
        pk = t.pk
        if pk is None:
            continue
        pk_col = t.columns[pk]
        refs = referenced.get(t.name, 0)
        if pk_col.fk and pk_col.fk[0] == "auth.users":
            candidates.append((refs + 100, UserTable(t.name, pk, None, f"{t.name}.{pk} references auth.users")))
            continue
        mapped = next((c for c in t.columns.values() if c.fk and c.fk[0] == "auth.users" and not c.is_pk
                       and t.bare in USER_TABLE_NAMES), None)
        if mapped is not None:
            candidates.append((refs + 90, UserTable(t.name, pk, mapped.name,
                                                    f"{t.name}.{mapped.name} references auth.users")))
        elif t.bare in USER_TABLE_NAMES and pk_col.is_uuid:
            candidates.append((refs + 10, UserTable(t.name, pk, None,
                                                    f"{t.name} is named as a user table, keyed by {pk}")))
    if candidates:
        best = max(candidates, key=lambda x: x[0])[1]
        if best.reason.endswith("references auth.users") or referenced.get(best.table, 0) or "auth.users" not in \
                cat.tables:
            return best
    if "auth.users" in cat.tables:
        return UserTable("auth.users", "id", None, "the Supabase auth user table (no profile table keyed by it)")
    return None


def _is_user_column(col: Column, user_keys: set[tuple[str, str]], cat: Catalog) -> bool:
    if col.fk:
        return (col.fk[0], col.fk[1]) in user_keys
    if not (col.is_uuid or col.textual) or col.is_pk:
        return False
    name = col.name
    return any(tok in name for tok in USER_TOKENS) and (name.endswith("id") or name in ("created_by", "sent_by")
                                                          or re.search(r"_\d$", name) is not None)


def _message_table(cat: Catalog, t: Table, user_keys: set[tuple[str, str]]) -> MessageTable | None:
    content = next((n for n in CONTENT_NAMES if n in t.columns and t.columns[n].textual), None)
    if content is None:
        return None
    user_cols = [c.name for c in t.columns.values() if _is_user_column(c, user_keys, cat)]
    sender = next((n for n in SENDER_NAMES if n in user_cols), user_cols[0] if user_cols else None)
    if sender is None:
        return None
    room, room_col, why = _room_of(cat, t, set(user_cols))
    extra = tuple(c for c in user_cols if c != sender and c not in CREATOR_NAMES and "deleted" not in c)
    reason = (f"{t.name}.{content} holds text and {t.name}.{sender} is a user"
              + (f"; {why}" if why else "; no room column"))
    return MessageTable(t.name, sender, content, room, room_col, extra, reason)


def _room_of(cat: Catalog, t: Table, user_cols: set[str]) -> tuple[str | None, str | None, str]:
    fks = [c for c in t.columns.values() if c.fk and c.name not in user_cols and c.fk[0] != t.name
           and not c.fk[0].startswith("auth.")]
    ranked = sorted(fks, key=lambda c: (not any(w in c.name or w in c.fk[0] for w in ROOM_WORDS),  # type: ignore[index]
                                        not c.notnull))
    if ranked:
        c = ranked[0]
        assert c.fk is not None
        return c.fk[0], c.name, f"{t.name}.{c.name} references {c.fk[0]} ({c.fk[2]})"
    for c in t.columns.values():
        if c.name in user_cols or not c.name.endswith("_id") or c.is_pk:
            continue
        stem = c.name[:-3]
        if not any(w in stem for w in ROOM_WORDS):
            continue
        for plural in (f"{stem}s", f"{stem}es", stem):
            target = f"{t.name.split('.')[0]}.{plural}"
            if target in cat.tables and target != t.name:
                return target, c.name, f"{t.name}.{c.name} names {target} (no foreign key)"
        return None, c.name, f"{t.name}.{c.name} names a room that has no table"
    return None, None, ""


def _membership(cat: Catalog, room: Room, user_keys: set[tuple[str, str]], messages: set[str]) -> Membership:
    options: list[tuple[bool, Table, str, str]] = []
    for t in cat.tables.values():
        if t.name in messages or t.name == room.table or t.name.startswith("auth."):
            continue
        room_col = next((c.name for c in t.columns.values() if c.fk and c.fk[0] == room.table), None)
        if room_col is None:
            continue
        users = [c.name for c in t.columns.values() if c.name != room_col and _is_user_column(c, user_keys, cat)]
        if users:
            user = next((u for u in users if u not in CREATOR_NAMES), users[0])
            named = any(w in t.bare for w in ("member", "participant", "user", "subscriber"))
            options.append((named, t, room_col, user))
    if options:
        named, t, room_col, user = max(options, key=lambda o: o[0])
        return Membership("table", room=room.table, table=t.name, room_column=room_col, user_column=user,
                          reason=f"{t.name}.{room_col} references {room.table} and {t.name}.{user} is a user")
    table = cat.tables[room.table]
    on_room = [c.name for c in table.columns.values()
               if c.name not in CREATOR_NAMES and _is_user_column(c, user_keys, cat)]
    if len(on_room) >= 2:
        return Membership("columns", room=room.table, user_columns=tuple(on_room),
                          reason=f"{room.table} names its participants in {', '.join(on_room)}")
    arrays = [c.name for c in table.columns.values()
              if c.type in ("uuid[]", "text[]") and any(w in c.name for w in ("participant", "member", "user"))]
    if arrays:
        return Membership("array", room=room.table, user_column=arrays[0],
                          reason=f"{room.table}.{arrays[0]} is an array of user ids")
    return Membership("none", room=room.table,
                      reason=f"no table references {room.table} with a user column, and it has no participant "
                             "columns: every signed-in user is treated alike")


def _staff(cat: Catalog, user_keys: set[tuple[str, str]], memberships: list[Membership]) -> list[Staff]:
    found: list[Staff] = []
    for t in cat.tables.values():
        if t.name.startswith("auth."):
            continue
        for c in t.columns.values():
            if c.name not in ("role", "app_role", "user_role", "roles"):
                continue
            roles = [x for x in c.labels if STAFF_ROLES.search(x)]
            roles += [x for d in t.checks if c.name in d for x in re.findall(r"'([^']+)'", d)
                      if STAFF_ROLES.search(x) and x not in roles]
            user = next((u.name for u in t.columns.values() if u.name != c.name
                         and _is_user_column(u, user_keys, cat)), None)
            if user is None and (t.name, t.pk) in user_keys and t.pk:
                user = t.pk
            reading = [p for p in cat.policies if _reads_role(cat, p.text, t.bare, c.name)]
            if c.fk:  # a role referencing a table of role names: the names its policies compare it with
                named = [x for p in reading for x in re.findall(r"'([^']+)'", p.text) if STAFF_ROLES.search(x)]
                roles += [x for x in dict.fromkeys(named) if x not in roles] or [f"(values of {c.fk[0]})"]
            if not (roles and user):
                continue
            room = next((m.room for m in memberships if m.kind == "table" and m.table == t.name), None)
            grants = [f"{op} {p.table} by {role}" for p in reading
                      for op in (("select", "insert", "update", "delete") if p.cmd == "all" else (p.cmd,))
                      for role in roles if f"'{role}'" in p.text]
            why = f"{t.name}.{c.name} holds roles ({', '.join(roles)})" + (f", per room of {room}" if room else "")
            found.append(Staff(t.name, user, c.name, tuple(roles), room, tuple(dict.fromkeys(grants)), why))
    return found


def _reads_role(cat: Catalog, text: str, table: str, column: str, depth: int = 0) -> bool:
    """Does this policy (or a function it calls, two levels deep) read `column` of `table`?"""
    if re.search(rf"\b{re.escape(table)}\b", text) and re.search(rf"\b{re.escape(column)}\b", text):
        return True
    if depth >= 2:
        return False
    called = set(re.findall(r"([a-z_][a-z0-9_]*)\s*\(", text))
    return any(_reads_role(cat, body, table, column, depth + 1) for name in called
               for body in cat.functions.get(name, ()))


async def discover(conn: AsyncConnection[Any], schemas: tuple[str, ...] = EXPOSED) -> Model:
    return infer(await read_catalog(conn, schemas))
