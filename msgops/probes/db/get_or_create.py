"""db.get_or_create_room: the model's get-or-create function for a room between users, found by name or by
meaning and called by impersonation in a rolled-back transaction.

A function is the model's get-or-create when the API roles may execute it, every argument it requires
is a user (its name says user/participant/member/..., or it is an array of them), and it returns a room:
a row of a room table, or a key whose name says so (`get_or_create_conversation`, `start_dm`, ...). The
seeds' name is preferred when it exists.

Called as a member naming the other user, it must return a room of the model with both in it (membership
rows, participant columns or array, as the model says) and the same room when called again. Called as an
outsider it must not return a room they are not in, and, when the signature names both participants, must
neither return nor create a room between two other users. Called as anon it must be refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from msgops.dbmodel.arrange import ArrangeError, Arranger
from msgops.dbmodel.discover import ROOM_WORDS, Catalog, read_catalog
from msgops.dbmodel.model import Model
from msgops.dbmodel.target import target_model
from msgops.impersonation import ANON, ImpersonationError, Persona, as_owner, as_persona, require_rls_bypass
from msgops.probes import Name, probe
from msgops.probes.context import Context, Skip
from msgops.probes.db.meaning import seed_schema
from msgops.results import Outcome, failed, passed

_EXPOSED = """
select format('%%I.%%I', n.nspname, p.proname) as name,
       format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) as signature,
       coalesce(p.proargnames, '{}') as arg_names, p.proargtypes::regtype[]::text[] as arg_types,
       p.pronargdefaults as defaults, p.proretset as returns_set, p.prorettype::regtype::text as returns,
       (select format('%%I.%%I', rn.nspname, rc.relname) from pg_class rc
          join pg_namespace rn on rn.oid = rc.relnamespace where rc.oid = t.typrelid) as returns_row,
       case when exists (select 1 from pg_roles where rolname = 'anon')
            then has_function_privilege('anon', p.oid, 'EXECUTE') else false end as anon,
       case when exists (select 1 from pg_roles where rolname = 'authenticated')
            then has_function_privilege('authenticated', p.oid, 'EXECUTE') else false end as authenticated
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_type t on t.oid = p.prorettype
 where n.nspname = 'public' and p.prokind = 'f'
   and p.prorettype not in ('trigger'::regtype, 'event_trigger'::regtype, 'void'::regtype, 'boolean'::regtype)
   and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
 order by 1, 2
"""
_USER_WORDS = ("user", "participant", "member", "other", "recipient", "receiver", "peer", "partner", "friend",
               "buyer", "seller", "profile", "target", "with", "invitee", "contact", "person")
_KEY_TYPES = ("uuid", "text", "character varying", "integer", "bigint")
_ROOMISH = re.compile(r"get_or_create|(^|_)(dm|direct)(_|$)|" + "|".join(ROOM_WORDS))


@dataclass(frozen=True)
class Candidate:
    name: str
    signature: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]
    required: int  # arguments without a default
    returns: str
    returns_row: str | None  # the table whose row type it returns
    anon: bool

    @property
    def names_both(self) -> bool:
        """Does the caller name every participant (two user arguments, or an array of them)?"""
        return self.required >= 2 or any(t.endswith("[]") for t in self.arg_types[:self.required])


def _is_user_arg(name: str, type_: str) -> bool:
    base = type_.removesuffix("[]")
    return base in _KEY_TYPES and (not name or any(w in name.lower() for w in _USER_WORDS))


def _fits(row: dict[str, Any], model: Model) -> str | None:
    """Why this exposed function is not a get-or-create of the model's rooms (None: it is one)."""
    types = list(row["arg_types"])
    required = len(types) - int(row["defaults"])
    names = list(row["arg_names"])[:len(types)] + [""] * (len(types) - len(row["arg_names"]))
    if required == 0:
        return "it takes no user"
    others = [n or f"${i + 1}" for i, (n, t) in enumerate(zip(names, types, strict=True))
              if i < required and not _is_user_arg(n, t)]
    if others:
        return f"it needs {', '.join(others)}, which is not a user"
    rooms = {r.table for r in model.rooms}
    if row["returns_row"] in rooms:
        return None
    if row["returns"] not in _KEY_TYPES:
        return f"it returns {row['returns']}, not a room"
    if not _ROOMISH.search(row["name"].split(".")[-1]):
        return "its name does not say it returns a room"
    return None


async def find(conn: AsyncConnection[Any], model: Model, preferred: str | None
               ) -> tuple[Candidate | None, list[str]]:
    """The get-or-create function (the preferred name first), and why the others were passed over."""
    cur = await conn.execute(_EXPOSED, ())
    rows = [dict(r) for r in await cur.fetchall()]
    rows = [r for r in rows if r["anon"] or r["authenticated"]]
    want = preferred.removesuffix("()").split(".")[-1] if preferred else None
    rows.sort(key=lambda r: (r["name"].split(".")[-1] != want, "get_or_create" not in r["name"], r["name"]))
    passed_over: list[str] = []
    for r in rows:
        why = _fits(r, model)
        if why is None:
            types = tuple(r["arg_types"])
            return Candidate(r["name"], r["signature"], tuple(r["arg_names"])[:len(types)], types,
                             len(types) - int(r["defaults"]), r["returns"], r["returns_row"], bool(r["anon"])), \
                passed_over
        if r["name"].split(".")[-1] == want or _ROOMISH.search(r["name"].split(".")[-1]):
            passed_over.append(f"{r['signature']}: {why}")
    return None, passed_over


@dataclass
class Call:
    persona: str
    sql: str
    room: str | None = None  # the room it returned (text), if any
    room_table: str | None = None
    sqlstate: str | None = None
    error: str | None = None
    created: list[str] | None = None  # tables that gained rows
    members: list[str] | None = None  # who is in the room it returned, per the model (None: it does not say)

    def evidence(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [])}


class _Session:
    """The users arranged for the calls, and how to read rooms and their members per the model."""

    def __init__(self, conn: AsyncConnection[Any], cat: Catalog, model: Model, fn: Candidate,
                 keys: dict[str, Any], subs: dict[str, Any]) -> None:
        self.conn, self.cat, self.model, self.fn, self.keys, self.subs = conn, cat, model, fn, keys, subs

    def args(self, caller: str, other: str) -> list[Any]:
        """The caller's arguments: the other user (and, when the signature names both, the caller first)."""
        users = [self.keys[caller], self.keys[other]] if self.fn.names_both else [self.keys[other]]
        out: list[Any] = []
        for t in self.fn.arg_types[:self.fn.required]:
            if t.endswith("[]"):
                out.append([str(u) for u in users])
            else:
                out.append(str(users.pop(0) if len(users) > 1 else users[0]))
        return out

    def statement(self, args: list[Any]) -> str:
        values = sql.SQL(", ").join(sql.SQL("{}::{}").format(sql.Literal(v), sql.SQL(t))
                                    for v, t in zip(args, self.fn.arg_types, strict=False))
        if self.fn.returns_row:
            room = self.model.room(self.fn.returns_row)
            key = room.key if room else "id"
            query = sql.SQL("select (x).{}::text from {}({}) as x").format(
                sql.Identifier(key), sql.SQL(self.fn.name), values)
        else:
            query = sql.SQL("select x::text from {}({}) as x").format(sql.SQL(self.fn.name), values)
        return query.as_string(self.conn)

    async def counts(self) -> dict[str, int]:
        """Rows in every room and membership table, read as the owner."""
        tables = [r.table for r in self.model.rooms] + [m.table for m in self.model.memberships if m.table]
        out = {}
        for t in dict.fromkeys(tables):
            cur = await self.conn.execute(sql.SQL("select count(*) as n from {}").format(sql.SQL(t)))
            row = await cur.fetchone()
            out[t] = int(row["n"] if isinstance(row, dict) else row[0])  # type: ignore[index]
        return out

    async def room_table(self, value: str) -> str | None:
        """Which room table holds a row with this key."""
        for room in self.model.rooms:
            key = self.cat.tables[room.table].columns.get(room.key)
            if key is None:
                continue
            try:
                async with self.conn.transaction():
                    cur = await self.conn.execute(sql.SQL("select 1 from {} where {}::text = %s").format(
                        sql.SQL(room.table), sql.Identifier(room.key)), (value,))
                    if await cur.fetchone():
                        return room.table
            except psycopg.Error:
                continue
        return None

    async def members(self, table: str, value: str) -> set[str] | None:
        """The users in a room as the model says (None: the model does not say who is in it)."""
        m = self.model.membership_of(table)
        room = self.model.room(table)
        assert room is not None
        if m.kind == "table" and m.table and m.room_column and m.user_column:
            query = sql.SQL("select {}::text as u from {} where {}::text = %s").format(
                sql.Identifier(m.user_column), sql.SQL(m.table), sql.Identifier(m.room_column))
        elif m.kind == "columns":
            query = sql.SQL("select u from {} r, unnest(array[{}]) u where r.{}::text = %s").format(
                sql.SQL(table), sql.SQL(", ").join(sql.SQL("r.{}::text").format(sql.Identifier(c))
                                                   for c in m.user_columns), sql.Identifier(room.key))
        elif m.kind == "array" and m.user_column:
            query = sql.SQL("select u::text from {} r, unnest(r.{}) u where r.{}::text = %s").format(
                sql.SQL(table), sql.Identifier(m.user_column), sql.Identifier(room.key))
        else:
            return None
        cur = await self.conn.execute(query, (value,))
        return {r["u"] if isinstance(r, dict) else r[0] for r in await cur.fetchall()}

    async def call(self, persona: str, args: list[Any], keep: bool) -> Call:
        """One call as `persona`; `keep` leaves what it did in the (rolled-back) transaction for later calls."""
        text = self.statement(args)
        record = Call(persona, text)
        who = ANON if persona == "anon" else Persona(persona, self.subs[persona])
        try:
            async with self.conn.transaction(force_rollback=not keep):
                await as_owner(self.conn)
                before = await self.counts()
                await as_persona(self.conn, who)
                cur = await self.conn.execute(text)
                row = await cur.fetchone()
                await as_owner(self.conn)
                value = (next(iter(row.values())) if isinstance(row, dict) else row[0]) if row else None
                record.room = None if value is None else str(value)
                after = await self.counts()
                record.created = [t for t, n in after.items() if n > before.get(t, 0)]
                if record.room is not None:
                    record.room_table = await self.room_table(record.room)
                if record.room_table is not None and record.room is not None:
                    inside = await self.members(record.room_table, record.room)
                    record.members = None if inside is None else sorted(_name(k, self.keys) for k in inside)
        except psycopg.Error as exc:
            record.sqlstate, record.error = exc.sqlstate, exc.diag.message_primary or str(exc)
            await as_owner(self.conn)
        return record


def _name(key: Any, keys: dict[str, Any]) -> str:
    return next((p for p, k in keys.items() if str(k) == str(key)), str(key))


async def judge(s: _Session) -> tuple[list[str], list[Call], list[str]]:
    """(problems, calls, notes) for the function in `s`."""
    problems: list[str] = []
    notes: list[str] = []
    fn = s.fn
    first = await s.call("member", s.args("member", "other"), keep=True)
    calls = [first]
    if first.error:
        return [f"errors for a member [{first.sqlstate}] {first.error}"], calls, notes
    if first.room is None:
        return ["returned nothing for a member naming another user"], calls, notes
    if first.room_table is None:
        rooms = ", ".join(r.table for r in s.model.rooms)
        return [f"returned {first.room}, which is no room of {rooms}"], calls, notes
    if first.members is None:
        notes.append(f"{first.room_table}: the model does not say who is in a room; membership not checked")
    elif missing := sorted({"member", "other"} - set(first.members)):
        problems.append(f"the room it returned ({first.room_table} {first.room}) does not have "
                        f"{' and '.join(missing)} in it")
    again = await s.call("member", s.args("member", "other"), keep=True)
    calls.append(again)
    if again.error:
        problems.append(f"errors when called again [{again.sqlstate}] {again.error}")
    elif again.room != first.room:
        problems.append(f"creates a room each call: {first.room}, then {again.room} for the same two users")
    shared = first.room
    # the outsider names the other user (and the member, when the signature names both participants)
    outsider_args = s.args("member", "other") if fn.names_both else s.args("outsider", "other")
    stranger = await s.call("outsider", outsider_args, keep=False)
    calls.append(stranger)
    if stranger.error is None and stranger.room is not None:
        if stranger.room == shared:
            problems.append(f"returned the member's room ({first.room_table} {shared}) to an outsider")
        elif fn.names_both:
            problems.append(f"created a room between two other users for an outsider "
                            f"({stranger.room_table or 'room'} {stranger.room})")
        elif stranger.members is not None and "outsider" not in stranger.members:
            problems.append(f"returned a room the outsider is not in ({stranger.room_table} {stranger.room})")
    elif fn.names_both and stranger.error is None and stranger.created:
        problems.append(f"an outsider's call wrote rows into {', '.join(stranger.created)}")
    if not fn.names_both:
        notes.append(f"{fn.signature} names only the other participant (the caller is the second): an outsider "
                     "may open a room of their own with them")
    anon = await s.call("anon", s.args("member", "other") if fn.names_both else s.args("outsider", "other"),
                        keep=False)
    calls.append(anon)
    if anon.error is None and (anon.room is not None or anon.created):
        problems.append("anon was not refused: " + (f"it returned {anon.room_table or 'a room'} {anon.room}"
                                                    if anon.room is not None else
                                                    f"it wrote rows into {', '.join(anon.created or [])}"))
    return problems, calls, notes


@probe("db.get_or_create_room",
       what="Finds the model's get-or-create function for a room between users (the named one first; else an "
            "exposed function whose arguments are users and that returns a room) and calls it by impersonation in "
            "a rolled-back transaction: as a member it must return a room with both users in it, and the same "
            "room when called again; as an outsider it must not return a room they are not in, nor create one "
            "between two other users; as anon it must be refused.",
       why="Direct messages are opened through this function, usually SECURITY DEFINER: one that creates a room "
           "per call splits a conversation in two, one that trusts its arguments lets anyone open (or read) a "
           "room between two other people, one that errors breaks starting a conversation.",
       example="public.get_or_create_conversation(uuid) inserts a new conversation on every call: the second "
               "call returned another id for the same two users.",
       fix="Look the room up by a unique key of the pair (e.g. least(a, b) || ':' || greatest(a, b)) before "
           "inserting, take the caller from auth.uid() rather than an argument, and revoke EXECUTE from anon.")
async def get_or_create_room(ctx: Context, function: Name | None = None) -> Outcome:
    model = await target_model(ctx)
    if not model.rooms:
        raise Skip("not applicable: the schema has no room table, so there is no room to get or create")
    async with ctx.db() as conn:
        fn, passed_over = await find(conn, model, function)
        if fn is None:
            looked = f"{function} or " if function else ""
            reason = (f"no exposed function is a get-or-create of {', '.join(r.table for r in model.rooms)} "
                      f"(looked for {looked}a function of users returning a room)"
                      + (f"; passed over: {'; '.join(passed_over)}" if passed_over else ""))
            if function and await seed_schema(ctx):
                return failed(f"missing: {function.removesuffix('()')}(); {reason}", passed_over=passed_over)
            raise Skip(f"not applicable: {reason}")
        cat = await read_catalog(conn)
        try:
            await require_rls_bypass(conn)
        except ImpersonationError as exc:
            raise Skip(str(exc)) from None
        try:
            subs, keys = await Arranger(conn, cat, model).users()
        except ArrangeError as exc:
            raise Skip(f"could not arrange users on this schema: {exc}") from None
        session = _Session(conn, cat, model, fn, keys, subs)
        problems, calls, notes = await judge(session)
    evidence = {"function": fn.signature, "found_by": "name" if function and fn.name.endswith(
        "." + function.removesuffix("()").split(".")[-1]) else "meaning", "users": {p: str(k) for p, k in keys.items()},
        "calls": [c.evidence() for c in calls], "notes": notes, "passed_over": passed_over}
    evidence = json.loads(json.dumps(evidence, default=str))
    if problems:
        return failed(f"{fn.signature}: " + "; ".join(problems), **evidence)
    return passed(f"{fn.signature} returned one room with both users in it, twice; the outsider and anon got "
                  "no room of others", **evidence)


__all__ = ["Candidate", "find", "get_or_create_room"]
