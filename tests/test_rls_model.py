"""The model-generated RLS matrix (db.rls_model) and the lints added with it, on the reference schema:
it passes with the model discovered from the catalog, and each kind of cell and each lint fails, naming
the object, on a copy broken in exactly that way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from msgops.config import Target
from msgops.dbmodel import Model, discover
from msgops.probes import Context, get
from msgops.results import Outcome
from tests.test_probes_db import assert_fails_naming, check, sql

NewDatabase = Callable[..., str]


def kinds(outcome: Outcome) -> set[tuple[str, str]]:
    return {(f["kind"], f["object"]) for f in outcome.evidence["findings"]}


async def test_the_reference_model_is_discovered_and_its_matrix_passes(database_url: str) -> None:
    outcome = await check(database_url, "db.rls_model")
    assert outcome.status == "pass", outcome.message
    model = Model.from_mapping(outcome.evidence["model"])
    assert {r.table for r in model.rooms} == {"public.conversations", "public.communities"}
    assert {m.table for m in model.memberships} == {"public.conversation_members", "public.community_members"}
    assert {"public.messages", "public.community_messages"} <= {m.table for m in model.messages}
    assert model.users is not None and model.users.table == "public.profiles"
    personas = {c["persona"] for c in outcome.evidence["cells"]}
    # staff: global moderators and admins (profiles.role), and per community (community_members.role)
    assert {"member", "member_without_role", "outsider", "anon", "moderator", "admin",
            "moderator_of_communities", "moderator_of_another_communities"} <= personas
    staff = {s.table: s for s in model.staff}
    assert staff["public.profiles"].may("delete", "public.messages", "moderator")
    assert staff["public.community_members"].room == "public.communities"
    assert ("member", "update", "public.profiles.role") in {(c["persona"], c["op"], c["object"])
                                                           for c in outcome.evidence["cells"]}
    assert {c["op"] for c in outcome.evidence["cells"]} == {"select", "insert", "update", "delete"}


# (the kind of cell, the break, the object it must name)
BREAKS: list[tuple[str, list[str], str]] = [
    ("outsider_reads", ["create policy leak on public.messages for select to authenticated using (true)"],
     "public.messages"),
    # a member of any conversation reads every conversation (the outsider is in a conversation of their own)
    ("outsider_reads", ["alter policy messages_select on public.messages using (exists (select 1 from "
                        "public.conversation_members m where m.user_id = (select auth.uid())))"], "public.messages"),
    ("anon_reads", ["grant select on public.community_messages to anon",
                    "create policy leak on public.community_messages for select to anon using (true)"],
     "public.community_messages"),
    ("outsider_writes", ["create policy open_join on public.conversation_members for insert to authenticated "
                         "with check (user_id = (select auth.uid()))"], "public.conversation_members"),
    ("forged_sender", ["drop policy messages_insert on public.messages",
                       "create policy messages_insert on public.messages for insert to authenticated with check "
                       "(exists (select 1 from public.conversation_members m where m.conversation_id = "
                       "messages.conversation_id and m.user_id = (select auth.uid())))"], "public.messages"),
    ("anon_writes", ["grant select, update (content) on public.messages to anon",
                     "create policy anon_edit on public.messages for all to anon using (true)"], "public.messages"),
    ("member_edits_others", ["create policy delete_any on public.messages for delete to authenticated using (exists ("
                             "select 1 from public.conversation_members m where m.conversation_id = "
                             "messages.conversation_id and m.user_id = (select auth.uid())))"], "public.messages"),
    ("policy_error", ["alter policy conversation_members_select on public.conversation_members using (exists ("
                      "select 1 from public.conversation_members x where x.conversation_id = conversation_id "
                      "and x.user_id = (select auth.uid())))"], "public.conversation_members"),
    ("member_denied", ["drop policy messages_select on public.messages"], "public.messages"),
    ("role_claim_required", ["create policy need_role on public.messages as restrictive for select "
                             "using (auth.jwt() ->> 'role' = 'authenticated')"], "public.messages"),
    ("contact_readable", ["grant select (email) on public.profiles to authenticated"], "public.profiles.email"),
]


@pytest.mark.parametrize(("kind", "statements", "obj"), BREAKS, ids=[f"{b[0]}-{i}" for i, b in enumerate(BREAKS)])
async def test_each_kind_of_cell_fails_when_broken(new_database: NewDatabase, kind: str, statements: list[str],
                                                   obj: str) -> None:
    url = new_database()
    sql(url, *statements)
    outcome = await check(url, "db.rls_model")
    assert_fails_naming(outcome, obj)
    assert (kind, obj) in kinds(outcome), sorted(kinds(outcome))
    finding = next(f for f in outcome.evidence["findings"] if (f["kind"], f["object"]) == (kind, obj))
    assert finding["attempt"]["sql"] and finding["attempt"]["claims"] is not None
    if finding["attempt"]["persona"] in ("member", "outsider"):  # claims shaped as Supabase Auth sends them
        claims = finding["attempt"]["claims"]
        assert claims["role"] == "authenticated" and claims["aud"] == "authenticated" and "@" in claims["email"]
    if kind == "policy_error":
        assert "42P17" in finding["problem"]


# (kind, persona, command, object, the break, whether the model is the one discovered before the break)
STAFF_BREAKS: list[tuple[str, str, str, str, list[str], bool]] = [
    # moderators of any community read every community's messages
    ("staff_reads", "moderator_of_another_communities", "select", "public.community_messages",
     ["alter policy community_messages_select on public.community_messages using ("
      "public.community_role(community_id) is not null or exists (select 1 from public.community_members m "
      "where m.user_id = (select auth.uid()) and m.role in ('moderator', 'admin')))"], False),
    # every user with an app role other than attendee reads every conversation: no staff rule says so
    ("staff_reads", "moderator", "select", "public.messages",
     ["create policy staff_read on public.messages for select to authenticated using (exists (select 1 from "
      "public.profiles p where p.id = (select auth.uid()) and p.role <> 'attendee'))"], False),
    # the moderator check dropped from the delete policy, judged by the model kept in msgops.yaml
    ("staff_denied", "moderator_of_communities", "delete", "public.community_messages",
     ["drop policy community_messages_delete on public.community_messages",
      "create policy community_messages_delete on public.community_messages for delete to authenticated using ("
      "sender_id = (select auth.uid()) or public.community_role(community_id) in ('owner', 'admin'))"], True),
    # the role policies trust is a column users may set on their own profile
    ("role_escalation", "member", "update", "public.profiles.role",
     ["grant update (role) on public.profiles to authenticated"], False),
]


@pytest.mark.parametrize(("kind", "persona", "op", "obj", "statements", "pinned"), STAFF_BREAKS,
                         ids=[f"{b[0]}-{b[1]}" for b in STAFF_BREAKS])
async def test_staff_cells_fail_when_broken(new_database: NewDatabase, kind: str, persona: str, op: str, obj: str,
                                            statements: list[str], pinned: bool) -> None:
    url = new_database()
    schema: dict[str, Any] | None = None
    if pinned:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            schema = (await discover(conn)).to_mapping()
    sql(url, *statements)
    probe = get("db.rls_model")
    assert probe is not None
    ctx = Context(Target(database_url=url, schema=schema))
    try:
        outcome = await probe.fn(ctx)
    finally:
        await ctx.close()
    assert_fails_naming(outcome, obj)
    found = {(f["attempt"]["persona"], f["attempt"]["sql"].split()[0]) for f in outcome.evidence["findings"]
             if (f["kind"], f["object"]) == (kind, obj)}
    assert (persona, op) in found, (sorted(kinds(outcome)), found)
    assert persona in outcome.message and op in outcome.message


async def test_a_staff_rule_in_the_policies_is_not_a_finding(new_database: NewDatabase) -> None:
    """Moderators reading every conversation is what this policy says: the model grants it."""
    url = new_database()
    sql(url, "create policy staff_read on public.messages for select to authenticated using (exists (select 1 "
             "from public.profiles p where p.id = (select auth.uid()) and p.role in ('moderator', 'admin')))")
    outcome = await check(url, "db.rls_model")
    assert outcome.status == "pass", outcome.message
    assert any(n.startswith("moderator: the policies let moderator select public.messages")
               for n in outcome.evidence["notes"]), outcome.evidence["notes"]


async def test_no_membership_is_a_finding(database_url: str) -> None:
    """A model without membership (here: the reference model with its membership removed in schema:)."""
    ctx = Context(Target(database_url=database_url))
    try:
        async with ctx.db() as conn:
            model = (await discover(conn)).to_mapping()
    finally:
        await ctx.close()
    model["memberships"] = []
    probe = get("db.rls_model")
    assert probe is not None
    ctx = Context(Target(database_url=database_url, schema=model))
    try:
        outcome = await probe.fn(ctx)
    finally:
        await ctx.close()
    assert ("no_membership", "public.messages") in kinds(outcome)
    assert not any(c["persona"] == "outsider" for c in outcome.evidence["cells"])


LINT_BREAKS: list[tuple[str, list[str], str]] = [
    ("role_only_policy", ["create policy signed_in on public.messages for select to authenticated "
                          "using (auth.role() = 'authenticated')"], "public.messages"),
    ("rls_not_forced", ["do $$ begin if not exists (select 1 from pg_roles where rolname = 'msgops_app_owner') "
                        "then create role msgops_app_owner nologin; end if; end $$",
                        "alter table public.conversations owner to msgops_app_owner",
                        "alter table public.conversations no force row level security"], "public.conversations"),
    ("policy_reads_user_metadata", ["create policy meta_admin on public.messages for delete to authenticated "
                                    "using ((auth.jwt() -> 'user_metadata' ->> 'role') = 'admin')"],
     "public.messages"),
    ("table_without_primary_key", ["create table public.scratch_notes (note text)"], "public.scratch_notes"),
    ("contact_columns_readable", ["grant select (email) on public.profiles to authenticated"],
     "public.profiles.email"),
    ("realtime_authorization_open", ["create schema if not exists realtime",
                                     "create table realtime.messages (id bigint generated always as identity "
                                     "primary key, topic text not null, payload jsonb)",
                                     "alter table realtime.messages enable row level security",
                                     "create policy any_channel on realtime.messages for select to authenticated "
                                     "using (auth.role() = 'authenticated')"], "realtime.messages"),
    ("storage_objects_listable", ["create schema if not exists storage",
                                  "create table storage.objects (id uuid primary key default gen_random_uuid(), "
                                  "bucket_id text, name text, owner uuid)",
                                  "alter table storage.objects enable row level security",
                                  "create policy own_files on storage.objects for select using (bucket_id = 'docs' "
                                  "and owner = (select auth.uid()))",
                                  "create policy anyone on storage.objects for select using (bucket_id = 'avatars')"],
     "storage.objects bucket avatars"),
]


@pytest.mark.parametrize(("lint", "statements", "obj"), LINT_BREAKS, ids=[b[0] for b in LINT_BREAKS])
async def test_each_new_lint_fails_when_broken(new_database: NewDatabase, lint: str, statements: list[str],
                                               obj: str) -> None:
    url = new_database()
    sql(url, *statements)
    outcome = await check(url, "db.lint", lint=lint)
    assert_fails_naming(outcome, obj)
    doc: dict[str, Any] = outcome.evidence["doc"]
    assert all(doc.get(k) for k in ("what", "why", "example", "fix")), doc


FUNCTION_BREAKS: list[tuple[str, list[str], str, str]] = [
    ("function_outsider", [
        "create function public.join_any(conversation uuid) returns void language sql security definer "
        "set search_path = public as $$ insert into public.conversation_members (conversation_id, user_id) "
        "values (conversation, auth.uid()) $$",
        "grant execute on function public.join_any(uuid) to authenticated"], "public.join_any(uuid)", "changed"),
    ("function_outsider", [
        "create function public.peek(conversation uuid) returns setof text language sql security definer "
        "set search_path = public as $$ select content from public.messages where conversation_id = conversation $$",
        "grant execute on function public.peek(uuid) to authenticated"], "public.peek(uuid)",
     "the room's message text"),
    ("function_error", [
        "create function public.page(conversation uuid) returns setof text language plpgsql "
        "set search_path = public as $$ begin return query select body from public.no_such_table; end $$",
        "grant execute on function public.page(uuid) to authenticated"], "public.page(uuid)", "42P01"),
]


@pytest.mark.parametrize(("kind", "statements", "obj", "why"), FUNCTION_BREAKS,
                         ids=[b[2] for b in FUNCTION_BREAKS])
async def test_functions_called_as_an_outsider_fail_when_broken(new_database: NewDatabase, kind: str,
                                                                statements: list[str], obj: str, why: str) -> None:
    url = new_database()
    sql(url, *statements)
    outcome = await check(url, "db.functions_outsider")
    assert_fails_naming(outcome, obj.split("(")[0])
    finding = next(f for f in outcome.evidence["findings"] if f["object"].startswith(obj.split("(")[0] + "("))
    assert finding["kind"] == kind and why in finding["problem"], finding
    assert finding["call"].startswith("select to_jsonb(x)::text from ")


async def test_the_matrix_split_over_connections_is_the_matrix_on_one(database_url: str) -> None:
    """Each pooled connection arranges its own rows and attempts every n-th cell: the cells and what each
    persona met are those of the whole matrix run on one connection."""
    from psycopg.rows import tuple_row

    from msgops.probes.db.rls_model import run_matrix

    async with await psycopg.AsyncConnection.connect(database_url, row_factory=tuple_row) as conn:
        model = await discover(conn)
        one = await run_matrix(conn, model)
    split = await check(database_url, "db.rls_model")
    assert split.status == "pass" and not one.findings
    assert sorted((c.persona, c.op, c.object, c.what, str(s.outcome)) for c, s in one.cells) == sorted(
        (c["persona"], c["op"], c["object"], c["what"], c["outcome"]) for c in split.evidence["cells"])
