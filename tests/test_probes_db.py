"""The `db` probe family against real PostgreSQL: every kind passes on the reference schema, and fails,
naming the broken object, on a database broken in exactly that way (a fresh copy from new_database())."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from msgops.checklist import probe_kinds
from msgops.config import Target
from msgops.probes import Context, Skip, get
from msgops.probes.db.lints import lint_names
from msgops.probes.db.plans import QUERIES
from msgops.probes.db.rls import SCENARIOS
from msgops.results import Outcome
from tests.support import JWT_SECRET, RunningService

NewDatabase = Callable[..., str]


async def check(url: str, kind: str, api_url: str | None = None, **params: Any) -> Outcome:
    probe = get(kind)
    assert probe is not None, kind
    ctx = Context(Target(api_url=api_url, database_url=url, jwt_secret=JWT_SECRET))
    try:
        return await probe.fn(ctx, **params)
    finally:
        await ctx.close()


def sql(url: str, *statements: str) -> None:
    """Break (or arrange) a test database as its owner."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def dump(outcome: Outcome) -> str:
    return json.dumps(outcome.evidence, default=str)


def assert_fails_naming(outcome: Outcome, *names: str) -> None:
    assert outcome.status == "fail", f"{outcome.status}: {outcome.message}"
    text = outcome.message + dump(outcome)
    for name in names:
        assert name in text, f"{name} not in evidence: {outcome.message}"


# --- every kind passes against the reference schema ----------------------------------------------------

REFERENCE_CHECKS: list[tuple[str, dict[str, Any]]] = [
    ("db.tables_exist", {"tables": ["conversations", "conversation_members", "messages", "communities",
                                    "community_members", "community_messages"]}),
    ("db.tables_exist", {"tables": ["schema_migrations"], "schema": "msgops_meta"}),
    ("db.columns_exist", {"table": "messages", "columns": ["parent_id", "is_deleted", "seq"]}),
    ("db.indexes_exist", {"indexes": ["idx_messages_conversation_created", "idx_community_messages_community_created",
                                      "idx_messages_search"]}),
    ("db.functions_exist", {"functions": ["get_or_create_conversation", "auth.uid"]}),
    ("db.triggers_exist", {"functions": ["update_updated_at_column", "update_community_member_count"]}),
    ("db.extensions", {"extensions": ["plpgsql", "pg_stat_statements"]}),
    ("db.rls_enabled", {"tables": ["messages", "broadcast_quotas", "reported_messages"], "forced": True}),
    ("db.rls_policies", {"tables": ["conversations", "conversation_members", "messages", "communities",
                                    "community_members", "community_messages"],
                         "commands": ["select", "insert", "update", "delete"]}),
    ("db.publication", {"tables": ["messages", "community_messages", "conversations", "communities"]}),
    ("db.autovacuum", {"tables": ["messages", "community_messages"]}),
    ("db.pool", {}),
    ("db.roles", {"roles": ["anon", "authenticated", "service_role"]}),
    ("db.migrations_applied", {}),
    ("db.content_removed_on_delete", {}),
    ("db.tables_partition_advice", {"table": "messages", "rows": 1_000_000}),
    ("db.rls_model", {}),
    ("db.functions_outsider", {}),
    ("db.get_or_create_room", {"function": "get_or_create_conversation"}),
    *[("db.lint", {"lint": lint}) for lint in lint_names()],
    *[("db.rls_matrix", {"scenario": s}) for s in sorted(SCENARIOS)],
    *[("db.query_plan", {"query": q, "max_ms": 500}) for q in sorted(QUERIES)],
]


def test_every_db_kind_and_choice_is_covered() -> None:
    kinds = {k for k in probe_kinds() if k.startswith("db.")}
    assert kinds == {k for k, _ in REFERENCE_CHECKS}
    for kind in kinds:
        assert get(kind) is not None, kind
        doc = get(kind).doc  # type: ignore[union-attr]
        assert doc.what and doc.why and doc.example and doc.fix


@pytest.mark.parametrize(("kind", "params"), REFERENCE_CHECKS,
                         ids=[f"{k}-{next(iter(p.values()), '')}" for k, p in REFERENCE_CHECKS])
async def test_passes_on_the_reference_service(service: RunningService, kind: str, params: dict[str, Any]) -> None:
    outcome = await check(service.database_url, kind, api_url=service.url, **params)
    assert outcome.status == "pass", f"{outcome.message}\n{dump(outcome)[:3000]}"
    assert outcome.evidence


async def test_probes_leave_nothing_behind(service: RunningService) -> None:
    counts = "select (select count(*) from public.profiles), (select count(*) from public.messages), " \
             "(select count(*) from public.community_messages), (select reltuples from pg_class " \
             "where oid = 'public.messages'::regclass)"
    service.sql("analyze public.messages")  # estimates as of now, as the probe leaves them
    before = service.sql(counts)
    await check(service.database_url, "db.query_plan", query="message_page")
    await check(service.database_url, "db.rls_matrix", scenario="full_matrix")
    assert service.sql(counts) == before


async def test_a_plan_is_observed_once_per_context_and_judged_per_budget(database_url: str) -> None:
    ctx = Context(Target(database_url=database_url))
    try:
        plan = get("db.query_plan")
        assert plan
        first = await plan.fn(ctx, query="message_page")
        again = await plan.fn(ctx, query="message_page", max_ms=0.000001)
        assert first.evidence["execution_ms"] == again.evidence["execution_ms"]
        assert again.status == "fail" and "budget" in again.message
    finally:
        await ctx.close()


# --- row level security, catalog side ------------------------------------------------------------------


async def test_rls_disabled_on_a_table(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "alter table public.messages disable row level security")
    assert_fails_naming(await check(url, "db.rls_enabled", tables=["conversations", "messages"]), "public.messages")
    assert_fails_naming(await check(url, "db.rls_policies", tables=["messages"]), "public.messages")
    assert_fails_naming(await check(url, "db.lint", lint="rls_disabled_in_public"), "public.messages")
    assert_fails_naming(await check(url, "db.lint", lint="policy_exists_rls_disabled"), "public.messages")
    outsider = await check(url, "db.rls_matrix", scenario="outsider_cannot_read_messages")
    assert_fails_naming(outsider, "outsider reads public.messages of a room they are not in", "public.messages")
    matrix = await check(url, "db.rls_matrix", scenario="full_matrix")
    assert_fails_naming(matrix, "outsider select public.messages")


async def test_rls_not_forced(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "alter table public.reported_messages no force row level security")
    assert (await check(url, "db.rls_enabled", tables=["reported_messages"])).status == "pass"
    assert_fails_naming(await check(url, "db.rls_enabled", tables=["reported_messages"], forced=True),
                        "public.reported_messages", "not forced")


async def test_missing_policy_for_a_command(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "drop policy messages_update on public.messages")
    outcome = await check(url, "db.rls_policies", tables=["messages"], commands=["select", "update"])
    assert_fails_naming(outcome, "public.messages", "UPDATE")


async def test_using_true_policy(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "drop policy messages_update on public.messages",
        "create policy messages_update on public.messages for update to authenticated using (true) with check (true)")
    assert_fails_naming(await check(url, "db.lint", lint="rls_policy_always_true"), "public.messages",
                        "messages_update")
    assert_fails_naming(await check(url, "db.rls_matrix", scenario="member_cannot_edit_others_messages"),
                        "member marks another member's message as edited", "allowed")


async def test_select_true_for_anon_on_user_data_but_not_reference_data(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "create policy app_roles_public on public.app_roles for select to anon using (true)")
    assert (await check(url, "db.lint", lint="rls_policy_always_true")).status == "pass"  # reference data
    sql(url, "create policy messages_public on public.messages for select to anon using (true)")
    assert_fails_naming(await check(url, "db.lint", lint="rls_policy_always_true"), "public.messages",
                        "messages_public")


async def test_member_can_edit_anothers_message(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "alter policy messages_update on public.messages "
             "using (public.is_conversation_member(conversation_id)) "
             "with check (public.is_conversation_member(conversation_id))")
    outcome = await check(url, "db.rls_matrix", scenario="member_cannot_edit_others_messages")
    assert_fails_naming(outcome, "member marks another member's message as edited", "update public.messages")
    bad = [c for c in outcome.evidence["checks"] if not c["ok"]]
    assert bad and bad[0]["attempt"]["persona"] == "member" and bad[0]["attempt"]["outcome"] == "allowed"
    sql(url, "drop trigger guard_message_content on public.messages")  # the trigger guarded the text alone
    outcome = await check(url, "db.rls_matrix", scenario="member_cannot_edit_others_messages")
    assert_fails_naming(outcome, "member edits another member's message")
    assert_fails_naming(await check(url, "db.rls_matrix", scenario="full_matrix"), "member update public.messages")


async def test_member_can_delete_anothers_message(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "alter policy messages_delete on public.messages using (public.is_conversation_member(conversation_id))")
    assert_fails_naming(await check(url, "db.rls_matrix", scenario="member_cannot_delete_others_messages"),
                        "member deletes another member's message")


async def test_moderators_and_admins_cannot_delete(new_database: NewDatabase) -> None:
    url = new_database()
    for cmd in ("update", "delete"):
        sql(url, f"alter policy community_messages_{cmd} on public.community_messages "
                 "using (sender_id = (select auth.uid()))")
    sql(url, "alter policy community_messages_update on public.community_messages "
             "using (sender_id = (select auth.uid())) with check (sender_id = (select auth.uid()))")
    for scenario, role in (("moderator_can_delete_community_messages", "moderator"),
                           ("admin_can_delete_community_messages", "admin")):
        assert_fails_naming(await check(url, "db.rls_matrix", scenario=scenario),
                            f"community {role} deletes another member's community message")


async def test_private_community_visible_to_outsiders(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "alter policy communities_select on public.communities using (true)")
    assert_fails_naming(await check(url, "db.rls_matrix", scenario="private_community_invisible"),
                        "outsider_reads on public.communities (select as outsider)")
    sql(url, "alter policy communities_select on public.communities using (public.community_role(id) is not null)")
    assert_fails_naming(await check(url, "db.rls_matrix", scenario="public_community_visible"),
                        "outsider sees the public community")


async def test_outsider_reads_conversations_and_sends(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "alter policy conversations_select on public.conversations using ((select auth.uid()) is not null)",
        "alter policy messages_insert on public.messages with check (sender_id = (select auth.uid()))")
    assert_fails_naming(await check(url, "db.rls_matrix", scenario="outsider_cannot_read_conversations"),
                        "outsider_reads on public.conversations (select as outsider)")
    assert_fails_naming(await check(url, "db.rls_matrix", scenario="outsider_cannot_send_messages"),
                        "outsider_writes on public.messages (insert as outsider)")


async def test_member_cannot_delete_own_message(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "drop policy messages_delete on public.messages",
        "alter policy messages_update on public.messages using (false) with check (false)")
    assert_fails_naming(await check(url, "db.rls_matrix", scenario="member_can_delete_own_messages"),
                        "member deletes their own message")


async def test_anon_granted_reads(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "grant select on public.broadcasts to anon",
        "create policy broadcasts_anon on public.broadcasts for select to anon using (true)")
    assert_fails_naming(await check(url, "db.rls_matrix", scenario="anon_denied_everywhere"),
                        "anon select on public.broadcasts")


async def test_emails_readable(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "grant select (email) on public.profiles to authenticated")
    assert_fails_naming(await check(url, "db.rls_matrix", scenario="emails_not_readable"),
                        "member reads another user's email")


async def test_dm_matrix_and_get_or_create_conversation(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "insert into public.dm_permissions values ('attendee', 'dealer')")
    assert_fails_naming(await check(url, "db.rls_matrix", scenario="dm_matrix"), "opens a DM with dealer")
    sql(url, "grant execute on function public.get_or_create_conversation(uuid) to anon",
        "create or replace function public.get_or_create_conversation(other_user uuid) returns uuid "
        "language sql security definer set search_path = '' as $$ "
        "select m.conversation_id from public.conversation_members m where m.user_id = other_user limit 1 $$")
    assert_fails_naming(await check(url, "db.rls_matrix", scenario="outsider_cannot_call_get_or_create_conversation"),
                        "anon calls get_or_create_conversation")


async def test_broadcast_quota_not_enforced(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "update public.broadcast_permissions set quota = 100")
    assert_fails_naming(await check(url, "db.rls_matrix", scenario="broadcast_quota"),
                        "organizer's third pre-show broadcast")


async def test_a_crashing_policy_is_never_a_denial(new_database: NewDatabase) -> None:
    url = new_database()
    # a policy on conversation_members that queries conversation_members: 42P17 infinite recursion
    sql(url, "alter policy conversation_members_select on public.conversation_members using (exists ("
             "select 1 from public.conversation_members x where x.conversation_id = conversation_id "
             "and x.user_id = (select auth.uid())))")
    outcome = await check(url, "db.rls_matrix", scenario="outsider_cannot_read_conversations")
    assert_fails_naming(outcome, "42P17")


async def test_scenarios_run_by_meaning_on_a_schema_without_the_seed_tables(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "drop table public.rate_limit_counters")
    outcome = await check(url, "db.rls_matrix", scenario="outsider_cannot_read_messages")
    assert outcome.status == "pass", outcome.message
    assert {c["object"] for c in outcome.evidence["cells"]} >= {"public.messages", "public.community_messages"}
    with pytest.raises(Skip, match=r"not applicable: .*public\.rate_limit_counters"):
        await check(url, "db.rls_matrix", scenario="dm_matrix")


# --- lints ---------------------------------------------------------------------------------------------


async def test_security_definer_without_search_path_executable_by_anon(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "create function public.leak_profiles() returns setof text language sql security definer "
             "as $$ select email from public.profiles $$",
        "grant execute on function public.leak_profiles() to anon")
    assert_fails_naming(await check(url, "db.lint", lint="function_search_path_mutable"), "public.leak_profiles()")
    assert_fails_naming(await check(url, "db.lint", lint="security_definer_executable_by_anon"),
                        "public.leak_profiles()")


async def test_unindexed_foreign_key(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "drop index public.idx_broadcasts_sender")
    assert_fails_naming(await check(url, "db.lint", lint="unindexed_foreign_keys"), "public.broadcasts", "sender_id")


async def test_duplicate_index(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "create index idx_messages_conversation_created_again "
             "on public.messages (conversation_id, created_at desc)")
    assert_fails_naming(await check(url, "db.lint", lint="duplicate_index"), "public.messages",
                        "idx_messages_conversation_created_again")


async def test_unwrapped_auth_uid_in_a_policy(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "alter policy profiles_update on public.profiles using (id = auth.uid()) "
             "with check (id = (select auth.uid()))")
    outcome = await check(url, "db.lint", lint="auth_rls_initplan")
    assert_fails_naming(outcome, "public.profiles", "profiles_update", "USING")
    assert all("WITH CHECK" not in f["detail"] for f in outcome.evidence["findings"])  # the wrapped one is fine


async def test_multiple_permissive_policies(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "create policy messages_select_too on public.messages for select to authenticated "
             "using (sender_id = (select auth.uid()))")
    assert_fails_naming(await check(url, "db.lint", lint="multiple_permissive_policies"), "public.messages",
                        "messages_select", "messages_select_too")


async def test_rls_enabled_without_policy(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "drop policy broadcast_quotas_select on public.broadcast_quotas")
    assert_fails_naming(await check(url, "db.lint", lint="rls_enabled_no_policy"), "public.broadcast_quotas")


# --- schema objects ------------------------------------------------------------------------------------


async def test_dropped_index_and_seq_scan_plan(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "drop index public.idx_messages_conversation_created")
    assert_fails_naming(await check(url, "db.indexes_exist", indexes=["idx_messages_conversation_created"]),
                        "public.idx_messages_conversation_created")
    plan = await check(url, "db.query_plan", query="message_page")
    assert_fails_naming(plan, "public.messages", "idx_messages_conversation_created")
    assert any(n["node"] in ("Seq Scan", "Sort") for n in plan.evidence["plan"])
    assert plan.evidence["setup"]["synthetic_rows"] is True


async def test_seq_scan_when_no_index_leads_with_the_conversation(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "drop index public.idx_messages_conversation_created",
        "alter table public.messages drop constraint messages_conversation_id_seq_key")
    plan = await check(url, "db.query_plan", query="search")
    assert_fails_naming(plan, "Seq Scan on public.messages")


async def test_dropped_trigger_and_function(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "drop trigger update_community_member_count on public.community_members",
        "drop function public.get_or_create_conversation(uuid)")
    assert_fails_naming(await check(url, "db.triggers_exist", functions=["update_updated_at_column",
                                                                          "update_community_member_count"]),
                        "public.update_community_member_count()")
    assert_fails_naming(await check(url, "db.functions_exist", functions=["get_or_create_conversation"]),
                        "public.get_or_create_conversation()")
    with pytest.raises(Skip, match="get_or_create_conversation"):
        await check(url, "db.rls_matrix", scenario="dm_matrix")


async def test_disabled_trigger(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "alter table public.community_members disable trigger update_community_member_count")
    assert_fails_naming(await check(url, "db.triggers_exist", functions=["update_community_member_count"]),
                        "disabled", "public.community_members")


async def test_missing_table_column_extension_role(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "drop table public.audit_log", "alter table public.messages drop column parent_id cascade")
    assert_fails_naming(await check(url, "db.tables_exist", tables=["messages", "audit_log"]), "public.audit_log")
    assert_fails_naming(await check(url, "db.columns_exist", table="messages", columns=["content", "parent_id"]),
                        "public.messages.parent_id")
    assert_fails_naming(await check(url, "db.extensions", extensions=["plpgsql", "no_such_extension"]),
                        "no_such_extension", "not available")
    assert_fails_naming(await check(url, "db.roles", roles=["anon", "msgops_no_such_role"]), "msgops_no_such_role")


async def test_publication_missing_a_table(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "alter publication supabase_realtime drop table public.community_messages")
    assert_fails_naming(await check(url, "db.publication", tables=["messages", "community_messages"]),
                        "public.community_messages", "supabase_realtime")
    assert_fails_naming(await check(url, "db.publication", tables=["messages"], publication="no_such_pub"),
                        "no_such_pub")


async def test_autovacuum_defaults(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "alter table public.messages reset (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor)",
        "alter table public.community_messages set (autovacuum_enabled = false)")
    outcome = await check(url, "db.autovacuum", tables=["messages", "community_messages"])
    assert_fails_naming(outcome, "public.messages", "public.community_messages: autovacuum disabled")


async def test_pool_capacity(database_url: str) -> None:
    outcome = await check(database_url, "db.pool", max_connections=100_000)
    assert_fails_naming(outcome, "max_connections", "100000")
    assert outcome.evidence["connections"]["in_use"] >= 1


async def test_migration_not_applied(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "delete from msgops_meta.schema_migrations where name = '005_moderation.sql'")
    assert_fails_naming(await check(url, "db.migrations_applied"), "005_moderation.sql", "not applied")
    sql(url, "update msgops_meta.schema_migrations set checksum = 'edited' where name = '002_messaging_schema.sql'")
    assert_fails_naming(await check(url, "db.migrations_applied"), "002_messaging_schema.sql", "changed")


async def test_deleted_content_kept(new_database: NewDatabase) -> None:
    url = new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("messages", "community_messages"):
            row = conn.execute("select conname from pg_constraint where conrelid = %s::regclass and contype = 'c' "
                               "and pg_get_constraintdef(oid) like '%%is_deleted%%'", (f"public.{table}",)).fetchone()
            assert row is not None
            conn.execute(f'alter table public.{table} drop constraint "{row[0]}"'.encode())
    outcome = await check(url, "db.content_removed_on_delete")
    assert_fails_naming(outcome, "public.messages", "nothing in the database removes content")
    sql(url, "insert into public.profiles (id) values ('00000000-0000-0000-0000-00000000000a')",
        "insert into public.conversations (id, kind, created_by) values "
        "('00000000-0000-0000-0000-0000000000c1', 'group', '00000000-0000-0000-0000-00000000000a')",
        "insert into public.messages (conversation_id, sender_id, content, is_deleted) values "
        "('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-00000000000a', 'secret', true)")
    assert_fails_naming(await check(url, "db.content_removed_on_delete"),
                        "public.messages: 1 deleted rows still hold their content")


async def test_partition_advice(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "create table public.event_log as select g as id from generate_series(1, 5000) g",
        "analyze public.event_log")
    assert_fails_naming(await check(url, "db.tables_partition_advice", table="event_log", rows=1000),
                        "public.event_log", "5000")
    below = await check(url, "db.tables_partition_advice", table="event_log", rows=10_000)
    assert below.status == "pass", below.message
