"""The generic db checks on a schema we did not design: a small Supabase-style chat (rooms, room_members,
chat_messages) with two holes our service does not have: room_members without RLS, and a SECURITY DEFINER
`public.join_any_room(uuid)` callable by anon without a search_path. The lints find both; the parts
written correctly pass; the checks that need the seed schema skip and say why."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection

from msgops.config import Target
from msgops.impersonation import ANON, attempt, rolled_back
from msgops.impersonation import Outcome as Seen
from msgops.probes import Context, Skip, get
from msgops.results import Outcome
from tests.corpus_check import CORPUS

# A chat written for this test, Supabase style (the API roles get table grants; policies narrow them).
CHAT_SCHEMA = """
create table public.rooms (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  is_private boolean not null default false,
  created_by uuid not null
);
create table public.room_members (
  room_id uuid not null references public.rooms (id) on delete cascade,
  user_id uuid not null,
  primary key (room_id, user_id)
);
create index room_members_user on public.room_members (user_id);
create table public.chat_messages (
  id uuid primary key default gen_random_uuid(),
  room_id uuid not null references public.rooms (id) on delete cascade,
  author_id uuid not null,
  body text not null check (char_length(body) <= 2000),
  created_at timestamptz not null default now()
);
create index chat_messages_room_created on public.chat_messages (room_id, created_at desc);

grant select, insert, update, delete on all tables in schema public to anon, authenticated;

alter table public.rooms enable row level security;
alter table public.chat_messages enable row level security;
-- the hole: room_members was forgotten (no RLS)

create policy rooms_select on public.rooms for select to authenticated using (
  not is_private or exists (select 1 from public.room_members m
                            where m.room_id = rooms.id and m.user_id = (select auth.uid())));
create policy rooms_insert on public.rooms for insert to authenticated
  with check (created_by = (select auth.uid()));
create policy chat_messages_select on public.chat_messages for select to authenticated using (
  exists (select 1 from public.room_members m
          where m.room_id = chat_messages.room_id and m.user_id = (select auth.uid())));
create policy chat_messages_insert on public.chat_messages for insert to authenticated with check (
  author_id = (select auth.uid())
  and exists (select 1 from public.room_members m
              where m.room_id = chat_messages.room_id and m.user_id = (select auth.uid())));

-- the second hole: SECURITY DEFINER, no search_path, EXECUTE left to PUBLIC (so anon may call it)
create function public.join_any_room(room uuid) returns void language sql security definer as $$
  insert into public.room_members (room_id, user_id) values (room, auth.uid())
$$;

insert into public.rooms (id, name, is_private, created_by)
values ('00000000-0000-0000-0000-0000000000a1', 'secret room', true, '00000000-0000-0000-0000-0000000000b1');
insert into public.room_members (room_id, user_id)
values ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000b1');
"""


def chat_database(new_database: Callable[..., str]) -> str:
    """A fresh database with what a Supabase project provides (the corpus' stub), then the chat."""
    url = new_database(migrated=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((CORPUS / "supabase_stub.sql").read_text().encode())
        conn.execute(CHAT_SCHEMA.encode())
    return url


@pytest.fixture(scope="module")
def chat_url(new_database: Callable[..., str]) -> str:
    return chat_database(new_database)


async def check(url: str, kind: str, **params: Any) -> Outcome:
    probe = get(kind)
    assert probe is not None
    ctx = Context(Target(database_url=url))
    try:
        return await probe.fn(ctx, **params)
    finally:
        await ctx.close()


def objects(outcome: Outcome) -> set[str]:
    return {f["object"] for f in outcome.evidence["findings"]}


async def test_the_lints_find_the_table_without_rls(chat_url: str) -> None:
    outcome = await check(chat_url, "db.lint", lint="rls_disabled_in_public")
    assert outcome.status == "fail"
    assert objects(outcome) == {"public.room_members"}
    assert "anon, authenticated" in outcome.evidence["findings"][0]["detail"]


async def test_the_lints_find_the_definer_function_open_to_anon(chat_url: str) -> None:
    for lint in ("security_definer_executable_by_anon", "function_search_path_mutable"):
        outcome = await check(chat_url, "db.lint", lint=lint)
        assert outcome.status == "fail", lint
        assert objects(outcome) == {"public.join_any_room(room uuid)"}, lint
        assert "public.join_any_room" in outcome.message


@pytest.mark.parametrize("lint", ["policy_exists_rls_disabled", "rls_enabled_no_policy", "rls_policy_always_true",
                                  "multiple_permissive_policies", "auth_rls_initplan", "unindexed_foreign_keys",
                                  "duplicate_index"])
async def test_the_parts_written_correctly_pass(chat_url: str, lint: str) -> None:
    outcome = await check(chat_url, "db.lint", lint=lint)
    assert outcome.status == "pass", json.dumps(outcome.evidence, default=str)[:2000]


async def test_catalog_checks_on_the_foreign_schema(chat_url: str) -> None:
    assert (await check(chat_url, "db.rls_enabled", tables=["rooms", "chat_messages"])).status == "pass"
    missing = await check(chat_url, "db.rls_enabled", tables=["rooms", "room_members", "chat_messages"])
    assert missing.status == "fail" and "public.room_members" in missing.message
    assert (await check(chat_url, "db.rls_policies", tables=["rooms", "chat_messages"],
                        commands=["select", "insert"])).status == "pass"
    assert (await check(chat_url, "db.indexes_exist", indexes=["chat_messages_room_created"])).status == "pass"
    assert (await check(chat_url, "db.roles", roles=["anon", "authenticated", "service_role"])).status == "pass"
    assert (await check(chat_url, "db.tables_exist", tables=["rooms", "room_members", "chat_messages"])).status \
        == "pass"


@pytest.mark.parametrize(("kind", "params", "reason"), [
    ("db.rls_matrix", {"scenario": "dm_matrix"}, "not applicable: .*get_or_create_conversation"),
    ("db.rls_matrix", {"scenario": "public_community_visible"}, "not applicable: .*public communities"),
    ("db.query_plan", {"query": "unread_counts"}, r"not applicable: public\.room_members has no read position"),
    ("db.content_removed_on_delete", {}, "deleted flag"),
    ("db.migrations_applied", {}, "migration history"),
])
async def test_seed_specific_checks_skip_with_the_reason(chat_url: str, kind: str, params: dict[str, Any],
                                                          reason: str) -> None:
    with pytest.raises(Skip, match=reason):
        await check(chat_url, kind, **params)


async def test_the_hole_is_real(chat_url: str) -> None:
    """What the lint reports: anon reads who is in the private room."""
    async with await AsyncConnection.connect(chat_url) as conn, rolled_back(conn):
        seen = await attempt(conn, ANON, "select room_id, user_id from public.room_members")
    assert seen.outcome is Seen.ALLOWED and seen.count == 1


async def test_seed_scenarios_run_by_meaning_on_the_discovered_model(chat_url: str) -> None:
    """The seeds' questions asked of rooms/room_members/chat_messages: the written policies hold, the
    forgotten RLS on room_members shows, and each cell names its table."""
    read = await check(chat_url, "db.rls_matrix", scenario="outsider_cannot_read_messages")
    assert read.status == "pass", read.message
    assert {c["object"] for c in read.evidence["cells"]} == {"public.chat_messages"}
    full = await check(chat_url, "db.rls_matrix", scenario="full_matrix")
    assert full.status == "fail"
    kinds = {(f["kind"], f["object"]) for f in full.evidence["findings"]}
    assert ("outsider_reads", "public.room_members") in kinds and ("anon_reads", "public.room_members") in kinds
    assert all(o != "public.chat_messages" for _, o in kinds), kinds
    assert "public.room_members" in full.message


async def test_the_message_page_of_the_model_is_planned(new_database: Callable[..., str]) -> None:
    """The hot query asked of chat_messages: served by its index; without it, a scan and a sort."""
    url = chat_database(new_database)
    page = await check(url, "db.query_plan", query="message_page")
    assert page.status == "pass", page.message
    assert "chat_messages_room_created" in page.message
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("drop index public.chat_messages_room_created")
    page = await check(url, "db.query_plan", query="message_page")
    assert page.status == "fail" and "Seq Scan on public.chat_messages" in page.message
    assert "public.chat_messages (room_id, created_at desc)" in page.message


SEED_TABLES = ["conversations", "conversation_members", "messages", "communities", "community_members",
               "community_messages"]


async def test_seed_table_items_are_checked_on_the_models_tables(chat_url: str) -> None:
    """"RLS enabled on all 6 tables" means every messaging table here: room_members is the one without RLS.
    Policies for each command are the seeds' design: here only RLS and a policy per table are required."""
    enabled = await check(chat_url, "db.rls_enabled", tables=SEED_TABLES)
    assert enabled.status == "fail" and "public.room_members" in enabled.message
    assert "does not exist" not in enabled.message
    assert enabled.evidence["by_meaning"]["public.conversation_members"].endswith("public.room_members")
    policies = await check(chat_url, "db.rls_policies", tables=SEED_TABLES,
                           commands=["select", "insert", "update", "delete"])
    assert policies.status == "fail" and "public.room_members" in policies.message
    assert "UPDATE" not in policies.message
    exists = await check(chat_url, "db.tables_exist", tables=SEED_TABLES)
    assert exists.status == "pass", exists.message
    with pytest.raises(Skip, match="not applicable"):
        await check(chat_url, "db.functions_exist", functions=["get_or_create_conversation"])
