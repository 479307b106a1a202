"""db.rls_model: the RLS matrix generated from the database's messaging model (msgops.dbmodel).

Rows are arranged as the owner in a rolled-back transaction (users, a room shared by `other` and
`member`, a message by `other`, staff personas, a file per Storage bucket and path convention), then each
persona — member, outsider, anon, staff — tries SELECT / INSERT / UPDATE / DELETE on the model's message,
room and membership tables, its contact columns and the bucket files, with the claims PostgREST sets and,
for members' reads, once more without `role`. Each cell has the kind of hole
it reveals when it goes wrong; an error (42P17 infinite recursion, a missing function) is a failure with
its SQLSTATE, never a denial.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import AsyncConnection, sql

from msgops.dbmodel.arrange import Arranged, ArrangeError, Arranger, arrange
from msgops.dbmodel.discover import Catalog, Table, read_catalog
from msgops.dbmodel.model import Model
from msgops.dbmodel.staff import StaffPersona
from msgops.dbmodel.storage import Storage
from msgops.dbmodel.target import target_model
from msgops.impersonation import ANON, Attempt, ImpersonationError, Persona, attempt, require_rls_bypass, rolled_back
from msgops.impersonation import Outcome as Seen
from msgops.probes import probe
from msgops.probes.context import Context, Skip
from msgops.probes.db.split import across, mine
from msgops.results import Outcome, failed, passed

Expect = Literal["allowed", "denied"]
Op = Literal["select", "insert", "update", "delete"]
Subject = Literal["message", "room", "membership", "contact", "staff", "storage"]


class _NoRoleClaim(Persona):
    """A member whose claims carry `sub` only (some gateways and custom JWTs send no `role`)."""

    def claims(self) -> dict[str, Any]:
        claims = super().claims()
        claims.pop("role", None)
        return claims


@dataclass(frozen=True)
class Cell:
    persona: str
    op: Op
    subject: Subject
    object: str  # the table (or table.column) the cell is about
    expect: Expect
    hole: str  # the kind of hole when the cell goes wrong
    what: str
    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    # a staff cell's ordinary counterpart: staff doing what this persona may not do is the finding, not what
    # both may do (that is the counterpart's own finding)
    baseline: str | None = None


def about_rooms(c: Cell) -> bool:
    """Does the cell ask who may be in a room (so that having no membership answers it)?"""
    return c.subject in ("room", "membership") or (c.subject == "message" and c.op in ("select", "insert"))


@dataclass
class Matrix:
    cells: list[tuple[Cell, Attempt]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    found_in: list[Cell | None] = field(default_factory=list)  # the cell of each finding (None: the model's)

    def subset(self, wanted: Select) -> Matrix:
        """The cells `wanted` selects, with their findings (and the model's own where those cells ask it)."""
        out = Matrix(cells=[(c, s) for c, s in self.cells if wanted(c)], notes=list(self.notes))
        rooms_asked = any(about_rooms(c) for c, _ in out.cells)
        for cell, finding in zip(self.found_in, self.findings, strict=True):
            if (cell is not None and wanted(cell)) or (cell is None and rooms_asked):
                out.findings.append(finding)
                out.found_in.append(cell)
        return out

    def judge(self, cell: Cell, seen: Attempt, baseline: Attempt | None = None) -> None:
        self.cells.append((cell, seen))
        problem = _problem(cell.expect, seen)
        if problem is None:
            return
        if cell.expect == "denied" and baseline is not None and baseline.outcome is Seen.ALLOWED \
                and seen.outcome is Seen.ALLOWED:
            return  # the ordinary persona may do it too: their cell says so
        if cell.hole == "storage_control":  # the convention read from the policies did not hold: say so
            self.notes.append(f"{cell.what}: {problem}; the outsider and anon cells on this file show less")
            return
        if cell.hole == "member_denied" and cell.op != "select" and (seen.message or "").startswith(
                "permission denied for"):  # no privilege at all: writes go through something else (a function)
            self.notes.append(f"members cannot {cell.op} {cell.object} directly ({seen.message}): the cells that "
                              f"{cell.op} it show what the grants refuse, not what the policies do")
            return
        kind = "policy_error" if seen.outcome is Seen.ERROR and not (seen.sqlstate or "").startswith("23") \
            else cell.hole
        self.findings.append({"kind": kind, "object": cell.object, "op": cell.op, "persona": cell.persona,
                              "what": cell.what, "problem": problem, "attempt": seen.evidence()})
        self.found_in.append(cell)


def _problem(expect: Expect, seen: Attempt) -> str | None:
    if seen.outcome is Seen.ERROR and not (seen.sqlstate or "").startswith("23"):
        return f"errored [{seen.sqlstate}] {seen.message}"
    if expect == "denied":
        if seen.outcome is Seen.ALLOWED:
            return f"allowed ({seen.count} rows)"
        if seen.outcome is Seen.ERROR:
            return f"passed row level security, stopped only by a constraint [{seen.sqlstate}] {seen.message}"
        return None
    if seen.outcome is Seen.ALLOWED or (seen.outcome is Seen.ERROR and expect == "allowed"):
        return None  # a member's write stopped by a constraint still passed row level security
    return f"denied ({seen.outcome}) [{seen.sqlstate or ''}] {seen.message or ''}".rstrip()


# --- building the cells -----------------------------------------------------------------------------


def _render(conn: AsyncConnection[Any], query: sql.Composable) -> str:
    return query.as_string(conn)


async def build_cells(conn: AsyncConnection[Any], cat: Catalog, model: Model, a: Arranged,
                      arranger: Arranger) -> list[Cell]:
    cells: list[Cell] = []
    keys = a.keys
    sending: dict[str, Sending] = {}

    def ident(name: str) -> sql.Identifier:
        return sql.Identifier(name)

    for msg in model.messages:
        t = cat.tables[msg.table]
        table = sql.SQL(msg.table)
        pk = t.pk
        if pk is None or msg.table not in a.messages:
            continue
        room_id = a.rooms.get(msg.room or msg.table)
        membership = model.membership_of(msg.room).kind if msg.room else "none"
        with_members = membership != "none"
        mid = {"msg": a.messages[msg.table]}
        if msg.room_column and room_id is not None:
            read = _render(conn, sql.SQL("select {} from {} where {} = %(room)s").format(
                ident(pk), table, ident(msg.room_column)))
            params = {"room": room_id}
        else:
            params = mid
        by_id = _render(conn, sql.SQL("select {} from {} where {} = %(msg)s").format(ident(pk), table, ident(pk)))
        if params is mid:
            read = by_id
        obj = msg.table
        cells.append(Cell("member", "select", "message", obj, "allowed", "member_denied",
                          f"member reads {obj} in their room (control)", read, params))
        cells.append(Cell("member_without_role", "select", "message", obj, "allowed", "role_claim_required",
                          f"member reads {obj} with claims that carry no role", read, params))
        if with_members:
            cells.append(Cell("outsider", "select", "message", obj, "denied", "outsider_reads",
                              f"outsider reads {obj} of a room they are not in", read, params))
            if params is not mid:
                cells.append(Cell("outsider", "select", "message", obj, "denied", "outsider_reads",
                                  f"outsider reads a message of {obj} by its id", by_id, mid))
        cells.append(Cell("anon", "select", "message", obj, "denied", "anon_reads", f"anon reads {obj}", read, params))

        async def send(as_key: Any, msg: Any = msg, t: Any = t, room_id: Any = room_id) -> tuple[str, dict[str, Any]]:
            fixed: dict[str, Any] = {msg.sender: str(as_key) if t.columns[msg.sender].textual else as_key,
                                     msg.content: "msgops matrix"}
            for extra in msg.extra_users:
                fixed[extra] = str(keys["other"]) if t.columns[extra].textual else keys["other"]
            if msg.room_column and room_id is not None:
                fixed[msg.room_column] = room_id
            values = _writable(t, fixed, await arranger.values(msg.table, fixed, as_key))
            return _render(conn, arranger.statement(msg.table, values)), values

        q, v = await send(keys["member"])
        cells.append(Cell("member", "insert", "message", obj, "allowed", "member_denied",
                          f"member sends to {obj} in their room (control)", q, v))
        if with_members:
            q, v = await send(keys["outsider"])
            cells.append(Cell("outsider", "insert", "message", obj, "denied", "outsider_writes",
                              f"outsider sends to {obj} in a room they are not in", q, v))
        q, v = await send(keys["other"])
        cells.append(Cell("member", "insert", "message", obj, "denied", "forged_sender",
                          f"member sends to {obj} as another user ({msg.sender} forged)", q, v))
        cells.append(Cell("anon", "insert", "message", obj, "denied", "anon_writes", f"anon sends to {obj}", q, v))
        update = _render(conn, sql.SQL("update {} set {} = 'msgops edit' where {} = %(msg)s").format(
            table, ident(msg.content), ident(pk)))
        delete = _render(conn, sql.SQL("delete from {} where {} = %(msg)s").format(table, ident(pk)))
        cells.append(Cell("member", "update", "message", obj, "denied", "member_edits_others",
                          f"member edits another user's message in {obj}", update, mid))
        cells.append(Cell("member", "delete", "message", obj, "denied", "member_edits_others",
                          f"member deletes another user's message in {obj}", delete, mid))
        if with_members:
            cells.append(Cell("outsider", "update", "message", obj, "denied", "outsider_writes",
                              f"outsider edits a message in {obj}", update, mid))
        cells.append(Cell("anon", "update", "message", obj, "denied", "anon_writes", f"anon edits {obj}", update, mid))
        cells.append(Cell("anon", "delete", "message", obj, "denied", "anon_writes", f"anon deletes {obj}", delete,
                          mid))
        noop = _render(conn, sql.SQL("update {} set {} = {} where {} = %(msg)s").format(
            table, ident(msg.content), ident(msg.content), ident(pk)))
        sending[obj] = Sending(read, params, send, noop, delete, mid, with_members)

    for room in model.rooms:
        if room.table not in a.rooms:
            continue
        m = model.membership_of(room.table)
        params = {"room": a.rooms[room.table]}
        table = sql.SQL(room.table)
        read = _render(conn, sql.SQL("select {} from {} where {} = %(room)s").format(
            ident(room.key), table, ident(room.key)))
        touch = _render(conn, sql.SQL("update {} set {} = {} where {} = %(room)s").format(
            table, ident(room.key), ident(room.key), ident(room.key)))
        drop = _render(conn, sql.SQL("delete from {} where {} = %(room)s").format(table, ident(room.key)))
        obj = room.table
        cells.append(Cell("member", "select", "room", obj, "allowed", "member_denied",
                          f"member sees their room in {obj} (control)", read, params))
        cells.append(Cell("member_without_role", "select", "room", obj, "allowed", "role_claim_required",
                          f"member sees their room in {obj} with claims that carry no role", read, params))
        cells.append(Cell("anon", "select", "room", obj, "denied", "anon_reads", f"anon sees a room in {obj}", read,
                          params))
        cells.append(Cell("anon", "update", "room", obj, "denied", "anon_writes", f"anon changes a room in {obj}",
                          touch, params))
        cells.append(Cell("anon", "delete", "room", obj, "denied", "anon_writes", f"anon deletes a room in {obj}",
                          drop, params))
        if m.kind == "none":
            continue
        cells.append(Cell("outsider", "select", "room", obj, "denied", "outsider_reads",
                          f"outsider sees a room of {obj} they are not in", read, params))
        cells.append(Cell("outsider", "update", "room", obj, "denied", "outsider_writes",
                          f"outsider changes a room of {obj} they are not in", touch, params))
        cells.append(Cell("outsider", "delete", "room", obj, "denied", "outsider_writes",
                          f"outsider deletes a room of {obj} they are not in", drop, params))
        if m.kind == "table" and m.table and m.room_column and m.user_column:
            mt = cat.tables[m.table]
            members = _render(conn, sql.SQL("select {} from {} where {} = %(room)s").format(
                ident(m.user_column), sql.SQL(m.table), ident(m.room_column)))
            mobj = m.table
            cells.append(Cell("member", "select", "membership", mobj, "allowed", "member_denied",
                              f"member lists who is in their room ({mobj}) (control)", members, params))
            cells.append(Cell("outsider", "select", "membership", mobj, "denied", "outsider_reads",
                              f"outsider lists who is in a room ({mobj})", members, params))
            cells.append(Cell("anon", "select", "membership", mobj, "denied", "anon_reads",
                              f"anon lists who is in a room ({mobj})", members, params))
            for who, hole in (("outsider", "outsider_writes"), ("anon", "anon_writes")):
                as_key = keys["outsider"]
                fixed = {m.room_column: a.rooms[room.table],
                         m.user_column: str(as_key) if mt.columns[m.user_column].textual else as_key}
                values = _writable(mt, fixed, await arranger.values(m.table, fixed, as_key))
                cells.append(Cell(who, "insert", "membership", mobj, "denied", hole,
                                  f"{who} adds the outsider to a room ({mobj})",
                                  _render(conn, arranger.statement(m.table, values)), values))

    users = model.users
    for column in model.contact_columns:
        holder, col = column.rsplit(".", 1)
        if users is None or holder != users.table:
            continue
        read = _render(conn, sql.SQL("select {} from {} where {} = %(other)s and {} is not null").format(
            ident(col), sql.SQL(holder), ident(users.key), ident(col)))
        params = {"other": keys["other"]}
        cells.append(Cell("member", "select", "contact", column, "denied", "contact_readable",
                          f"member reads another user's {col}", read, params))
        cells.append(Cell("anon", "select", "contact", column, "denied", "contact_readable",
                          f"anon reads a user's {col}", read, params))
    cells += await _staff_cells(model, a, sending)
    cells += await _escalation_cells(conn, cat, model, a, arranger)
    cells += _storage_cells(a)
    return cells


_FILE = "bucket_id = %(bucket)s and name = %(name)s"


def _storage_cells(a: Arranged) -> list[Cell]:
    """Per bucket and path convention: the file's rightful reader sees it (a control: its failure is a note
    on the convention), the outsider and anon cannot list, read, overwrite, delete or plant files there."""
    cells: list[Cell] = []
    storage: Storage | None = a.storage
    if storage is None:
        return cells
    for f in storage.files:
        b, obj = f.bucket, f.bucket.object
        at = {"bucket": b.id, "name": f.name}
        key = str(a.subs["other"]) if f.convention.keyed == "user" else f.name.split("/")[0].split(".")[0]
        planted = f.convention.path(key, "planted")
        read = f"select name from storage.objects where {_FILE}"
        cells.append(Cell(f.reader, "select", "storage", obj, "allowed", "storage_control",
                          f"{f.reader} reads {f.name} in bucket {b.id} ({f.convention.reason}) (control)", read, at))
        for who in ("outsider", "anon"):
            me = str(a.subs["outsider"]) if who == "outsider" else None
            listed = "storage_listable" if b.public else f"{who}_reads"
            writes = f"{who}_writes"
            whose = "another user's" if f.convention.keyed == "user" else "a room's"
            cells += [
                Cell(who, "select", "storage", obj, "denied", listed,
                     f"{who} lists/reads {whose} file {f.name} in {'public' if b.public else 'private'} bucket "
                     f"{b.id}", read, at),
                Cell(who, "update", "storage", obj, "denied", writes,
                     f"{who} overwrites {whose} file {f.name} in bucket {b.id}",
                     f"update storage.objects set name = name where {_FILE}", at),
                Cell(who, "delete", "storage", obj, "denied", writes,
                     f"{who} deletes {whose} file {f.name} in bucket {b.id}",
                     f"delete from storage.objects where {_FILE}", at),
                Cell(who, "insert", "storage", obj, "denied", writes,
                     f"{who} uploads {planted} into {whose} path in bucket {b.id}",
                     storage.insert(), {"bucket": b.id, "name": planted, "me": me}),
            ]
    return cells


@dataclass(frozen=True)
class Sending:
    """The statements of one message table's cells, for the staff personas to attempt too."""

    read: str
    read_params: dict[str, Any]
    send: Callable[[Any], Awaitable[tuple[str, dict[str, Any]]]]
    touch: str  # an UPDATE that changes nothing (a content guard would refuse a real edit by staff)
    delete: str
    message: dict[str, Any]
    with_members: bool


async def _staff_cells(model: Model, a: Arranged, sending: dict[str, Sending]) -> list[Cell]:
    """Each staff persona x the four commands on the message tables of its rooms (every room for a global
    role). What the model grants a role held in this room (Staff.grants) must be allowed; what it grants a
    global role is observed only; anything else an ordinary user is denied must be denied to staff too."""
    cells: list[Cell] = []
    for p in a.staff:
        for msg in model.messages:
            s = sending.get(msg.table)
            if s is None or (p.scope != "global" and msg.room != p.staff.room):
                continue
            obj, who = msg.table, p.describe()

            def granted(op: str, p: StaffPersona = p, obj: str = obj) -> bool:
                return p.scope != "elsewhere" and p.staff.may(op, obj, p.role)

            ops: list[tuple[Op, str, dict[str, Any], str | None]] = []
            if p.scope != "here" and s.with_members:  # a member of the room reads and sends anyway
                ops.append(("select", s.read, s.read_params, "outsider"))
                q, v = await s.send(a.keys[p.name])
                ops.append(("insert", q, v, "outsider"))
            ops += [("update", s.touch, s.message, "member"), ("delete", s.delete, s.message, "member")]
            for op, q, v, baseline in ops:
                if granted(op) and p.scope == "here":
                    cells.append(Cell(p.name, op, "message", obj, "allowed", "staff_denied",
                                      f"{who} may {op} in {obj} ({p.staff.table} grants it), as the policies say",
                                      q, v, baseline))
                elif granted(op):  # a global grant: whether it reaches a room its holder is not in is not asserted
                    a.notes.append(f"{p.name}: the policies let {p.role} {op} {obj} (observed, not required: the "
                                   "grant may need the rows in sight or act through a function)")
                else:
                    hole = "staff_reads" if op == "select" else "staff_writes"
                    target = f"another user's message in {obj}" if op in ("update", "delete") else obj
                    cells.append(Cell(p.name, op, "message", obj, "denied", hole,
                                      f"{who} tries to {op} {target}; no policy grants the role this", q, v,
                                      baseline))
    return cells


async def _escalation_cells(conn: AsyncConnection[Any], cat: Catalog, model: Model, a: Arranged,
                            arranger: Arranger) -> list[Cell]:
    """A member giving themselves a staff role the policies trust: that column must not be theirs to set."""
    cells: list[Cell] = []
    users = model.users
    for s in model.staff:
        roles = sorted(s.granted_roles, key=lambda r: -sum(g.endswith(f" by {r}") for g in s.grants))
        if not roles:
            continue
        role, t = roles[0], cat.tables[s.table]
        obj = f"{s.table}.{s.role_column}"
        value = str(a.keys["member"]) if t.columns[s.user_column].textual else a.keys["member"]
        cast = sql.SQL(t.columns[s.role_column].type)
        if s.room is not None:
            m = model.membership_of(s.room)
            if s.room not in a.rooms or m.room_column is None:
                continue
            q = _render(conn, sql.SQL("update {} set {} = %(role)s::{} where {} = %(room)s and {} = %(me)s").format(
                sql.SQL(s.table), sql.Identifier(s.role_column), cast, sql.Identifier(m.room_column),
                sql.Identifier(s.user_column)))
            params: dict[str, Any] = {"role": role, "room": a.rooms[s.room], "me": value}
            op: Op = "update"
        elif users is not None and s.table == users.table and s.user_column == users.key:
            q = _render(conn, sql.SQL("update {} set {} = %(role)s::{} where {} = %(me)s").format(
                sql.SQL(s.table), sql.Identifier(s.role_column), cast, sql.Identifier(s.user_column)))
            params, op = {"role": role, "me": value}, "update"
        else:
            fixed = {s.user_column: value, s.role_column: role}
            params = _writable(t, fixed, await arranger.values(s.table, fixed, a.keys["member"]))
            q, op = _render(conn, arranger.statement(s.table, params)), "insert"
        cells.append(Cell("member", op, "staff", obj, "denied", "role_escalation",
                          f"member makes themselves {role} ({obj}), a role the policies trust", q, params))
    return cells


def _writable(table: Table, fixed: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """What an API client can send: the values it means to write, and the filled-in ones its role may write
    (a trigger or a default supplies the rest, as it would for the real request)."""
    return {k: v for k, v in values.items() if k in fixed or table.columns[k].insertable}


def supabase_claims(name: str, sub: uuid.UUID) -> dict[str, Any]:
    """The claims Supabase Auth puts in an access token besides sub and role (policies may read any)."""
    return {"aud": "authenticated", "email": f"{name}-{sub.hex[:8]}@msgops.invalid", "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"]}, "user_metadata": {},
            "aal": "aal1", "amr": [{"method": "password"}], "session_id": str(uuid.uuid5(sub, "session")),
            "is_anonymous": False}


def _persona(name: str, a: Arranged) -> Persona:
    if name == "anon":
        return ANON
    if name == "member_without_role":
        return _NoRoleClaim("member_without_role", a.subs["member"],
                            extra_claims=supabase_claims("member", a.subs["member"]))
    return Persona(name, a.subs[name], extra_claims=supabase_claims(name, a.subs[name]))


# --- running ----------------------------------------------------------------------------------------

Select = Callable[[Cell], bool]


@dataclass
class Part:
    """The cells one connection built and the attempts it made (of every n-th cell)."""

    cells: list[Cell]
    tried: dict[int, Attempt]
    notes: list[str]


async def run_part(conn: AsyncConnection[Any], model: Model, k: int = 0, n: int = 1,
                   wanted: Select | None = None, cat: Catalog | None = None) -> Part:
    """Arrange and build every cell in one rolled-back transaction, and attempt the wanted cells whose index
    is k modulo n (all of them when n is 1). `cat`: the catalog, when the caller has read it already."""
    cat = cat or await read_catalog(conn)
    async with rolled_back(conn):
        await require_rls_bypass(conn)
        try:
            a = await arrange(conn, cat, model)
        except ArrangeError as exc:
            raise Skip(f"could not arrange rows on this schema: {exc}") from None
        cells = await build_cells(conn, cat, model, a, Arranger(conn, cat, model))
        tried = {i: await attempt(conn, _persona(c.persona, a), c.sql, c.params) for i, c in enumerate(cells)
                 if mine(i, k, n) and (wanted is None or wanted(c))}
    return Part(cells, tried, a.notes)


def assemble(model: Model, parts: list[Part], wanted: Select | None = None) -> Matrix:
    """Judge the attempts of every part in the cells' order (each cell as the part that attempted it)."""
    result = Matrix(notes=list(parts[0].notes))
    first = parts[0].cells
    attempted = sorted((i, part.cells[i], seen) for part in parts for i, seen in part.tried.items())
    judge_all(result, [c for _, c, _ in attempted], [s for _, _, s in attempted])
    if model.messages and not model.has_membership and (wanted is None or any(wanted(c) and about_rooms(c)
                                                                              for c in first)):
        for msg in model.messages:
            result.findings.append({"kind": "no_membership", "object": msg.table,
                                    "what": "who may read a room", "problem": next(iter(model.findings), ""),
                                    "attempt": None})
            result.found_in.append(None)
    return result


async def run_matrix(conn: AsyncConnection[Any], model: Model, wanted: Select | None = None) -> Matrix:
    """Arrange, build and attempt every cell (or those `wanted` selects), all in one rolled-back transaction."""
    return assemble(model, [await run_part(conn, model, wanted=wanted)], wanted)


def judge_all(result: Matrix, cells: list[Cell], seen: list[Attempt]) -> None:
    """Judge each attempt in the cells' order: a member's claims without role against the member's control,
    a staff persona against its ordinary counterpart."""
    first: dict[tuple[str, str, str, str], Attempt] = {}
    for cell, s in zip(cells, seen, strict=True):
        first.setdefault((cell.persona, cell.op, cell.subject, cell.object), s)
    for cell, s in zip(cells, seen, strict=True):
        if cell.persona == "member_without_role":
            control = first.get(("member", cell.op, cell.subject, cell.object))
            if control is None or control.outcome is not Seen.ALLOWED:
                continue  # only a difference from the control says something about the role claim
        baseline = first.get((cell.baseline, cell.op, cell.subject, cell.object)) if cell.baseline else None
        result.judge(cell, s, baseline)


def outcome(name: str, model: Model, m: Matrix) -> Outcome:
    evidence: dict[str, Any] = {
        "scenario": name,
        "model": model.to_mapping(),
        "attempts": len(m.cells),
        "failures": len(m.findings),
        "findings": m.findings,
        "cells": [{"what": c.what, "persona": c.persona, "op": c.op, "object": c.object, "expect": c.expect,
                   "outcome": str(s.outcome), "sqlstate": s.sqlstate} for c, s in m.cells],
        "notes": m.notes,
    }
    if m.findings:
        shown = "; ".join(f"{f['kind']} on {f['object']}{_how(f)}: {f['what']}: {f['problem']}"
                          for f in m.findings[:6])
        more = f" (and {len(m.findings) - 6} more)" if len(m.findings) > 6 else ""
        return failed(f"{name}: {shown}{more}", **evidence)
    if not m.cells:
        raise Skip(f"{name}: the model has nothing this check applies to "
                   f"({'; '.join(m.notes) or 'no message, room or membership table'})")
    return passed(f"{name}: {len(m.cells)} attempts behaved as required", **evidence)


def _how(finding: dict[str, Any]) -> str:
    return f" ({finding['op']} as {finding['persona']})" if finding.get("persona") else ""


async def model_matrix(ctx: Context, name: str, wanted: Select | None = None) -> Outcome:
    model = await target_model(ctx)
    if not model.messages and not model.rooms:
        raise Skip("no messaging tables found in the database (run `msgops discover`, or describe them under "
                   "schema: in msgops.yaml)")
    m = await _whole_matrix(ctx, model)
    return outcome(name, model, m if wanted is None else m.subset(wanted))


async def _whole_matrix(ctx: Context, model: Model) -> Matrix:
    """Every cell, run once per check run; the seed scenarios take their subsets of it."""
    lock = ctx.cache.setdefault("db.rls_model.lock", asyncio.Lock())
    async with lock:
        cached = ctx.cache.get("db.rls_model.matrix")
        if isinstance(cached, Matrix):
            return cached
        if isinstance(cached, Skip):
            raise Skip(str(cached))
        try:
            m = await _run_once(ctx, model)
        except Skip as exc:
            ctx.cache["db.rls_model.matrix"] = exc
            raise
        ctx.cache["db.rls_model.matrix"] = m
        return m


async def _run_once(ctx: Context, model: Model) -> Matrix:
    """The matrix over a few pooled connections (msgops.probes.db.split): each arranges its own rows."""

    async with ctx.db() as conn:
        cat = await read_catalog(conn)  # once: the parts share it

    async def part(conn: AsyncConnection[Any], k: int, n: int) -> Part:
        try:
            return await run_part(conn, model, k, n, cat=cat)
        except ImpersonationError as exc:
            raise Skip(str(exc)) from None
        except psycopg.Error as exc:
            raise Skip(f"could not run the matrix on this schema [{exc.sqlstate}] {exc.diag.message_primary}") \
                from None

    parts = await across(ctx, part)
    if len({len(p.cells) for p in parts}) > 1:  # arranged differently: judge one connection's own cells
        parts = await across(ctx, part, ways=1)
    return assemble(model, parts)


@probe("db.rls_model", waits_long=True,
       what="Discovers the messaging model (rooms, membership, messages, users, staff roles), arranges a room "
            "shared by two users, a message in it and a file per Storage bucket inside a rolled-back transaction, "
            "then acts as member, outsider and anon (and as a member whose claims carry no role, and as staff "
            "not in the room) with SELECT / INSERT / UPDATE / DELETE on the model's tables, contact columns and "
            "bucket files.",
       why="Policies are only right as the users who hit them; a non-member reading a room, a forged sender, an "
           "edit of someone else's message or a policy that errors (42P17) on every query is invisible to a "
           "review of the SQL.",
       example="outsider_writes on public.messages: the outsider inserted a message into a conversation they are "
               "not in (the INSERT policy checks sender_id only).",
       fix="Correct the policy named by the finding's table and operation (e.g. add the membership EXISTS to "
           "WITH CHECK); the evidence shows the SQL, the claims and what PostgreSQL returned.")
async def rls_model(ctx: Context) -> Outcome:
    return await model_matrix(ctx, "rls_model")


__all__ = ["Cell", "Matrix", "model_matrix", "run_matrix"]
