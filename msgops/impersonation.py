"""Row Level Security checked by impersonation, the PostgREST/Supabase way.

A persona is an API role plus JWT claims. `attempt()` runs one statement as that persona inside a
transaction (or savepoint) that is always rolled back, and classifies what PostgreSQL did:

- ``allowed``       rows came back, or rows were affected (with the count);
- ``denied_empty``  the statement ran and saw or touched nothing (RLS filtered every row);
- ``denied_error``  SQLSTATE 42501: a missing privilege, or "new row violates row-level security policy";
- ``error``         anything else (42P17 infinite recursion in a policy, a syntax error, a missing table).

An ``error`` is never a denial: a policy that crashes protects nothing on purpose, so a check that
expected a denial must fail on it. Each `Attempt` keeps its evidence: the SQL, the parameters, the
claims (secrets masked), the first rows and the duration.

Fixture rows for a scenario are arranged as the connecting role (which must bypass RLS: a superuser
or a BYPASSRLS owner) inside `rolled_back(conn)`, so nothing a check does is ever committed. Role and
claims are switched with ``set_config(..., true)``: transaction-local, and undone with the savepoint
that `attempt()` wraps around every statement, so the connection is the owner again afterwards.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

ApiRole = Literal["anon", "authenticated", "service_role"]
Params = Sequence[Any] | Mapping[str, Any] | None

INSUFFICIENT_PRIVILEGE = "42501"  # also the SQLSTATE of "new row violates row-level security policy"
MAX_ROWS = 5  # rows kept as evidence; the count is always exact
MAX_TEXT = 200  # characters kept per value in evidence

_SET_PERSONA = "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)"
# 'none' is RESET ROLE: back to the session user, who may switch roles again.
_SET_OWNER = "select set_config('role', 'none', true), set_config('request.jwt.claims', '', true)"
_SECRET_KEY = re.compile(r"secret|password|passwd|token|api[_-]?key|private", re.IGNORECASE)
# Statements that would end or escape the rolled-back transaction; refused before they are sent.
_ESCAPES = re.compile(
    r"^\s*(begin|start\s+transaction|commit|end|rollback|abort|savepoint|release|prepare\s+transaction"
    r"|set\s+(session\s+)?(role|session\s+authorization)|reset|discard)\b",
    re.IGNORECASE,
)
_LEADING_COMMENTS = re.compile(r"^(\s*(--[^\n]*(\n|$)|/\*.*?\*/))*", re.DOTALL)


class ImpersonationError(Exception):
    """The check itself is misused or cannot run safely (not a verdict about the target)."""


class Outcome(StrEnum):
    ALLOWED = "allowed"
    DENIED_EMPTY = "denied_empty"
    DENIED_ERROR = "denied_error"
    ERROR = "error"

    @property
    def denied(self) -> bool:
        return self in (Outcome.DENIED_EMPTY, Outcome.DENIED_ERROR)


@dataclass(frozen=True)
class Persona:
    """Who the statement runs as: an API role and the `sub` of the JWT the API would have verified."""

    name: str
    sub: uuid.UUID | str | None = None  # what the JWT's sub says; PostgreSQL casts it where a uuid is wanted
    role: ApiRole = "authenticated"
    extra_claims: Mapping[str, Any] = field(default_factory=dict)

    def claims(self) -> dict[str, Any]:
        """The claims set in request.jwt.claims, as PostgREST sets them from a verified token."""
        claims: dict[str, Any] = {**self.extra_claims, "role": self.role}
        if self.sub is not None:
            claims["sub"] = str(self.sub)
        return claims


ANON = Persona("anon", None, "anon")


@dataclass(frozen=True)
class Step:
    """One statement with its parameters."""

    sql: str
    params: Params = None


@dataclass(frozen=True)
class Attempt:
    """What happened when a persona tried one statement: the outcome and its evidence."""

    persona: str
    role: str
    outcome: Outcome
    count: int
    sql: str
    params: Params
    claims: dict[str, Any]
    rows: list[dict[str, Any]]
    rows_truncated: bool
    sqlstate: str | None
    message: str | None
    duration_ms: float
    setup: tuple[Step, ...] = ()

    def evidence(self) -> dict[str, Any]:
        """A JSON-serialisable record of the attempt, for a check result."""
        return {
            "persona": self.persona,
            "role": self.role,
            "claims": self.claims,
            "setup": [{"sql": s.sql, "params": _jsonable(s.params)} for s in self.setup],
            "sql": self.sql,
            "params": _jsonable(self.params),
            "outcome": str(self.outcome),
            "count": self.count,
            "rows": _jsonable(self.rows),
            "rows_truncated": self.rows_truncated,
            "sqlstate": self.sqlstate,
            "message": self.message,
            "duration_ms": round(self.duration_ms, 3),
        }

    def describe(self) -> str:
        """One line for a terminal or an assertion message."""
        what = f"{self.outcome} ({self.count} rows)"
        if self.message is not None:
            what = f"{self.outcome} [{self.sqlstate or 'client'}] {self.message}"
        return f"{self.persona}: {what} <- {' '.join(self.sql.split())}"


# --- transactions -----------------------------------------------------------------------------------


@asynccontextmanager
async def rolled_back(conn: AsyncConnection[Any]) -> AsyncIterator[AsyncConnection[Any]]:
    """A transaction (a savepoint if one is open) that is rolled back however the block ends."""
    async with conn.transaction(force_rollback=True):
        yield conn


def _require_transaction(conn: AsyncConnection[Any], what: str) -> None:
    # set_config(..., true) outside a transaction lasts one statement, and writes would autocommit.
    if conn.info.transaction_status != TransactionStatus.INTRANS:
        raise ImpersonationError(f"{what} must run inside `async with rolled_back(conn)`")


async def as_owner(conn: AsyncConnection[Any]) -> None:
    """Switch back to the connecting role with no claims, for the rest of the transaction."""
    _require_transaction(conn, "as_owner()")
    await conn.execute(_SET_OWNER)


async def as_persona(conn: AsyncConnection[Any], persona: Persona) -> None:
    """Take the persona's role and claims for the rest of the transaction (transaction-local)."""
    _require_transaction(conn, "as_persona()")
    await conn.execute(_SET_PERSONA, (persona.role, json.dumps(persona.claims())))


# --- attempts ---------------------------------------------------------------------------------------


def _check_statement(text: str) -> None:
    body = _LEADING_COMMENTS.sub("", text)
    if _ESCAPES.match(body):
        raise ImpersonationError(
            f"refusing a statement that would escape the rolled-back transaction: {text!r}")


async def attempt(
    conn: AsyncConnection[Any],
    persona: Persona,
    statement: str,
    params: Params = None,
    *,
    setup: Sequence[Step] = (),
    max_rows: int = MAX_ROWS,
) -> Attempt:
    """Run `statement` as `persona` in a rolled-back savepoint and classify the outcome.

    `setup` statements run first as the same persona in the same savepoint (e.g. two broadcasts
    before the third); if one of them fails, the attempt is an ``error`` naming it. Only one statement
    per call: the extended protocol refuses ``a; b``, and transaction control is refused outright.
    """
    for text in [*(s.sql for s in setup), statement]:
        _check_statement(text)
    claims = persona.claims()
    rows: list[dict[str, Any]] = []
    truncated = False
    count = 0
    sqlstate: str | None = None
    message: str | None = None
    in_setup = True  # a failed setup step means the attempt never ran: an error, whatever its SQLSTATE
    started = time.perf_counter()
    try:
        async with _in_persona(conn, persona.role, json.dumps(claims)), conn.cursor(row_factory=dict_row) as cur:
            for index, step in enumerate(setup):
                try:
                    await cur.execute(step.sql, step.params, binary=True)
                except psycopg.Error as exc:
                    exc.add_note(f"in setup step {index + 1}")
                    raise
            in_setup = False
            started = time.perf_counter()
            # binary=True forces the extended protocol, which runs exactly one statement.
            await cur.execute(statement, params, binary=True)
            count = max(cur.rowcount, 0)
            if cur.description is not None:
                fetched = await cur.fetchmany(max_rows + 1)
                truncated = len(fetched) > max_rows
                rows = [dict(r) for r in fetched[:max_rows]]
    except psycopg.Error as exc:
        sqlstate = exc.sqlstate
        message = _error_message(exc)
    duration_ms = (time.perf_counter() - started) * 1000
    if message is None:
        outcome = Outcome.ALLOWED if count > 0 else Outcome.DENIED_EMPTY
    elif sqlstate == INSUFFICIENT_PRIVILEGE and not in_setup:
        outcome = Outcome.DENIED_ERROR
    else:
        outcome = Outcome.ERROR
    return Attempt(
        persona=persona.name, role=persona.role, outcome=outcome, count=count if message is None else 0,
        sql=statement, params=params, claims=_mask(claims), rows=rows, rows_truncated=truncated,
        sqlstate=sqlstate, message=message, duration_ms=duration_ms, setup=tuple(setup),
    )


_OPEN = "savepoint msgops_attempt; select set_config('role', {}, true), set_config('request.jwt.claims', {}, true)"
_UNDO = "rollback to savepoint msgops_attempt; release savepoint msgops_attempt"


@asynccontextmanager
async def _in_persona(conn: AsyncConnection[Any], role: str, claims: str) -> AsyncIterator[None]:
    """A rolled-back savepoint holding the persona: one round trip to open it (savepoint and claims in one
    simple query) and one to undo it, where psycopg's own savepoint takes three besides the claims. An
    attempt is a handful of round trips, so on a matrix of hundreds this is most of the wall time."""
    if conn.info.transaction_status != TransactionStatus.INTRANS:
        async with rolled_back(conn):
            await conn.execute(_SET_PERSONA, (role, claims))
            yield
        return
    await conn.execute(sql.SQL(_OPEN).format(sql.Literal(role), sql.Literal(claims)))
    try:
        yield
    finally:
        await conn.execute(_UNDO)


def _error_message(exc: psycopg.Error) -> str:
    text = exc.diag.message_primary or str(exc).strip() or type(exc).__name__
    notes = getattr(exc, "__notes__", None)
    return f"{text} ({'; '.join(notes)})" if notes else text


# --- arranging fixture rows -------------------------------------------------------------------------


async def insert_row(conn: AsyncConnection[Any], table: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Insert one row as the connecting role (RLS bypassed) and return it; inside `rolled_back` only."""
    _require_transaction(conn, "insert_row()")
    names = list(values)
    query = sql.SQL("insert into {} ({}) values ({}) returning *").format(
        sql.Identifier(*table.split(".")),
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(", ").join(sql.Placeholder() * len(names)),
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, [values[n] for n in names])
        row = await cur.fetchone()
    assert row is not None  # an insert ... returning * returns its row or raises
    return dict(row)


async def require_rls_bypass(conn: AsyncConnection[Any]) -> None:
    """Arranging writes rows the personas may not write: the connecting role must bypass RLS."""
    _require_transaction(conn, "arranging")
    await as_owner(conn)
    cur = await conn.execute(
        "select rolsuper or rolbypassrls as ok, current_user::text as who from pg_roles where rolname = current_user")
    row = await cur.fetchone()
    ok, who = (row["ok"], row["who"]) if isinstance(row, dict) else (row or (False, "?"))
    if not ok:
        raise ImpersonationError(
            f"role {who} cannot arrange fixture rows: connect as the database owner with BYPASSRLS "
            "(or a superuser)")


@dataclass
class MessagingScenario:
    """Fixture rows on the seed schema, and the personas that see them differently.

    Users (app role): member, other and outsider (attendees), moderator, admin, dealer, mvp_dealer,
    organizer. A group conversation created by `other` with `member` in it, a message by `other` with
    a reaction by `other`; a public and a private community owned by `other`, `member` a plain member
    of both, a message by `other` in each; a broadcast to attendees by the organizer; a report by
    `member` on the message; an audit entry; a rate-limit counter and a broadcast quota row.
    """

    users: dict[str, uuid.UUID]
    ids: dict[str, Any]

    def persona(self, name: str) -> Persona:
        if name == "anon":
            return ANON
        if name == "service_role":
            return Persona("service_role", None, "service_role")
        return Persona(name, self.users[name])

    def params(self, persona: Persona) -> dict[str, Any]:
        """Named parameters for statements: every user and row id, and `me` (the persona's sub)."""
        return {**self.users, **self.ids, "me": persona.sub, "new_id": uuid.uuid4()}


SCENARIO_USERS: dict[str, str] = {
    "member": "attendee", "other": "attendee", "outsider": "attendee", "moderator": "moderator",
    "admin": "admin", "dealer": "dealer", "mvp_dealer": "mvp_dealer", "organizer": "organizer",
}


async def arrange_messaging(conn: AsyncConnection[Any]) -> MessagingScenario:
    """Create the scenario's rows as the owner, inside the caller's `rolled_back(conn)` block."""
    await require_rls_bypass(conn)
    users: dict[str, uuid.UUID] = {}
    for name, app_role in SCENARIO_USERS.items():
        uid = uuid.uuid4()
        await insert_row(conn, "public.profiles", {"id": uid, "display_name": f"rls {name}",
                                                   "email": f"{name}-{uid.hex[:8]}@example.test",
                                                   "role": app_role})
        users[name] = uid
    member, other = users["member"], users["other"]
    ids: dict[str, Any] = {}
    conv = await insert_row(conn, "public.conversations",
                            {"kind": "group", "title": "rls probe", "created_by": other})
    ids["conv"] = conv["id"]
    await insert_row(conn, "public.conversation_members",
                     {"conversation_id": conv["id"], "user_id": other, "role": "owner"})
    await insert_row(conn, "public.conversation_members",
                     {"conversation_id": conv["id"], "user_id": member, "role": "member"})
    msg = await insert_row(conn, "public.messages",
                           {"conversation_id": conv["id"], "sender_id": other, "content": "hello from other"})
    ids["msg"] = msg["id"]
    await insert_row(conn, "public.message_reactions",
                     {"message_id": msg["id"], "user_id": other, "emoji": "+1"})
    for key, private in (("pub", False), ("priv", True)):
        comm = await insert_row(conn, "public.communities",
                                {"name": f"rls {key}", "is_private": private, "created_by": other})
        ids[key] = comm["id"]
        # the owner row comes from a trigger on communities where the schema has one
        await conn.execute(
            "insert into public.community_members (community_id, user_id, role) values (%s, %s, 'owner')"
            " on conflict do nothing", (comm["id"], other))
        await insert_row(conn, "public.community_members", {"community_id": comm["id"], "user_id": member})
        cmsg = await insert_row(conn, "public.community_messages",
                                {"community_id": comm["id"], "sender_id": other, "content": f"hello {key}"})
        ids[f"{key}_msg"] = cmsg["id"]
    bc = await insert_row(conn, "public.broadcasts", {
        "sender_id": users["organizer"], "audience": "attendees",
        "phase": "during_show", "content": "doors open",
    })
    ids["broadcast"] = bc["id"]
    await insert_row(conn, "public.broadcast_quotas",
                     {"user_id": users["organizer"], "phase": "during_show", "used": 1})
    report = await insert_row(conn, "public.reported_messages",
                              {"message_id": msg["id"], "reporter_id": member, "reason": "spam"})
    ids["report"] = report["id"]
    audit = await insert_row(conn, "public.audit_log",
                             {"actor_id": users["admin"], "action": "rls.probe", "subject": "scenario"})
    ids["audit"] = audit["id"]
    await insert_row(conn, "public.rate_limit_counters", {"user_id": member, "action": "send_message",
                                                          "window_start": dt.datetime.now(dt.UTC), "hits": 1})
    return MessagingScenario(users, ids)


# --- evidence ---------------------------------------------------------------------------------------


def _mask(claims: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("***" if _SECRET_KEY.search(k) else v) for k, v in claims.items()}


def _jsonable(value: Any) -> Any:
    """Values as JSON can hold them, long text trimmed: evidence must be small and serialisable."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if isinstance(value, bytes | bytearray | memoryview):
        return _jsonable(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, uuid.UUID | decimal.Decimal | dt.date | dt.time | dt.timedelta):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return _jsonable(str(value))
