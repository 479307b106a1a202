"""db.functions_outsider: every function the API roles may call, called as an outsider, as anon and as a
member, with arguments that point at other users' rows (ids from the arranged data).

SECURITY DEFINER functions run first: they bypass row level security, so a function is the usual way
around the policies. A call fails the check when, for an outsider or anon, it returns what RLS hides
(the room's messages, a member's contact details, the id of a room they are not in) or changes what RLS
protects (the room's members, its messages, the room itself); or when it errors for a member with a
schema error (an undefined table or column, 42P17 recursion). Everything is rolled back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import tuple_row

from msgops.dbmodel.arrange import Arranged, arrange
from msgops.dbmodel.discover import ROOM_WORDS, read_catalog
from msgops.dbmodel.model import Model
from msgops.dbmodel.target import target_model
from msgops.impersonation import (
    ANON,
    ImpersonationError,
    Persona,
    as_owner,
    as_persona,
    require_rls_bypass,
    rolled_back,
)
from msgops.probes import probe
from msgops.probes.context import Context, Skip
from msgops.results import Outcome, failed, passed

_CALLABLE = """
select format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) as signature,
       p.proname as name, p.prosecdef as definer,
       coalesce(p.proargnames, '{}') as arg_names, p.proargtypes::regtype[]::text[] as arg_types,
       p.pronargdefaults as defaults, p.proretset as returns_set,
       case when exists (select 1 from pg_roles where rolname = 'anon')
            then has_function_privilege('anon', p.oid, 'EXECUTE') else false end as anon,
       case when exists (select 1 from pg_roles where rolname = 'authenticated')
            then has_function_privilege('authenticated', p.oid, 'EXECUTE') else false end as authenticated
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
 where n.nspname = 'public' and p.prokind = 'f'
   and p.prorettype not in ('trigger'::regtype, 'event_trigger'::regtype)
   and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
 order by p.prosecdef desc, 1
"""
_SCHEMA_ERRORS = ("42P01", "42703", "42883", "42P17", "42804", "0A000")
MAX_FUNCTIONS = 40


@dataclass(frozen=True)
class Function:
    signature: str
    name: str
    definer: bool
    arg_names: list[str]
    arg_types: list[str]
    anon: bool
    authenticated: bool


def _argument(name: str, type_: str, a: Arranged, model: Model, labels: dict[str, list[str]]) -> Any:
    """A value pointing at someone else's data for one argument (None: this type cannot be supplied)."""
    n = name.lower()
    room = _named(a.rooms, n)
    message = _named(a.messages, n)
    if type_ == "uuid":
        if any(w in n for w in ROOM_WORDS) and room is not None:
            return room
        if ("message" in n or "msg" in n) and message is not None:
            return message
        if any(w in n for w in ("user", "other", "recipient", "participant", "member", "profile", "target", "to")):
            return a.keys["other"]
        return room if room is not None else a.keys["other"]
    if type_ in ("text", "character varying", "citext"):
        if "email" in n:
            return f"other-{a.subs['other'].hex[:8]}@msgops.invalid"
        if any(w in n for w in ROOM_WORDS) and room is not None:
            return str(room)
        if any(w in n for w in ("user", "other", "recipient", "member")):
            return str(a.keys["other"])
        return "msgops"
    if type_ in ("integer", "bigint", "smallint", "numeric"):
        return room if isinstance(room, int) and any(w in n for w in ROOM_WORDS) else 1
    if type_ == "boolean":
        return False
    if type_ in ("json", "jsonb"):
        return "{}"
    if type_ in labels:
        return labels[type_][0] if labels[type_] else None
    return None


def _named(ids: dict[str, Any], arg: str) -> Any:
    """The arranged id whose table the argument's name speaks of (conversation_id -> public.conversations)."""
    words = [w for w in (*ROOM_WORDS, "message") if w in arg]
    for table, value in ids.items():
        if any(w in table for w in words):
            return value
    return next(iter(ids.values()), None)


async def _labels(conn: AsyncConnection[Any]) -> dict[str, list[str]]:
    cur = await conn.execute("select t.oid::regtype::text, array_agg(e.enumlabel order by e.enumsortorder) "
                             "from pg_type t join pg_enum e on e.enumtypid = t.oid group by 1")
    return {r[0]: list(r[1]) for r in await cur.fetchall()}


async def _state(conn: AsyncConnection[Any], model: Model, a: Arranged) -> dict[str, Any]:
    """What RLS protects in the arranged data, read as the owner: the room, its members, its messages."""
    state: dict[str, Any] = {}
    for room in model.rooms:
        if room.table not in a.rooms:
            continue
        rid = a.rooms[room.table]
        cur = await conn.execute(sql.SQL("select to_jsonb(r)::text from {} r where {} = %s").format(
            sql.SQL(room.table), sql.Identifier(room.key)), (rid,))
        state[f"{room.table} row"] = [r[0] for r in await cur.fetchall()]
        m = model.membership_of(room.table)
        if m.kind == "table" and m.table and m.room_column and m.user_column:
            cur = await conn.execute(sql.SQL("select {}::text from {} where {} = %s order by 1").format(
                sql.Identifier(m.user_column), sql.SQL(m.table), sql.Identifier(m.room_column)), (rid,))
            state[f"{m.table} members"] = [r[0] for r in await cur.fetchall()]
    for msg in model.messages:
        if msg.room_column and (msg.room or msg.table) in a.rooms:
            cur = await conn.execute(sql.SQL("select count(*), md5(coalesce(string_agg({}::text, '|' "
                                             "order by {}::text), '')) from {} where {} = %s").format(
                sql.Identifier(msg.content), sql.Identifier(msg.content), sql.SQL(msg.table),
                sql.Identifier(msg.room_column)), (a.rooms[msg.room or msg.table],))
            state[f"{msg.table} messages"] = list(await cur.fetchone() or ())
    return state


def _secrets(a: Arranged, model: Model) -> dict[str, str]:
    """Values only a member may see, as they would appear in a function's result."""
    found = {"the room's message text": "msgops: other's message"}
    for table, rid in a.rooms.items():
        if len(str(rid)) >= 8:  # a small integer id would match any number in a result
            found[f"the id of a room in {table}"] = str(rid)
    found["another user's email"] = f"other-{a.subs['other'].hex[:8]}@msgops.invalid"
    return found


async def _call(conn: AsyncConnection[Any], model: Model, a: Arranged, persona: Persona, fn: Function,
                args: list[Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """One call as `persona` in a savepoint: what it returned, what it changed from `before` (the
    arranged state, the same before every call since each one is rolled back; None: not compared),
    or how it failed."""
    call = sql.SQL("select to_jsonb(x)::text from {}({}) as x").format(
        sql.SQL(fn.signature.split("(")[0]),
        sql.SQL(", ").join(sql.SQL("{}::{}").format(sql.Literal(v), sql.SQL(t)) for v, t in zip(
            args, fn.arg_types, strict=True)))
    text = call.as_string(conn)
    record: dict[str, Any] = {"persona": persona.name, "call": text}
    try:
        async with conn.transaction(force_rollback=True):
            await as_persona(conn, persona)
            cur = await conn.execute(text)
            rows = [r[0] for r in await cur.fetchmany(20)]
            await as_owner(conn)
            after = await _state(conn, model, a) if before is not None else {}
        record["rows"] = rows
        if before is not None:
            record["changed"] = sorted(k for k in before if before[k] != after.get(k))
    except psycopg.Error as exc:
        record["sqlstate"], record["error"] = exc.sqlstate, exc.diag.message_primary
    return record


def _judge(fn: Function, record: dict[str, Any], secrets: dict[str, str], is_member: bool) -> str | None:
    if "error" in record:
        if is_member and record["sqlstate"] in _SCHEMA_ERRORS:
            return f"errors for a member [{record['sqlstate']}] {record['error']}"
        return None
    if is_member:
        return None
    if record.get("changed"):
        return f"changed {', '.join(record['changed'])}"
    shown = " ".join(str(r) for r in record["rows"] if r is not None)
    leaked = [what for what, value in secrets.items()
              if value and re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", shown)]
    if leaked:
        return f"returned {', '.join(leaked)}"
    return None


async def check_functions(conn: AsyncConnection[Any], model: Model) -> tuple[list[dict[str, Any]], list[str], int]:
    cat = await read_catalog(conn)
    notes: list[str] = []
    findings: list[dict[str, Any]] = []
    calls = 0
    async with rolled_back(conn):
        await require_rls_bypass(conn)
        a = await arrange(conn, cat, model)
        await as_owner(conn)
        cur = await conn.execute(_CALLABLE)
        fns = [Function(r[0], r[1], r[2], list(r[3]), list(r[4]), bool(r[7]), bool(r[8]))
               for r in await cur.fetchall() if r[7] or r[8]]
        labels = await _labels(conn)
        secrets = _secrets(a, model)
        arranged = await _state(conn, model, a)  # as the owner
        outsider, member = Persona("outsider", a.subs["outsider"]), Persona("member", a.subs["member"])
        for fn in fns[:MAX_FUNCTIONS]:
            names = fn.arg_names[:len(fn.arg_types)] + [""] * (len(fn.arg_types) - len(fn.arg_names))
            args = [_argument(n, t, a, model, labels) for n, t in zip(names, fn.arg_types, strict=True)]
            if any(v is None for v in args):
                notes.append(f"{fn.signature}: not called (an argument type msgops cannot supply)")
                continue
            personas = [(p, m) for p, m, ok in ((outsider, False, fn.authenticated), (ANON, False, fn.anon),
                                                 (member, True, fn.authenticated)) if ok]
            for persona, is_member in personas:
                # What a member's call changes is theirs to change: only the others' are compared.
                record = await _call(conn, model, a, persona, fn, args, None if is_member else arranged)
                calls += 1
                problem = _judge(fn, record, secrets, is_member)
                if problem:
                    findings.append({"kind": "function_outsider" if not is_member else "function_error",
                                     "object": fn.signature, "definer": fn.definer, "problem": problem,
                                     **record})
        if len(fns) > MAX_FUNCTIONS:
            notes.append(f"{len(fns) - MAX_FUNCTIONS} more functions not called (the first {MAX_FUNCTIONS}, "
                         "SECURITY DEFINER first)")
    return findings, notes, calls


@probe("db.functions_outsider", waits_long=True,
       what="Calls every public function that anon or authenticated may execute (SECURITY DEFINER first) as an "
            "outsider, as anon and as a member, with arguments pointing at other users' rooms, messages and ids "
            "from rows arranged in a rolled-back transaction, and compares what it returned and changed with what "
            "row level security lets that persona see and touch.",
       why="A SECURITY DEFINER function runs with its owner's rights: one that trusts its arguments is a door "
           "around every policy (add anyone to any room, read any conversation); one that errors breaks the "
           "feature built on it.",
       example="public.join_room(room uuid) is SECURITY DEFINER: called by an outsider with another room's id, it "
               "added the outsider to public.room_members.",
       fix="Check the caller inside the function (e.g. `if not public.is_member(room, auth.uid()) then raise "
           "exception using errcode = '42501'`), revoke EXECUTE from anon, and set search_path.")
async def functions_outsider(ctx: Context) -> Outcome:
    model = await target_model(ctx)
    if not model.messages and not model.rooms:
        raise Skip("no messaging tables found: nothing to point the functions' arguments at")
    async with ctx.db() as conn:
        factory = conn.row_factory
        conn.row_factory = tuple_row  # type: ignore[assignment]
        try:
            findings, notes, calls = await check_functions(conn, model)
        except ImpersonationError as exc:
            raise Skip(str(exc)) from None
        finally:
            conn.row_factory = factory
    evidence = {"findings": findings, "notes": notes, "calls": calls}
    if findings:
        shown = "; ".join(f"{f['object']} as {f['persona']}: {f['problem']}" for f in findings[:5])
        return failed(f"{len(findings)} function call(s) went around row level security or broke: {shown}",
                      **json.loads(json.dumps(evidence, default=str)))
    if not calls:
        raise Skip("no function in public is executable by anon or authenticated" +
                   (f" ({'; '.join(notes)})" if notes else ""))
    return passed(f"{calls} calls of the exposed functions respected row level security", **evidence)


__all__ = ["check_functions", "functions_outsider"]
