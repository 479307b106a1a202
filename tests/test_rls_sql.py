"""The RLS matrix, directly in SQL, by impersonation (msgops.impersonation) on the migrated schema.

Every row of MATRIX is one statement on one table and what each persona must get:
A allowed · E denied_empty (0 rows seen or touched) · X denied_error (42501) · ERR error.
Personas: `member` (in the conversation, a plain member of both communities), `outsider` (in nothing),
`moderator` and `admin` (app roles, members of nothing) and `anon`. The rows they aim at belong to
`other` (see msgops.impersonation.MessagingScenario).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from psycopg import AsyncConnection

from msgops.impersonation import (
    ANON,
    Attempt,
    ImpersonationError,
    MessagingScenario,
    Outcome,
    Persona,
    Step,
    arrange_messaging,
    as_owner,
    as_persona,
    attempt,
    insert_row,
    rolled_back,
)

A, E, X, ERR = Outcome.ALLOWED, Outcome.DENIED_EMPTY, Outcome.DENIED_ERROR, Outcome.ERROR
PERSONAS = ("member", "outsider", "moderator", "admin", "anon")
TABLES = ("profiles", "conversations", "conversation_members", "messages", "message_reactions", "communities",
          "community_members", "community_messages", "broadcasts", "broadcast_quotas", "reported_messages",
          "audit_log", "rate_limit_counters", "dm_permissions", "app_roles", "broadcast_permissions")


@dataclass(frozen=True)
class Case:
    table: str
    op: str
    sql: str
    expect: tuple[Outcome, Outcome, Outcome, Outcome, Outcome]  # in PERSONAS order


_LETTERS = {"A": A, "E": E, "X": X, "ERR": ERR}


def case(table: str, op: str, expect: str, sql: str) -> Case:
    """`expect` is one letter per persona, in PERSONAS order."""
    outcomes = tuple(_LETTERS[letter] for letter in expect.split())
    assert len(outcomes) == len(PERSONAS), (table, op)
    return Case(table, op, sql, (outcomes[0], outcomes[1], outcomes[2], outcomes[3], outcomes[4]))


MATRIX: list[Case] = [
    #    table, operation, expected for: member outsider moderator admin anon
    case("profiles", "read", "A A A A X",
         "select id, display_name, role from public.profiles where id = %(other)s"),
    case("profiles", "read_email", "X X X X X",
         "select email from public.profiles where id = %(me)s"),
    case("profiles", "insert", "X X X X X",
         "insert into public.profiles (id, display_name) values (%(new_id)s, 'intruder')"),
    case("profiles", "update", "E E E E X",
         "update public.profiles set display_name = 'defaced' where id = %(other)s"),
    case("profiles", "update_own", "A A A A X",
         "update public.profiles set display_name = 'renamed' where id = %(me)s"),
    case("profiles", "delete", "X X X X X",
         "delete from public.profiles where id = %(other)s"),

    case("conversations", "read", "A E E E X",
         "select id from public.conversations where id = %(conv)s"),
    case("conversations", "insert", "X X X X X",
         "insert into public.conversations (kind, created_by) values ('group', %(other)s)"),
    # a direct conversation is created only by get_or_create_conversation(), which applies the DM matrix
    case("conversations", "insert_direct", "X X X X X",
         "insert into public.conversations (kind, direct_key, created_by) values ('direct', "
         "%(new_id)s::text, %(me)s)"),
    case("conversations", "update", "E E E E X",
         "update public.conversations set title = 'renamed' where id = %(conv)s"),
    case("conversations", "delete", "E E E E X",
         "delete from public.conversations where id = %(conv)s"),

    case("conversation_members", "read", "A E E E X",
         "select user_id from public.conversation_members where conversation_id = %(conv)s"),
    case("conversation_members", "insert", "X X X X X",
         "insert into public.conversation_members (conversation_id, user_id) values (%(conv)s, %(me)s)"),
    case("conversation_members", "update", "E E E E X",
         "update public.conversation_members set last_read_seq = 99 where conversation_id = %(conv)s and "
         "user_id = %(other)s"),
    case("conversation_members", "delete", "E E E E X",
         "delete from public.conversation_members where conversation_id = %(conv)s and user_id = "
         "%(other)s"),
    case("conversation_members", "leave", "A E E E X",
         "delete from public.conversation_members where conversation_id = %(conv)s and user_id = %(me)s"),

    case("messages", "read", "A E E E X",
         "select id from public.messages where conversation_id = %(conv)s"),
    case("messages", "insert", "A X X X X",
         "insert into public.messages (conversation_id, sender_id, content) values (%(conv)s, %(me)s, "
         "'hi')"),
    case("messages", "insert_forged_sender", "X X X X X",
         "insert into public.messages (conversation_id, sender_id, content) values (%(conv)s, %(other)s, "
         "'forged')"),
    case("messages", "update", "E E E E X",
         "update public.messages set content = 'edited', edited_at = now() where id = %(msg)s"),
    # app roles alone do not reach into conversations: moderators soft-delete through the function
    case("messages", "soft_delete", "E E E E X",
         "update public.messages set content = null, is_deleted = true, deleted_by = %(me)s where id = "
         "%(msg)s"),
    case("messages", "delete", "E E E E X",
         "delete from public.messages where id = %(msg)s"),
    # a row comes back only when the message was actually soft-deleted
    case("messages", "moderate_delete", "X X A A X",
         "select done from public.moderate_delete_message(%(msg)s) as done where done"),

    case("message_reactions", "read", "A E E E X",
         "select emoji from public.message_reactions where message_id = %(msg)s"),
    case("message_reactions", "insert", "A X X X X",
         "insert into public.message_reactions (message_id, user_id, emoji) values (%(msg)s, %(me)s, "
         "'ok')"),
    case("message_reactions", "update", "X X X X X",
         "update public.message_reactions set emoji = 'x' where message_id = %(msg)s"),
    case("message_reactions", "delete", "E E E E X",
         "delete from public.message_reactions where message_id = %(msg)s and user_id = %(other)s"),

    case("communities", "read", "A E E E X",
         "select id from public.communities where id = %(priv)s"),
    case("communities", "read_public", "A A A A X",
         "select id from public.communities where id = %(pub)s"),
    case("communities", "insert", "X X X X X",
         "insert into public.communities (name, created_by) values ('forged', %(other)s)"),
    case("communities", "update", "E E E E X",
         "update public.communities set name = 'renamed' where id = %(priv)s"),
    case("communities", "delete", "E E E E X",
         "delete from public.communities where id = %(pub)s"),

    case("community_members", "read", "A E E E X",
         "select user_id from public.community_members where community_id = %(priv)s"),
    case("community_members", "read_public", "A A A A X",
         "select user_id from public.community_members where community_id = %(pub)s"),
    # joining a private community yourself
    case("community_members", "insert", "X X X X X",
         "insert into public.community_members (community_id, user_id) values (%(priv)s, %(me)s)"),
    case("community_members", "join_public", "E A A A X",
         "insert into public.community_members (community_id, user_id) values (%(pub)s, %(me)s) on "
         "conflict do nothing"),
    case("community_members", "update", "E E E E X",
         "update public.community_members set role = 'admin' where community_id = %(priv)s and user_id = "
         "%(me)s"),
    case("community_members", "delete", "E E E E X",
         "delete from public.community_members where community_id = %(priv)s and user_id = %(other)s"),

    case("community_messages", "read", "A E E E X",
         "select id from public.community_messages where community_id = %(priv)s"),
    # a public community is visible to all; its messages are for its members
    case("community_messages", "read_public", "A E E E X",
         "select id from public.community_messages where community_id = %(pub)s"),
    case("community_messages", "insert", "A X X X X",
         "insert into public.community_messages (community_id, sender_id, content) values (%(priv)s, "
         "%(me)s, 'hi')"),
    case("community_messages", "update", "E E E E X",
         "update public.community_messages set content = 'edited' where id = %(priv_msg)s"),
    case("community_messages", "delete", "E E E E X",
         "delete from public.community_messages where id = %(priv_msg)s"),

    case("broadcasts", "read", "A A E E X",
         "select id from public.broadcasts where id = %(broadcast)s"),
    case("broadcasts", "insert", "X X X X X",
         "insert into public.broadcasts (sender_id, audience, phase, content) values (%(me)s, "
         "'everyone', 'pre_show', 'forged')"),
    case("broadcasts", "update", "X X X X X",
         "update public.broadcasts set content = 'x' where id = %(broadcast)s"),
    case("broadcasts", "delete", "X X X X X",
         "delete from public.broadcasts where id = %(broadcast)s"),
    case("broadcasts", "send_broadcast", "X X X A X",
         "select public.send_broadcast('everyone', 'pre_show', 'hello')"),

    case("broadcast_quotas", "read", "E E E E X",
         "select used from public.broadcast_quotas where user_id = %(organizer)s"),
    case("broadcast_quotas", "insert", "X X X X X",
         "insert into public.broadcast_quotas (user_id, phase, used) values (%(me)s, 'pre_show', 0)"),
    case("broadcast_quotas", "update", "X X X X X",
         "update public.broadcast_quotas set used = 0 where user_id = %(organizer)s"),
    case("broadcast_quotas", "delete", "X X X X X",
         "delete from public.broadcast_quotas where user_id = %(organizer)s"),

    case("reported_messages", "read", "A E A A X",
         "select id from public.reported_messages where id = %(report)s"),
    # anyone reports what they can see (the scenario's report on `msg` is already pending)
    case("reported_messages", "insert", "A X X X X",
         "insert into public.reported_messages (community_message_id, reporter_id, reason) "
         "values (%(priv_msg)s, %(me)s, 'abuse')"),
    case("reported_messages", "update", "E E A A X",
         "update public.reported_messages set report_status = 'dismissed' where id = %(report)s"),
    case("reported_messages", "delete", "X X X X X",
         "delete from public.reported_messages where id = %(report)s"),

    case("audit_log", "read", "E E E A X",
         "select id from public.audit_log where id = %(audit)s"),
    case("audit_log", "insert", "X X X X X",
         "insert into public.audit_log (action, subject) values ('forged', 'x')"),
    case("audit_log", "update", "X X X X X",
         "update public.audit_log set action = 'x' where id = %(audit)s"),
    case("audit_log", "delete", "X X X X X",
         "delete from public.audit_log where id = %(audit)s"),

    # counters are reached only through rate_limit_hit(): not even your own row is readable
    case("rate_limit_counters", "read", "A E E E X",
         "select hits from public.rate_limit_counters where user_id = %(member)s"),
    case("rate_limit_counters", "insert", "X X X X X",
         "insert into public.rate_limit_counters (user_id, action, window_start, hits) values (%(me)s, "
         "'send_message', now(), 0)"),
    case("rate_limit_counters", "update", "X X X X X",
         "update public.rate_limit_counters set hits = 0 where user_id = %(member)s"),
    case("rate_limit_counters", "delete", "X X X X X",
         "delete from public.rate_limit_counters where user_id = %(member)s"),

    case("dm_permissions", "read", "A A A A X",
         "select sender_role from public.dm_permissions"),
    case("dm_permissions", "insert", "X X X X X",
         "insert into public.dm_permissions (sender_role, recipient_role) values ('attendee', 'dealer')"),
    case("dm_permissions", "update", "X X X X X",
         "update public.dm_permissions set recipient_role = 'dealer' where sender_role = 'attendee'"),
    case("dm_permissions", "delete", "X X X X X",
         "delete from public.dm_permissions"),
    case("dm_permissions", "dm_to_dealer", "X X A A X",
         "select public.get_or_create_conversation(%(dealer)s)"),
    case("dm_permissions", "dm_to_mvp_dealer", "A A A A X",
         "select public.get_or_create_conversation(%(mvp_dealer)s)"),

    case("app_roles", "read", "A A A A X",
         "select name from public.app_roles"),
    case("app_roles", "insert", "X X X X X",
         "insert into public.app_roles (name) values ('superuser')"),
    case("app_roles", "update", "X X X X X",
         "update public.app_roles set name = 'x' where name = 'attendee'"),
    case("app_roles", "delete", "X X X X X",
         "delete from public.app_roles where name = 'attendee'"),

    case("broadcast_permissions", "read", "A A A A X",
         "select sender_role from public.broadcast_permissions"),
    case("broadcast_permissions", "insert", "X X X X X",
         "insert into public.broadcast_permissions (sender_role, audience, phase, quota) values "
         "('attendee', 'everyone', 'pre_show', 99)"),
    case("broadcast_permissions", "update", "X X X X X",
         "update public.broadcast_permissions set quota = 99"),
    case("broadcast_permissions", "delete", "X X X X X",
         "delete from public.broadcast_permissions"),
]


def matrix_params() -> list[object]:
    return [pytest.param(c, persona, expected, id=f"{c.table}-{c.op}-{persona}")
            for c in MATRIX for persona, expected in zip(PERSONAS, c.expect, strict=True)]


async def table_counts(conn: AsyncConnection[Any]) -> dict[str, int]:
    """Row counts of every table in the matrix, as the owner."""
    counts: dict[str, int] = {}
    for table in TABLES:
        cur = await conn.execute(f"select count(*) from public.{table}")
        row = await cur.fetchone()
        assert row is not None
        counts[table] = int(row[0])
    return counts


async def run(conn: AsyncConnection[Any], scenario: MessagingScenario, c: Case, persona_name: str) -> Attempt:
    persona = scenario.persona(persona_name)
    return await attempt(conn, persona, c.sql, scenario.params(persona))


@pytest_asyncio.fixture(scope="module")
async def arranged(database_url: str) -> AsyncIterator[tuple[AsyncConnection[Any], MessagingScenario]]:
    """One connection, one rolled-back transaction with the scenario rows, for the whole matrix."""
    async with await AsyncConnection.connect(database_url) as conn, rolled_back(conn):
        yield conn, await arrange_messaging(conn)


@pytest_asyncio.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(database_url) as c:
        yield c


# --- the matrix -------------------------------------------------------------------------------------


def test_matrix_covers_every_table_and_operation() -> None:
    for table in TABLES:
        ops = {c.op for c in MATRIX if c.table == table}
        assert {"read", "insert", "update", "delete"} <= ops, table


@pytest.mark.parametrize(("c", "persona", "expected"), matrix_params())
async def test_rls_matrix(arranged: tuple[AsyncConnection[Any], MessagingScenario], c: Case, persona: str,
                          expected: Outcome) -> None:
    conn, scenario = arranged
    result = await run(conn, scenario, c, persona)
    assert result.outcome == expected, json.dumps(result.evidence(), indent=1)
    if expected is X:
        assert result.sqlstate == "42501"


async def test_whole_matrix_leaves_nothing_behind(conn: AsyncConnection[Any]) -> None:
    before = await table_counts(conn)
    await conn.commit()
    outcomes: list[Outcome] = []
    async with rolled_back(conn):
        scenario = await arrange_messaging(conn)
        for c in MATRIX:
            for persona in PERSONAS:
                outcomes.append((await run(conn, scenario, c, persona)).outcome)
        assert (await table_counts(conn))["profiles"] == before["profiles"] + 8  # arranged, not yet gone
    assert await table_counts(conn) == before
    assert outcomes == [e for c in MATRIX for e in c.expect]
    await conn.commit()


# --- the seed's named behaviours, spelt out ---------------------------------------------------------


async def test_emails_are_not_readable_by_signed_in_users(
        arranged: tuple[AsyncConnection[Any], MessagingScenario]) -> None:
    conn, scenario = arranged
    for statement in ("select email from public.profiles", "select * from public.profiles"):
        result = await attempt(conn, scenario.persona("member"), statement)
        assert result.outcome is X and result.sqlstate == "42501", result.describe()
        assert "permission denied" in (result.message or "")
    names = await attempt(conn, scenario.persona("member"), "select id, display_name from public.profiles "
                          "where id = %(other)s", scenario.params(scenario.persona("member")))
    assert names.outcome is A and names.rows[0]["display_name"] == "rls other"


async def test_get_or_create_conversation_follows_the_dm_matrix(
        arranged: tuple[AsyncConnection[Any], MessagingScenario]) -> None:
    conn, scenario = arranged
    call = "select public.get_or_create_conversation(%s) as id"
    anon = await attempt(conn, ANON, call, (scenario.users["dealer"],))
    assert anon.outcome is X and anon.sqlstate == "42501"
    to_dealer = await attempt(conn, scenario.persona("member"), call, (scenario.users["dealer"],))
    assert to_dealer.outcome is X and to_dealer.sqlstate == "42501", to_dealer.describe()
    to_mvp = await attempt(conn, scenario.persona("member"), call, (scenario.users["mvp_dealer"],))
    assert to_mvp.outcome is A and to_mvp.count == 1 and isinstance(to_mvp.rows[0]["id"], uuid.UUID)
    # the dealer may not cold-message the attendee either
    back = await attempt(conn, scenario.persona("dealer"), call, (scenario.users["member"],))
    assert back.outcome is X


async def test_organizer_third_pre_show_broadcast_hits_the_quota(
        arranged: tuple[AsyncConnection[Any], MessagingScenario]) -> None:
    conn, scenario = arranged
    organizer = scenario.persona("organizer")
    send = "select public.send_broadcast('attendees', 'pre_show', %s)"
    first = await attempt(conn, organizer, send, ("one",))
    assert first.outcome is A
    third = await attempt(conn, organizer, send, ("three",),
                          setup=[Step(send, ("one",)), Step(send, ("two",))])
    assert third.outcome is ERR and third.sqlstate == "P0429", third.describe()
    assert "quota" in (third.message or "")
    assert [s.params for s in third.setup] == [("one",), ("two",)]
    # each attempt was rolled back: the organizer's pre-show quota is still untouched
    await as_owner(conn)
    cur = await conn.execute("select count(*) from public.broadcast_quotas "
                             "where user_id = %s and phase = 'pre_show'", (scenario.users["organizer"],))
    assert await cur.fetchone() == (0,)


async def test_moderator_soft_delete_removes_content_and_resolves_the_report(
        arranged: tuple[AsyncConnection[Any], MessagingScenario]) -> None:
    conn, scenario = arranged
    msg = scenario.ids["msg"]
    async with rolled_back(conn):
        await as_persona(conn, scenario.persona("moderator"))
        cur = await conn.execute("select public.moderate_delete_message(%s)", (msg,))
        assert await cur.fetchone() == (True,)
        await as_owner(conn)
        cur = await conn.execute("select content, is_deleted, deleted_by from public.messages where id = %s",
                                 (msg,))
        assert await cur.fetchone() == (None, True, scenario.users["moderator"])
        cur = await conn.execute("select report_status from public.reported_messages where id = %s",
                                 (scenario.ids["report"],))
        assert await cur.fetchone() == ("resolved",)
        cur = await conn.execute("select count(*) from public.audit_log where actor_id = %s "
                                 "and action = 'message.moderator_delete'", (scenario.users["moderator"],))
        assert await cur.fetchone() == (1,)
    cur = await conn.execute("select content, is_deleted from public.messages where id = %s", (msg,))
    assert await cur.fetchone() == ("hello from other", False)


async def test_member_edits_own_message_but_not_others(
        arranged: tuple[AsyncConnection[Any], MessagingScenario]) -> None:
    conn, scenario = arranged
    member = scenario.persona("member")
    params = scenario.params(member)
    write_own = Step("insert into public.messages (conversation_id, sender_id, content) "
                     "values (%(conv)s, %(me)s, 'mine')", params)
    own = await attempt(conn, member, "update public.messages set content = 'edited' "
                        "where sender_id = %(me)s and conversation_id = %(conv)s", params, setup=[write_own])
    assert own.outcome is A and own.count == 1
    others = await attempt(conn, member, "update public.messages set content = 'edited' where id = %(msg)s",
                           params)
    assert others.outcome is E and others.count == 0


# --- the library's guarantees -----------------------------------------------------------------------


async def test_attempt_switches_back_to_the_owner(
        arranged: tuple[AsyncConnection[Any], MessagingScenario]) -> None:
    conn, scenario = arranged
    result = await attempt(conn, scenario.persona("member"), "select current_user::text as who, "
                           "current_setting('request.jwt.claims', true) as claims")
    assert result.rows[0]["who"] == "authenticated"
    assert json.loads(result.rows[0]["claims"])["sub"] == str(scenario.users["member"])
    cur = await conn.execute("select current_user = session_user, "
                             "coalesce(current_setting('request.jwt.claims', true), '')")
    assert await cur.fetchone() == (True, "")
    # arranging works again right after an attempt, in the same transaction
    row = await insert_row(conn, "public.audit_log", {"action": "after.attempt", "subject": "x"})
    assert row["action"] == "after.attempt"


async def test_as_persona_then_as_owner_within_one_transaction(conn: AsyncConnection[Any]) -> None:
    async with rolled_back(conn):
        await as_persona(conn, Persona("someone", uuid.uuid4()))
        cur = await conn.execute("select current_user::text, auth.role()")
        assert await cur.fetchone() == ("authenticated", "authenticated")
        await as_owner(conn)
        cur = await conn.execute("select current_user = session_user, auth.uid()")
        assert await cur.fetchone() == (True, None)


async def test_rolled_back_undoes_everything_even_on_exceptions(conn: AsyncConnection[Any]) -> None:
    before = await table_counts(conn)
    await conn.commit()
    with pytest.raises(RuntimeError, match="boom"):
        async with rolled_back(conn):
            await arrange_messaging(conn)
            raise RuntimeError("boom")
    with pytest.raises(psycopg.errors.UniqueViolation):
        async with rolled_back(conn):
            scenario = await arrange_messaging(conn)
            await insert_row(conn, "public.profiles", {"id": scenario.users["member"]})
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert await table_counts(conn) == before
    await conn.commit()


async def test_attempt_alone_is_its_own_rolled_back_transaction(conn: AsyncConnection[Any]) -> None:
    before = await table_counts(conn)
    await conn.commit()
    service = Persona("service_role", None, "service_role")  # bypasses RLS: the write would succeed
    result = await attempt(conn, service, "insert into public.app_roles (name) values ('ghost')")
    assert result.outcome is A and result.count == 1
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert await table_counts(conn) == before
    await conn.commit()


@pytest.mark.parametrize("statement", ["commit", "  -- sneaky\n ROLLBACK", "/* x */ begin", "savepoint s",
                                       "release savepoint s", "end", "set role postgres", "reset role",
                                       "prepare transaction 'x'"])
async def test_statements_that_would_escape_the_rollback_are_refused(conn: AsyncConnection[Any],
                                                                     statement: str) -> None:
    with pytest.raises(ImpersonationError, match="escape the rolled-back transaction"):
        await attempt(conn, ANON, statement)
    with pytest.raises(ImpersonationError):
        await attempt(conn, ANON, "select 1", setup=[Step(statement)])


async def test_only_one_statement_runs(conn: AsyncConnection[Any]) -> None:
    service = Persona("service_role", None, "service_role")
    result = await attempt(conn, service, "select 1; insert into public.app_roles (name) values ('ghost')")
    assert result.outcome is ERR and result.sqlstate == "42601"
    cur = await conn.execute("select count(*) from public.app_roles where name = 'ghost'")
    assert await cur.fetchone() == (0,)


async def test_errors_are_errors_not_denials(conn: AsyncConnection[Any]) -> None:
    someone = Persona("someone", uuid.uuid4())
    missing = await attempt(conn, someone, "select * from public.no_such_table")
    assert missing.outcome is ERR and missing.sqlstate == "42P01" and not missing.outcome.denied
    syntax = await attempt(conn, someone, "selec 1")
    assert syntax.outcome is ERR and syntax.sqlstate == "42601"
    bad_setup = await attempt(conn, someone, "select 1", setup=[Step("select 1/0")])
    assert bad_setup.outcome is ERR and bad_setup.sqlstate == "22012"
    assert "setup step 1" in (bad_setup.message or "")
    denied_setup = await attempt(conn, someone, "select 1",
                                 setup=[Step("insert into public.app_roles (name) values ('x')")])
    assert denied_setup.outcome is ERR and denied_setup.sqlstate == "42501"  # the statement never ran
    unbound = await attempt(conn, someone, "select %(missing)s", {"other": 1})
    assert unbound.outcome is ERR and unbound.sqlstate is None and unbound.message


async def test_evidence_is_complete_small_and_masks_secrets(conn: AsyncConnection[Any]) -> None:
    claims = {"email": "r@example.test", "api_key": "sk-live-123", "refresh_token": "t0k"}
    persona = Persona("reader", uuid.uuid4(), extra_claims=claims)
    result = await attempt(conn, persona, "select g, repeat('x', 500) as long from generate_series(1, %s) g",
                           (12,), max_rows=3)
    assert result.outcome is A and result.count == 12
    assert len(result.rows) == 3 and result.rows_truncated
    evidence = result.evidence()
    text = json.dumps(evidence)
    assert "sk-live-123" not in text and "t0k" not in text
    assert evidence["claims"] == {"email": "r@example.test", "api_key": "***", "refresh_token": "***",
                                  "role": "authenticated", "sub": str(persona.sub)}
    assert evidence["sql"].startswith("select g") and evidence["params"] == [12]
    assert len(evidence["rows"][0]["long"]) <= 201
    assert evidence["duration_ms"] >= 0 and evidence["outcome"] == "allowed"
    assert "reader: allowed (12 rows)" in result.describe()


async def test_arranging_needs_a_rolled_back_transaction(database_url: str) -> None:
    async with await AsyncConnection.connect(database_url, autocommit=True) as c:
        with pytest.raises(ImpersonationError, match="rolled_back"):
            await arrange_messaging(c)
        with pytest.raises(ImpersonationError, match="rolled_back"):
            await as_persona(c, ANON)


async def test_arranging_refuses_a_role_that_cannot_bypass_rls(conn: AsyncConnection[Any]) -> None:
    async with rolled_back(conn):
        await conn.execute("set local role authenticated")
        # as_owner() resets to the session user first, so a superuser session still arranges...
        scenario = await arrange_messaging(conn)
        assert len(scenario.users) == 8
    # ...and a session user without BYPASSRLS is told what to do (role and switch both rolled back)
    async with rolled_back(conn):
        name = f"weak_{uuid.uuid4().hex[:8]}"
        await conn.execute(f"create role {name}")
        await conn.execute(f"set local session authorization {name}")
        with pytest.raises(ImpersonationError, match="BYPASSRLS"):
            await arrange_messaging(conn)


# --- a broken target: the checks must fail on it ----------------------------------------------------


@pytest_asyncio.fixture
async def scratch(new_database: Callable[[], str]) -> AsyncIterator[AsyncConnection[Any]]:
    """A fresh migrated database that the test may break."""
    async with await AsyncConnection.connect(new_database()) as c:
        yield c


async def outsider_reads_messages(conn: AsyncConnection[Any]) -> Attempt:
    async with rolled_back(conn):
        scenario = await arrange_messaging(conn)
        outsider = scenario.persona("outsider")
        return await attempt(conn, outsider, "select id, content from public.messages "
                             "where conversation_id = %(conv)s", scenario.params(outsider))


async def test_using_true_policy_makes_the_outsider_read_allowed(scratch: AsyncConnection[Any]) -> None:
    assert (await outsider_reads_messages(scratch)).outcome is E
    await scratch.execute("create policy x on public.messages for select to authenticated using (true)")
    await scratch.commit()
    leaked = await outsider_reads_messages(scratch)
    assert leaked.outcome is A and leaked.rows[0]["content"] == "hello from other"


async def test_recursive_policy_is_an_error_not_a_denial(scratch: AsyncConnection[Any]) -> None:
    await scratch.execute(
        "create policy recursive on public.conversation_members for select to authenticated using "
        "(exists (select 1 from public.conversation_members m where m.conversation_id = "
        "conversation_members.conversation_id and m.user_id = (select auth.uid())))")
    await scratch.commit()
    async with rolled_back(scratch):
        scenario = await arrange_messaging(scratch)
        for name in ("member", "outsider"):
            persona = scenario.persona(name)
            result = await attempt(scratch, persona, "select user_id from public.conversation_members "
                                   "where conversation_id = %(conv)s", scenario.params(persona))
            assert result.outcome is ERR and result.sqlstate == "42P17", result.describe()
            assert not result.outcome.denied and "infinite recursion" in (result.message or "")
