"""db.rls_matrix: Row Level Security checked by impersonation (msgops.impersonation).

Each scenario arranges rows as the owner inside a rolled-back transaction (users with app roles, a
conversation of `other` with `member` in it, a message by `other`, a public and a private community,
...), then attempts statements as personas and compares what PostgreSQL did with what must happen.
An attempt that errors (42P17 infinite recursion, a missing function, ...) is never a denial.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import psycopg
from psycopg import AsyncConnection

from msgops.impersonation import (
    ANON,
    SCENARIO_USERS,
    Attempt,
    ImpersonationError,
    MessagingScenario,
    Persona,
    Step,
    arrange_messaging,
    as_owner,
    attempt,
    insert_row,
    rolled_back,
)
from msgops.impersonation import Outcome as Seen
from msgops.probes import OneOf, probe
from msgops.probes.context import Context, Skip
from msgops.probes.db.rls_model import Cell as ModelCell
from msgops.probes.db.rls_model import model_matrix
from msgops.probes.db.split import across, mine
from msgops.results import Outcome, failed, passed

Expect = Literal["allowed", "denied"]
# What arrange_messaging writes to: a schema without these cannot host the scenarios.
SCENARIO_TABLES = ("profiles", "conversations", "conversation_members", "messages", "message_reactions",
                   "communities", "community_members", "community_messages", "broadcasts", "broadcast_quotas",
                   "reported_messages", "audit_log", "rate_limit_counters")
_SCHEMA_ERRORS = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedFunction,
                  psycopg.errors.UndefinedObject, psycopg.errors.InvalidTextRepresentation,
                  psycopg.errors.CheckViolation, psycopg.errors.ForeignKeyViolation, psycopg.errors.NotNullViolation)


def verdict(expect: Expect, seen: Attempt) -> str | None:
    """None when the attempt did what was expected; otherwise why not."""
    if seen.outcome is Seen.ERROR and not (seen.sqlstate or "").startswith("23"):
        return f"errored [{seen.sqlstate}] {seen.message}"  # a crashing policy is not a denial
    if expect == "denied":
        if seen.outcome is Seen.ALLOWED:
            return f"allowed ({seen.count} rows)"
        if seen.outcome is Seen.ERROR:  # a constraint stopped it: row level security had let it through
            return f"passed row level security, stopped only by a constraint [{seen.sqlstate}]"
        return None
    return None if seen.outcome is Seen.ALLOWED else f"{seen.outcome} [{seen.sqlstate or ''}] {seen.message or ''}"


@dataclass
class Checks:
    """The attempts of one scenario, each with its expectation."""

    results: list[dict[str, Any]] = field(default_factory=list)

    def add(self, what: str, expect: Expect, seen: Attempt) -> None:
        problem = verdict(expect, seen)
        self.results.append({"what": what, "expect": expect, "ok": problem is None, "problem": problem,
                             "attempt": seen.evidence()})

    def any_of(self, what: str, seen: list[Attempt]) -> None:
        """Allowed by at least one of several equivalent ways (a hard DELETE or a soft delete)."""
        ok = [s for s in seen if verdict("allowed", s) is None]
        problem = None if ok else "; ".join(f"{s.outcome} [{s.sqlstate or ''}] {s.message or ''}" for s in seen)
        self.results.append({"what": what, "expect": "allowed (any)", "ok": problem is None, "problem": problem,
                             "attempts": [s.evidence() for s in seen]})

    def outcome(self, scenario: str) -> Outcome:
        bad = [r for r in self.results if not r["ok"]]
        # a big matrix keeps full evidence for its failures only; the rest as one line each
        checks = self.results if len(self.results) <= _FULL_EVIDENCE else [r if not r["ok"] else _brief(r)
                                                                             for r in self.results]
        evidence = {"scenario": scenario, "attempts": len(self.results), "failures": len(bad), "checks": checks}
        if bad:
            shown = "; ".join(f"{r['what']}: {r['problem']}" for r in bad[:_SHOWN])
            more = f" (and {len(bad) - _SHOWN} more)" if len(bad) > _SHOWN else ""
            return failed(f"{scenario}: {shown}{more}", **evidence)
        return passed(f"{scenario}: {len(self.results)} attempts behaved as required", **evidence)


_FULL_EVIDENCE = 40
_SHOWN = 6


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    seen = result.get("attempt") or {}
    return {"what": result["what"], "expect": result["expect"], "ok": result["ok"],
            "outcome": seen.get("outcome"), "sqlstate": seen.get("sqlstate"), "sql": seen.get("sql")}


Run = Callable[[AsyncConnection[Any], MessagingScenario, Checks], Awaitable[None]]
SCENARIOS: dict[str, Run] = {}


def scenario(name: str) -> Callable[[Run], Run]:
    def register(fn: Run) -> Run:
        SCENARIOS[name] = fn
        return fn
    return register


async def act(conn: AsyncConnection[Any], s: MessagingScenario, who: str, sql: str,
              setup: tuple[str, ...] = ()) -> Attempt:
    persona = s.persona(who)
    params = s.params(persona)
    return await attempt(conn, persona, sql, params, setup=[Step(x, params) for x in setup])


# --- scenarios ----------------------------------------------------------------------------------------

_OWN_MESSAGE = ("insert into public.messages (conversation_id, sender_id, content) "
                "values (%(conv)s, %(me)s, 'my own message')",)


@scenario("outsider_cannot_read_messages")
async def _outsider_read(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    read = "select id, content from public.messages where conversation_id = %(conv)s"
    c.add("member reads the conversation's messages (control)", "allowed", await act(conn, s, "member", read))
    c.add("outsider reads the conversation's messages", "denied", await act(conn, s, "outsider", read))
    c.add("outsider reads the message by id", "denied",
          await act(conn, s, "outsider", "select content from public.messages where id = %(msg)s"))
    c.add("anon reads the conversation's messages", "denied", await act(conn, s, "anon", read))


@scenario("outsider_cannot_send_messages")
async def _outsider_send(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    send = ("insert into public.messages (conversation_id, sender_id, content) "
            "values (%(conv)s, %(me)s, 'hello')")  # no RETURNING: the SELECT policy must not decide this
    c.add("member sends to the conversation (control)", "allowed", await act(conn, s, "member", send))
    c.add("outsider sends to the conversation", "denied", await act(conn, s, "outsider", send))
    c.add("member sends as someone else (forged sender)", "denied", await act(
        conn, s, "member", "insert into public.messages (conversation_id, sender_id, content) "
                           "values (%(conv)s, %(other)s, 'forged')"))
    c.add("anon sends to the conversation", "denied", await act(conn, s, "anon", send))


@scenario("member_cannot_edit_others_messages")
async def _edit_others(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    c.add("member edits their own message (control)", "allowed", await act(
        conn, s, "member", "update public.messages set content = 'edited' "
                           "where sender_id = %(me)s and conversation_id = %(conv)s", _OWN_MESSAGE))
    c.add("member edits another member's message", "denied", await act(
        conn, s, "member", "update public.messages set content = 'edited' where id = %(msg)s"))
    # a trigger may guard the text alone; the row itself must be out of reach too
    c.add("member marks another member's message as edited", "denied", await act(
        conn, s, "member", "update public.messages set edited_at = now() where id = %(msg)s"))
    c.add("member edits another member's community message", "denied", await act(
        conn, s, "member", "update public.community_messages set content = 'edited' where id = %(priv_msg)s"))
    c.add("outsider edits the message", "denied", await act(
        conn, s, "outsider", "update public.messages set content = 'edited' where id = %(msg)s"))


_DELETE_MSG = "delete from public.messages where id = %(msg)s"
_SOFT_DELETE_MSG = ("update public.messages set content = null, is_deleted = true, deleted_by = %(me)s "
                    "where id = %(msg)s")
_DELETE_CMSG = "delete from public.community_messages where id = %(priv_msg)s"
_SOFT_DELETE_CMSG = ("update public.community_messages set content = null, is_deleted = true, deleted_by = %(me)s "
                     "where id = %(priv_msg)s")


@scenario("member_cannot_delete_others_messages")
async def _delete_others(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    c.add("member deletes another member's message", "denied", await act(conn, s, "member", _DELETE_MSG))
    c.add("member soft-deletes another member's message", "denied", await act(conn, s, "member", _SOFT_DELETE_MSG))
    c.add("member deletes another member's community message", "denied", await act(conn, s, "member", _DELETE_CMSG))
    c.add("member soft-deletes another member's community message", "denied",
          await act(conn, s, "member", _SOFT_DELETE_CMSG))


@scenario("member_can_delete_own_messages")
async def _delete_own(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    mine = "sender_id = %(me)s and conversation_id = %(conv)s"
    c.any_of("member deletes their own message", [
        await act(conn, s, "member", f"delete from public.messages where {mine}", _OWN_MESSAGE),
        await act(conn, s, "member", "update public.messages set content = null, is_deleted = true, "
                                     f"deleted_by = %(me)s where {mine}", _OWN_MESSAGE)])
    c.add("member deletes another member's message", "denied", await act(conn, s, "member", _DELETE_MSG))


async def _community_role(conn: AsyncConnection[Any], s: MessagingScenario, user: str, role: str) -> None:
    """Give `user` a role in the private community, as the owner (rolled back with everything)."""
    await as_owner(conn)
    await insert_row(conn, "public.community_members",
                     {"community_id": s.ids["priv"], "user_id": s.users[user], "role": role})


async def _staff_delete(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks, role: str) -> None:
    await _community_role(conn, s, "outsider", role)  # `outsider` becomes the community's moderator/admin
    c.any_of(f"community {role} deletes another member's community message", [
        await act(conn, s, "outsider", _DELETE_CMSG), await act(conn, s, "outsider", _SOFT_DELETE_CMSG)])
    c.add("plain member deletes another member's community message", "denied",
          await act(conn, s, "member", _DELETE_CMSG))
    c.add("plain member soft-deletes another member's community message", "denied",
          await act(conn, s, "member", _SOFT_DELETE_CMSG))


@scenario("moderator_can_delete_community_messages")
async def _moderator_delete(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    await _staff_delete(conn, s, c, "moderator")


@scenario("admin_can_delete_community_messages")
async def _admin_delete(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    await _staff_delete(conn, s, c, "admin")


@scenario("private_community_invisible")
async def _private_invisible(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    community = "select id, name from public.communities where id = %(priv)s"
    c.add("member sees the private community (control)", "allowed", await act(conn, s, "member", community))
    c.add("outsider sees the private community", "denied", await act(conn, s, "outsider", community))
    c.add("outsider lists the private community's members", "denied", await act(
        conn, s, "outsider", "select user_id from public.community_members where community_id = %(priv)s"))
    c.add("outsider reads the private community's messages", "denied", await act(
        conn, s, "outsider", "select content from public.community_messages where community_id = %(priv)s"))
    c.add("outsider joins the private community", "denied", await act(
        conn, s, "outsider", "insert into public.community_members (community_id, user_id) values (%(priv)s, %(me)s)"))
    c.add("anon sees the private community", "denied", await act(conn, s, "anon", community))


@scenario("public_community_visible")
async def _public_visible(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    community = "select id, name from public.communities where id = %(pub)s"
    c.add("outsider sees the public community", "allowed", await act(conn, s, "outsider", community))
    c.add("outsider joins the public community", "allowed", await act(
        conn, s, "outsider", "insert into public.community_members (community_id, user_id) values (%(pub)s, %(me)s)"))


@scenario("outsider_cannot_read_conversations")
async def _outsider_conversations(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    conv = "select id from public.conversations where id = %(conv)s"
    c.add("member sees the conversation (control)", "allowed", await act(conn, s, "member", conv))
    c.add("outsider sees the conversation", "denied", await act(conn, s, "outsider", conv))
    c.add("outsider lists the conversation's members", "denied", await act(
        conn, s, "outsider", "select user_id from public.conversation_members where conversation_id = %(conv)s"))
    c.add("outsider adds themselves to the conversation", "denied", await act(
        conn, s, "outsider", "insert into public.conversation_members (conversation_id, user_id) "
                             "values (%(conv)s, %(me)s)"))


@scenario("anon_denied_everywhere")
async def _anon_everywhere(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    for table in await rls_tables(conn, rls_only=False):
        for op, sql in generic_statements(table, await _first_column(conn, table)).items():
            if op == "select" and not await _has_rows(conn, table):
                continue  # an empty table proves nothing about reads
            c.add(f"anon {op} on {table}", "denied", await attempt(conn, ANON, sql))


def _dm_key(a: uuid.UUID, b: uuid.UUID) -> str:
    return f"{min(str(a), str(b))}:{max(str(a), str(b))}"


@scenario("outsider_cannot_call_get_or_create_conversation")
async def _outsider_get_or_create(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    await _require_function(conn, "public.get_or_create_conversation(uuid)")
    await as_owner(conn)  # an existing direct conversation between member and other
    dm = await insert_row(conn, "public.conversations", {"kind": "direct", "created_by": s.users["member"],
                                                         "direct_key": _dm_key(s.users["member"], s.users["other"])})
    for user in ("member", "other"):
        await insert_row(conn, "public.conversation_members", {"conversation_id": dm["id"], "user_id": s.users[user]})
    call = "select public.get_or_create_conversation(%(other)s) as id"
    c.add("anon calls get_or_create_conversation", "denied", await attempt(conn, ANON, call, s.params(ANON)))
    seen = await act(conn, s, "outsider", call)
    c.add("outsider opens their own conversation with other (control)", "allowed", seen)
    if seen.rows and seen.rows[0].get("id") == dm["id"]:
        c.results.append({"what": "outsider gets back the member/other conversation", "expect": "denied",
                          "ok": False, "problem": f"returned {dm['id']}, a conversation the outsider is not in",
                          "attempt": seen.evidence()})


@scenario("emails_not_readable")
async def _emails(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    c.add("member reads another user's email", "denied", await act(
        conn, s, "member", "select email from public.profiles where id = %(other)s and email is not null"))
    c.add("member reads every profile with select *", "denied", await act(
        conn, s, "member", "select * from public.profiles where email is not null and id <> %(me)s"))
    c.add("anon reads emails", "denied", await attempt(conn, ANON, "select email from public.profiles"))
    cur = await conn.execute("select to_regclass('auth.users') is not null")
    if _first(await cur.fetchone()):
        c.add("member reads auth.users emails", "denied", await act(
            conn, s, "member", "select email from auth.users where email is not null"))


@scenario("dm_matrix")
async def _dm_matrix(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    await _require_function(conn, "public.get_or_create_conversation(uuid)")
    call = "select public.get_or_create_conversation(%s) as id"
    cases: list[tuple[str, str, Expect]] = [("member", "mvp_dealer", "allowed"), ("member", "dealer", "denied"),
                                            ("dealer", "member", "denied"), ("organizer", "dealer", "allowed")]
    for sender, recipient, expect in cases:
        c.add(f"{sender} ({_app_role(sender)}) opens a DM with {recipient} ({_app_role(recipient)})", expect,
              await attempt(conn, s.persona(sender), call, (s.users[recipient],)))
    # a group must not be a way around the matrix
    await as_owner(conn)
    group = await insert_row(conn, "public.conversations",
                             {"kind": "group", "title": "dm matrix", "created_by": s.users["member"]})
    await insert_row(conn, "public.conversation_members",
                     {"conversation_id": group["id"], "user_id": s.users["member"], "role": "owner"})
    add = "insert into public.conversation_members (conversation_id, user_id) values (%s, %s)"
    c.add("member adds an MVP dealer to their group", "allowed",
          await attempt(conn, s.persona("member"), add, (group["id"], s.users["mvp_dealer"])))
    c.add("member adds a dealer to their group", "denied",
          await attempt(conn, s.persona("member"), add, (group["id"], s.users["dealer"])))


@scenario("broadcast_quota")
async def _broadcast_quota(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    await _require_function(conn, "public.send_broadcast(text, text, text)")
    send = "select public.send_broadcast(%s, %s, %s) as id"
    organizer = s.persona("organizer")
    first = Step(send, ("attendees", "pre_show", "one"))
    second = Step(send, ("attendees", "pre_show", "two"))
    c.add("organizer's first pre-show broadcast", "allowed",
          await attempt(conn, organizer, send, ("attendees", "pre_show", "one")))
    c.add("organizer's second pre-show broadcast", "allowed",
          await attempt(conn, organizer, send, ("attendees", "pre_show", "two"), setup=[first]))
    third = await attempt(conn, organizer, send, ("attendees", "pre_show", "three"), setup=[first, second])
    refused = third.outcome is Seen.DENIED_ERROR or (third.outcome is Seen.ERROR and third.sqlstate == "P0429")
    c.results.append({"what": "organizer's third pre-show broadcast", "expect": "refused (quota)", "ok": refused,
                      "problem": None if refused else f"{third.outcome} [{third.sqlstate or ''}] {third.message or ''}",
                      "attempt": third.evidence()})
    c.add("MVP dealer broadcasts to attendees", "allowed",
          await attempt(conn, s.persona("mvp_dealer"), send, ("attendees", "pre_show", "hi")))
    c.add("MVP dealer broadcasts to dealers", "denied",
          await attempt(conn, s.persona("mvp_dealer"), send, ("dealers", "pre_show", "hi")))
    c.add("attendee broadcasts", "denied",
          await attempt(conn, s.persona("member"), send, ("everyone", "pre_show", "x")))
    c.add("organizer inserts a broadcast directly, past the quota", "denied", await act(
        conn, s, "organizer", "insert into public.broadcasts (sender_id, audience, phase, content) "
                              "values (%(me)s, 'attendees', 'pre_show', 'forged')"))
    c.add("organizer resets their own quota", "denied", await act(
        conn, s, "organizer", "update public.broadcast_quotas set used = 0 where user_id = %(me)s"))


def _app_role(user: str) -> str:
    return SCENARIO_USERS[user]


@scenario("full_matrix")
async def _full_matrix(conn: AsyncConnection[Any], s: MessagingScenario, c: Checks) -> None:
    for what, mark, persona, sql in await full_plan(conn):
        _judge(c, what, mark, await act(conn, s, persona, sql))


async def full_plan(conn: AsyncConnection[Any]) -> list[tuple[str, str, str, str]]:
    """Every attempt of the full matrix, in order: (what, mark, persona, SQL). MATRIX rows for the tables
    the schema has, then generic statements on its other tables with RLS."""
    plan: list[tuple[str, str, str, str]] = []
    known = {row.table for row in MATRIX}
    for row in MATRIX:
        if not await _exists(conn, row.table):
            continue
        for persona, mark in zip(PERSONAS, row.expect.split(), strict=True):
            plan.append((f"{persona} {row.op} {row.table}", mark, persona, row.sql))
    for table in await rls_tables(conn):
        if table in known:
            continue
        column = await _first_column(conn, table)
        for op, sql in generic_statements(table, column).items():
            if op == "select" and not await _has_rows(conn, table):
                continue
            for persona in PERSONAS:
                plan.append((f"{persona} {op} {table}", "D" if persona == "anon" else ".", persona, sql))
    return plan


async def _full_matrix_split(ctx: Context) -> Outcome:
    """full_matrix over a few pooled connections (msgops.probes.db.split): each arranges the scenario's rows
    in its own rolled-back transaction and attempts every n-th cell; judged in the plan's order."""

    async def part(conn: AsyncConnection[Any], k: int, n: int) -> dict[int, tuple[str, str, Attempt]]:
        async with rolled_back(conn):
            s = await _arrange(conn)
            plan = await full_plan(conn)
            return {i: (what, mark, await act(conn, s, persona, sql))
                    for i, (what, mark, persona, sql) in enumerate(plan) if mine(i, k, n)}

    checks = Checks()
    for _, (what, mark, seen) in sorted(i for done in await across(ctx, part) for i in done.items()):
        _judge(checks, what, mark, seen)
    return checks.outcome("full_matrix")


def _judge(c: Checks, what: str, mark: str, seen: Attempt) -> None:
    """A: must be allowed, D: must be denied, .: observed (only an error fails it)."""
    if mark == ".":
        problem = verdict("denied", seen) if seen.outcome is Seen.ERROR else None
        if problem and problem.startswith("passed row level security"):
            problem = None  # nothing was required of this cell; a constraint answering is fine
        c.results.append({"what": what, "expect": "any", "ok": problem is None, "problem": problem,
                          "attempt": seen.evidence()})
    else:
        c.add(what, "allowed" if mark == "A" else "denied", seen)


@dataclass(frozen=True)
class Cell:
    table: str
    op: str
    sql: str
    expect: str  # one mark per persona, in PERSONAS order


PERSONAS = ("member", "outsider", "moderator", "admin", "anon")
# The seed schema's rules. Rows belong to `other`; `member` shares the conversation and both communities
# with them; `outsider`, `moderator` and `admin` (app roles) are in nothing. What a design may grant its
# moderators and admins is left open (.), except tampering with the audit log and rate limits.
MATRIX: tuple[Cell, ...] = (
    Cell("public.messages", "select", "select id from public.messages where conversation_id = %(conv)s", "A D . . D"),
    Cell("public.messages", "insert", "insert into public.messages (conversation_id, sender_id, content) "
         "values (%(conv)s, %(me)s, 'matrix')", "A D D . D"),
    Cell("public.messages", "update", "update public.messages set content = 'edited' where id = %(msg)s",
         "D D . . D"),
    Cell("public.messages", "delete", "delete from public.messages where id = %(msg)s", "D D . . D"),
    Cell("public.conversations", "select", "select id from public.conversations where id = %(conv)s", "A D . . D"),
    Cell("public.conversations", "insert", "insert into public.conversations (kind, title, created_by) "
         "values ('group', 'forged', %(other)s)", "D D D D D"),
    Cell("public.conversations", "update", "update public.conversations set title = 'renamed' where id = %(conv)s",
         "D D . . D"),
    Cell("public.conversations", "delete", "delete from public.conversations where id = %(conv)s", "D D . . D"),
    Cell("public.conversation_members", "select",
         "select user_id from public.conversation_members where conversation_id = %(conv)s", "A D . . D"),
    Cell("public.conversation_members", "insert",
         "insert into public.conversation_members (conversation_id, user_id) values (%(conv)s, %(me)s)", ". D . . D"),
    Cell("public.conversation_members", "update", "update public.conversation_members set last_read_seq = 0 "
         "where conversation_id = %(conv)s and user_id = %(other)s", "D D . . D"),
    Cell("public.conversation_members", "delete", "delete from public.conversation_members "
         "where conversation_id = %(conv)s and user_id = %(other)s", "D D . . D"),
    Cell("public.communities", "select", "select id from public.communities where id = %(priv)s", "A D . . D"),
    Cell("public.communities", "insert", "insert into public.communities (name, created_by) "
         "values ('forged', %(other)s)", "D D D D D"),
    Cell("public.communities", "update", "update public.communities set name = 'renamed' where id = %(priv)s",
         "D D . . D"),
    Cell("public.communities", "delete", "delete from public.communities where id = %(pub)s", "D D . . D"),
    Cell("public.community_members", "select",
         "select user_id from public.community_members where community_id = %(priv)s", "A D . . D"),
    Cell("public.community_members", "insert",
         "insert into public.community_members (community_id, user_id) values (%(priv)s, %(me)s)", ". D . . D"),
    Cell("public.community_members", "update", "update public.community_members set role = 'admin' "
         "where community_id = %(priv)s and user_id = %(me)s", "D D . . D"),
    Cell("public.community_members", "delete", "delete from public.community_members "
         "where community_id = %(priv)s and user_id = %(other)s", "D D . . D"),
    Cell("public.community_messages", "select",
         "select id from public.community_messages where community_id = %(priv)s", "A D . . D"),
    Cell("public.community_messages", "insert", "insert into public.community_messages (community_id, sender_id, "
         "content) values (%(priv)s, %(me)s, 'matrix')", "A D . . D"),
    Cell("public.community_messages", "update",
         "update public.community_messages set content = 'edited' where id = %(priv_msg)s", "D D . . D"),
    Cell("public.community_messages", "delete", "delete from public.community_messages where id = %(priv_msg)s",
         "D D . . D"),
    Cell("public.profiles", "select", "select id, display_name from public.profiles where id = %(other)s",
         ". . . . D"),
    Cell("public.profiles", "insert", "insert into public.profiles (id, display_name) values (%(new_id)s, 'forged')",
         "D D D D D"),
    Cell("public.profiles", "update", "update public.profiles set display_name = 'defaced' where id = %(other)s",
         "D D D . D"),
    Cell("public.profiles", "delete", "delete from public.profiles where id = %(other)s", "D D D . D"),
    Cell("public.message_reactions", "select",
         "select emoji from public.message_reactions where message_id = %(msg)s", "A D . . D"),
    Cell("public.message_reactions", "insert", "insert into public.message_reactions (message_id, user_id, emoji) "
         "values (%(msg)s, %(me)s, 'ok')", "A D . . D"),
    Cell("public.message_reactions", "update",
         "update public.message_reactions set emoji = 'x' where message_id = %(msg)s", "D D . . D"),
    Cell("public.message_reactions", "delete",
         "delete from public.message_reactions where message_id = %(msg)s and user_id = %(other)s", "D D . . D"),
    Cell("public.broadcasts", "select", "select id from public.broadcasts where id = %(broadcast)s", ". . . . D"),
    Cell("public.broadcasts", "insert", "insert into public.broadcasts (sender_id, audience, phase, content) "
         "values (%(me)s, 'everyone', 'pre_show', 'forged')", "D D D . D"),
    Cell("public.broadcasts", "update", "update public.broadcasts set content = 'x' where id = %(broadcast)s",
         "D D D . D"),
    Cell("public.broadcasts", "delete", "delete from public.broadcasts where id = %(broadcast)s", "D D D . D"),
    Cell("public.broadcast_quotas", "select",
         "select used from public.broadcast_quotas where user_id = %(organizer)s", "D D D . D"),
    Cell("public.broadcast_quotas", "insert", "insert into public.broadcast_quotas (user_id, phase, used) "
         "values (%(me)s, 'pre_show', -100)", "D D D D D"),
    Cell("public.broadcast_quotas", "update",
         "update public.broadcast_quotas set used = 0 where user_id = %(organizer)s", "D D D . D"),
    Cell("public.broadcast_quotas", "delete",
         "delete from public.broadcast_quotas where user_id = %(organizer)s", "D D D . D"),
    Cell("public.reported_messages", "select", "select id from public.reported_messages where id = %(report)s",
         "A D . . D"),
    Cell("public.reported_messages", "insert", "insert into public.reported_messages (message_id, reporter_id, "
         "reason) values (%(msg)s, %(me)s, 'abuse')", ". D . . D"),
    Cell("public.reported_messages", "update", "update public.reported_messages set report_status = 'dismissed' "
         "where id = %(report)s", "D D . . D"),
    Cell("public.reported_messages", "delete", "delete from public.reported_messages where id = %(report)s",
         "D D . . D"),
    Cell("public.audit_log", "select", "select id from public.audit_log where id = %(audit)s", "D D D . D"),
    Cell("public.audit_log", "insert", "insert into public.audit_log (action, subject) values ('forged', 'x')",
         "D D D . D"),
    Cell("public.audit_log", "update", "update public.audit_log set action = 'x' where id = %(audit)s", "D D D D D"),
    Cell("public.audit_log", "delete", "delete from public.audit_log where id = %(audit)s", "D D D D D"),
    Cell("public.rate_limit_counters", "select",
         "select hits from public.rate_limit_counters where user_id = %(member)s", ". D D . D"),
    Cell("public.rate_limit_counters", "insert", "insert into public.rate_limit_counters (user_id, action, "
         "window_start, hits) values (%(me)s, 'matrix', now(), -1000)", "D D D D D"),
    Cell("public.rate_limit_counters", "update",
         "update public.rate_limit_counters set hits = 0 where user_id = %(member)s", "D D D D D"),
    Cell("public.rate_limit_counters", "delete",
         "delete from public.rate_limit_counters where user_id = %(member)s", "D D D D D"),
)


async def _exists(conn: AsyncConnection[Any], table: str) -> bool:
    await as_owner(conn)
    cur = await conn.execute("select to_regclass(%s) is not null", (table,))
    return bool(_first(await cur.fetchone()))


async def _first_column(conn: AsyncConnection[Any], table: str) -> str:
    await as_owner(conn)
    cur = await conn.execute("select quote_ident(attname) from pg_attribute where attrelid = to_regclass(%s) "
                             "and attnum > 0 and not attisdropped and attidentity = '' and attgenerated = '' "
                             "order by attnum limit 1", (table,))
    return str(_first(await cur.fetchone()))


# --- shared ---------------------------------------------------------------------------------------------


async def rls_tables(conn: AsyncConnection[Any], rls_only: bool = True) -> list[str]:
    """Tables in public (with RLS on, unless rls_only is False), as quoted schema.table names."""
    await as_owner(conn)
    cur = await conn.execute(
        "select format('%%I.%%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind in ('r', 'p') and (c.relrowsecurity or not %s) order by 1",
        (rls_only,))
    return [_first(r) for r in await cur.fetchall()]


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


async def _has_rows(conn: AsyncConnection[Any], table: str) -> bool:
    await as_owner(conn)
    cur = await conn.execute(f"select exists (select 1 from {table})")
    return bool(_first(await cur.fetchone()))


def generic_statements(table: str, column: str) -> dict[str, str]:
    """Statements any table accepts: read some rows, insert defaults, touch and delete a few rows."""
    few = f"ctid in (select ctid from {table} limit 5)"
    return {
        "select": f"select 1 as visible from {table} limit 5",
        "insert": f"insert into {table} default values",
        "update": f"update {table} set {column} = {column} where {few}",
        "delete": f"delete from {table} where {few}",
    }


async def _require_function(conn: AsyncConnection[Any], signature: str) -> None:
    await as_owner(conn)
    cur = await conn.execute("select to_regprocedure(%s) is not null", (signature,))
    if not _first(await cur.fetchone()):
        raise Skip(f"the schema has no {signature}: this scenario needs it")


async def _missing_tables(conn: AsyncConnection[Any]) -> list[str]:
    cur = await conn.execute("select t from unnest(%s::text[]) as t where to_regclass('public.' || t) is null",
                             (list(SCENARIO_TABLES),))
    return [f"public.{_first(r)}" for r in await cur.fetchall()]


@probe("db.rls_matrix", waits_long=True,
       what="Arranges users, a conversation, communities and messages in a rolled-back transaction, then acts as "
            "personas (member, outsider, moderator, admin, anon; the role and JWT claims PostgREST would set) "
            "and checks what Row Level Security allowed and denied for the named scenario; `full_matrix` runs "
            "every persona x select/insert/update/delete over every table in public with RLS.",
       why="Policies are code that is rarely tested as the users who will hit them; one wrong policy lets any "
           "signed-in user read or change other people's messages, and a policy that errors (42P17 infinite "
           "recursion) breaks every request.",
       example="member_cannot_edit_others_messages fails: messages_update has `using (true)`, so a member "
               "edited another member's message (1 row updated).",
       fix="Correct the policy named by the failing attempt (e.g. `using (sender_id = (select auth.uid()))`) "
           "and re-run; the evidence shows the SQL, the persona's claims and what PostgreSQL returned.")
async def rls_matrix(ctx: Context, scenario: Annotated[str, OneOf(SCENARIOS, "scenario")]) -> Outcome:
    run = SCENARIOS.get(scenario)
    if run is None:
        raise ValueError(f"unknown RLS scenario {scenario!r}")
    return await _run(ctx, scenario, run)


# The seed scenarios by meaning: which cells of the matrix generated from the discovered model
# (msgops.probes.db.rls_model) answer the same question. On a schema without the seed tables every scenario
# listed here runs on them; on the seed schema too, those in GENERATED.
_BY_MEANING: dict[str, Callable[[ModelCell], bool]] = {
    "outsider_cannot_read_messages": lambda c: c.subject == "message" and c.op == "select",
    "outsider_cannot_send_messages": lambda c: c.subject == "message" and c.op == "insert",
    "member_cannot_edit_others_messages": lambda c: c.subject == "message" and c.op == "update",
    "member_cannot_delete_others_messages": lambda c: c.subject == "message" and c.op == "delete",
    "private_community_invisible": lambda c: c.subject in ("room", "membership"),
    "outsider_cannot_read_conversations": lambda c: c.subject in ("room", "membership"),
    "anon_denied_everywhere": lambda c: c.persona == "anon",
    "emails_not_readable": lambda c: c.subject == "contact",
    "full_matrix": lambda c: True,
}
# Scenarios the generated matrix asks in full (the same personas and commands on the model's rooms, members
# and messages), so the seed schema runs them there too. The others stay hand-written on the seed schema for
# what the generic matrix cannot express: editing one's own message and the edited_at guard
# (member_cannot_edit_others_messages), soft deletes (member_cannot_delete_others_messages,
# member_can_delete_own_messages), moderators and admins the seed requires whatever the policies grant
# (moderator_/admin_can_delete_community_messages), public communities, every table for anon
# (anon_denied_everywhere), `select *` and auth.users emails (emails_not_readable), functions
# (get_or_create_conversation, dm_matrix, broadcast_quota) and the seed's own tables (full_matrix).
GENERATED = frozenset({"outsider_cannot_read_messages", "outsider_cannot_send_messages",
                       "private_community_invisible", "outsider_cannot_read_conversations"})
_NO_COUNTERPART = {
    "member_can_delete_own_messages": "deleting one's own message (the seed's soft or hard delete)",
    "moderator_can_delete_community_messages": "community moderators (community_members.role)",
    "admin_can_delete_community_messages": "community admins (community_members.role)",
    "public_community_visible": "public communities (communities.is_private)",
    "outsider_cannot_call_get_or_create_conversation": "public.get_or_create_conversation(uuid)",
    "dm_matrix": "the DM permission matrix (public.get_or_create_conversation(uuid) and app roles)",
    "broadcast_quota": "broadcast quotas (public.send_broadcast and broadcast_quotas)",
}


async def _missing(ctx: Context) -> list[str]:
    async with ctx.db() as conn:
        return await _missing_tables(conn)


async def _run(ctx: Context, name: str, run: Run) -> Outcome:
    if name in GENERATED:
        return await model_matrix(ctx, name, _BY_MEANING[name])
    missing = await _missing(ctx)
    if missing:
        if name in _BY_MEANING:  # the same question asked of the target's own rooms, members and messages
            return await model_matrix(ctx, name, _BY_MEANING[name])
        raise Skip(f"not applicable: scenario {name} needs {_NO_COUNTERPART.get(name, 'the seed schema')}, which "
                   f"has no counterpart in this schema (it lacks {', '.join(missing[:4])}"
                   f"{' and more' if len(missing) > 4 else ''})")
    if run is _full_matrix:
        return await _full_matrix_split(ctx)

    async def whole(conn: AsyncConnection[Any], k: int, n: int) -> Outcome:
        return await _run_on(conn, name, run)

    (done,) = await across(ctx, whole, ways=1)
    return done


async def _arrange(conn: AsyncConnection[Any]) -> MessagingScenario:
    try:
        return await arrange_messaging(conn)
    except ImpersonationError as exc:
        raise Skip(str(exc)) from None
    except _SCHEMA_ERRORS as exc:
        raise Skip(f"could not arrange the scenario's rows on this schema "
                   f"[{exc.sqlstate}] {exc.diag.message_primary}") from None


async def _run_on(conn: AsyncConnection[Any], name: str, run: Run) -> Outcome:
    missing = await _missing_tables(conn)
    if missing:
        raise Skip(f"the schema lacks {', '.join(missing)}: scenario {name} arranges rows on the seed messaging "
                   "schema (conversations, communities, messages, ...)")
    async with rolled_back(conn):
        s = await _arrange(conn)
        checks = Checks()
        await run(conn, s, checks)
        return checks.outcome(name)


__all__ = ["SCENARIOS", "Checks", "Persona", "generic_statements", "rls_tables", "verdict"]
