"""The seed checklists' schema items, read literally from the catalog of the migrated database.

Each check is one query (splinter-style) that returns the offenders, so a clean schema gives [].
The last test breaks a scratch copy in each of those ways and shows that every check then fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

SEED_TABLES = ("conversations", "conversation_members", "messages", "communities", "community_members",
               "community_messages")
MIGRATION_TABLES = ("broadcast_quotas", "reported_messages")  # seed 002's "new tables exist"
SEED_INDEXES = {  # name -> (table, leading columns as pg_get_indexdef prints them)
    "idx_messages_conversation_created": ("messages", "conversation_id, created_at DESC"),
    "idx_community_messages_community_created": ("community_messages", "community_id, created_at DESC"),
}
REALTIME_TABLES = {"messages", "community_messages", "conversations", "communities"}
ALL = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
# Which commands each table's policies must cover: what the API lets users do; the rest is denied by
# having no policy (and no grant).
EXPECTED_POLICIES: dict[str, frozenset[str]] = {
    "conversations": ALL, "conversation_members": ALL, "messages": ALL, "communities": ALL,
    "community_members": ALL, "community_messages": ALL,
    "message_reactions": frozenset({"SELECT", "INSERT", "DELETE"}),
    "profiles": frozenset({"SELECT", "INSERT", "UPDATE"}),
    "reported_messages": frozenset({"SELECT", "INSERT", "UPDATE"}),
    "broadcasts": frozenset({"SELECT"}), "broadcast_quotas": frozenset({"SELECT"}),
    "audit_log": frozenset({"SELECT"}), "app_roles": frozenset({"SELECT"}),
    "dm_permissions": frozenset({"SELECT"}), "broadcast_permissions": frozenset({"SELECT"}),
}

Conn = psycopg.Connection[Any]


def rows(conn: Conn, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    return conn.execute(query, params).fetchall()


# --- the checks: each returns what is wrong --------------------------------------------------------


def missing_tables(conn: Conn) -> list[str]:
    names = (*SEED_TABLES, *MIGRATION_TABLES)
    found = rows(conn, "select c.relname from pg_class c where c.relnamespace = 'public'::regnamespace "
                 "and c.relkind in ('r', 'p') and c.relname = any(%s)", (list(names),))
    return sorted(set(names) - {r[0] for r in found})


def wrong_indexes(conn: Conn) -> list[str]:
    problems = []
    for name, (table, columns) in SEED_INDEXES.items():
        found = rows(conn, "select i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid) from pg_index i "
                     "where i.indexrelid = to_regclass(%s)", (f"public.{name}",))
        if not found:
            problems.append(f"{name} missing")
        elif found[0][0] not in (table, f"public.{table}") or f"({columns}" not in found[0][1]:
            problems.append(f"{name} is not on {table} ({columns}): {found[0][1]}")
    return problems


def missing_function(conn: Conn) -> list[str]:
    found = rows(conn, "select p.oid::regprocedure::text from pg_proc p where p.pronamespace = "
                 "'public'::regnamespace and p.proname = 'get_or_create_conversation' "
                 "and has_function_privilege('authenticated', p.oid, 'execute')")
    return [] if found else ["get_or_create_conversation() missing or not executable by authenticated"]


def missing_triggers(conn: Conn) -> list[str]:
    """update_updated_at_column on every public table with updated_at; the member count trigger."""
    problems = [f"{r[0]}: no BEFORE UPDATE trigger calling update_updated_at_column" for r in rows(conn, """
        select c.relname from pg_class c
          join pg_attribute a on a.attrelid = c.oid and a.attname = 'updated_at' and not a.attisdropped
         where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
           and not exists (select 1 from pg_trigger t join pg_proc p on p.oid = t.tgfoid
                            where t.tgrelid = c.oid and not t.tgisinternal and t.tgenabled <> 'D'
                              and p.proname = 'update_updated_at_column'
                              and pg_get_triggerdef(t.oid) ~ 'BEFORE UPDATE ON .* FOR EACH ROW')
         order by 1""")]
    counts = rows(conn, """
        select pg_get_triggerdef(t.oid) from pg_trigger t join pg_proc p on p.oid = t.tgfoid
         where t.tgrelid = 'public.community_members'::regclass and not t.tgisinternal and t.tgenabled <> 'D'
           and p.proname = 'update_community_member_count'""")
    if not any("AFTER INSERT OR DELETE" in r[0] and "FOR EACH ROW" in r[0] for r in counts):
        problems.append("community_members: no AFTER INSERT OR DELETE trigger calling update_community_member_count")
    return problems


def rls_not_forced(conn: Conn) -> list[str]:
    """Every public table: RLS enabled (the seed) and forced (the owner is not exempt either)."""
    return [f"{r[0]}: enabled={r[1]} forced={r[2]}" for r in rows(conn, """
        select c.relname, c.relrowsecurity, c.relforcerowsecurity from pg_class c
         where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
           and not (c.relrowsecurity and c.relforcerowsecurity) order by 1""")]


def missing_policies(conn: Conn) -> list[str]:
    found: dict[str, set[str]] = {}
    for table, cmd in rows(conn, "select tablename, cmd from pg_policies where schemaname = 'public' "
                           "and ('authenticated' = any(roles) or 'public' = any(roles))"):
        found.setdefault(table, set()).update(ALL if cmd == "ALL" else {cmd})
    return [f"{t}: no {c} policy" for t, cmds in EXPECTED_POLICIES.items()
            for c in sorted(cmds - found.get(t, set()))]


def granted_without_policy(conn: Conn) -> list[str]:
    """A command granted to an API role on an RLS table, with no policy for it: a forgotten policy."""
    return [f"{r[0]}: {r[1]} granted to {r[2]} without a policy" for r in rows(conn, """
        select c.relname, g.cmd, g.api_role from pg_class c
         cross join (select cmd, api_role from unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE']) cmd,
                                               unnest(array['anon', 'authenticated']) api_role) g
         where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p') and c.relrowsecurity
           and (has_table_privilege(g.api_role, c.oid, g.cmd)
                or (g.cmd <> 'DELETE' and has_any_column_privilege(g.api_role, c.oid, g.cmd)))
           and not exists (select 1 from pg_policies p
                            where p.schemaname = 'public' and p.tablename = c.relname
                              and p.cmd in (g.cmd, 'ALL') and (g.api_role = any(p.roles) or 'public' = any(p.roles)))
         order by 1, 2, 3""")]


def not_in_realtime_publication(conn: Conn) -> list[str]:
    found = {r[0] for r in rows(conn, "select tablename from pg_publication_tables "
                                "where pubname = 'supabase_realtime' and schemaname = 'public'")}
    return sorted(REALTIME_TABLES - found)


def unindexed_foreign_keys(conn: Conn) -> list[str]:
    """Every foreign key's columns lead some index (any order), so cascades and joins do not scan."""
    return [f"{r[0]}.{r[1]} ({r[2]})" for r in rows(conn, """
        select c.conrelid::regclass::text, c.conname,
               (select string_agg(a.attname, ', ') from pg_attribute a
                 where a.attrelid = c.conrelid and a.attnum = any(c.conkey))
          from pg_constraint c
         where c.contype = 'f' and c.connamespace = 'public'::regnamespace
           and not exists (
             select 1 from pg_index i
              where i.indrelid = c.conrelid
                and (select array_agg(k order by k) from unnest((i.indkey::int2[])[0:cardinality(c.conkey) - 1]) k)
                  = (select array_agg(k order by k) from unnest(c.conkey) k))
         order by 1, 2""")]


_USER_FUNCTIONS = """
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
     and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                      and d.deptype = 'e')"""


def definer_search_path_mutable(conn: Conn) -> list[str]:
    return [r[0] for r in rows(conn, f"""
        select p.oid::regprocedure::text {_USER_FUNCTIONS} and p.prosecdef
           and not exists (select 1 from unnest(coalesce(p.proconfig, '{{}}')) s where s like 'search_path=%')
         order by 1""")]


def definer_executable_by_anon(conn: Conn) -> list[str]:
    return [r[0] for r in rows(conn, f"""
        select p.oid::regprocedure::text {_USER_FUNCTIONS} and p.prosecdef
           and has_function_privilege('anon', p.oid, 'execute') order by 1""")]


def unwrapped_auth_calls(conn: Conn) -> list[str]:
    """auth.uid()/jwt()/role() and current_setting() in a policy must sit in a scalar subquery
    (`(select auth.uid())`), which PostgreSQL evaluates once per statement instead of once per row."""
    return [f"{r[0]}.{r[1]}" for r in rows(conn, r"""
        select tablename, policyname from pg_policies
         where schemaname = 'public'
           and concat_ws(' ', qual, with_check) ~ '(?<!SELECT )(\mauth\.(uid|jwt|role)\(\)|\mcurrent_setting\()'
         order by 1, 2""")]


CHECKS: list[Callable[[Conn], list[str]]] = [
    missing_tables, wrong_indexes, missing_function, missing_triggers, rls_not_forced, missing_policies,
    granted_without_policy, not_in_realtime_publication, unindexed_foreign_keys, definer_search_path_mutable,
    definer_executable_by_anon, unwrapped_auth_calls,
]


# --- on the migrated database ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog(database_url: str) -> Iterator[Conn]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_schema_holds(catalog: Conn, check: Callable[[Conn], list[str]]) -> None:
    problems = check(catalog)
    assert not problems, f"{check.__name__}: " + "; ".join(problems)


def test_seed_rls_query_literally(catalog: Conn) -> None:
    """Seed 002, step 3.1.4: `SELECT relrowsecurity FROM pg_class WHERE relname = 'messages';`"""
    assert rows(catalog, "SELECT relrowsecurity FROM pg_class WHERE relname = 'messages'") == [(True,)]
    for table in SEED_TABLES:
        assert rows(catalog, "select relrowsecurity from pg_class where oid = to_regclass(%s)",
                    (f"public.{table}",)) == [(True,)], table


def test_triggers_actually_fire(catalog: Conn) -> None:
    """The triggers exist *and* do their job (in rolled-back transactions, as the owner)."""
    with catalog.transaction(force_rollback=True):
        owner, joiner = (rows(catalog, "insert into public.profiles (id) values (gen_random_uuid()) returning id")[0][0]
                         for _ in range(2))
        comm = rows(catalog, "insert into public.communities (name, created_by) values ('t', %s) returning id",
                    (owner,))[0][0]
        catalog.execute("insert into public.community_members (community_id, user_id) values (%s, %s)",
                        (comm, joiner))
        count = rows(catalog, "select member_count, (select count(*) from public.community_members m "
                     "where m.community_id = c.id) from public.communities c where c.id = %s", (comm,))
        assert count[0][0] == count[0][1] >= 1
        catalog.execute("delete from public.community_members where community_id = %s and user_id = %s",
                        (comm, joiner))
        assert rows(catalog, "select member_count from public.communities where id = %s",
                    (comm,)) == [(count[0][0] - 1,)]
        # updated_at: set far in the past, then any update brings it to now()
        catalog.execute("update public.communities set updated_at = '2000-01-01' where id = %s", (comm,))
        assert rows(catalog, "select updated_at > '2000-01-02' from public.communities where id = %s",
                    (comm,)) == [(True,)]


# --- every check can fail ---------------------------------------------------------------------------


BREAKAGE = [
    "drop index public.idx_messages_conversation_created",
    "drop trigger update_community_member_count on public.community_members",
    "drop trigger update_conversations_updated_at on public.conversations",
    "alter table public.audit_log no force row level security",
    "alter table public.messages disable row level security",
    "drop policy messages_delete on public.messages",
    "grant delete on public.broadcasts to authenticated",
    "alter publication supabase_realtime drop table public.conversations",
    "drop index public.idx_broadcasts_sender",
    "create function public.leaky() returns integer language sql security definer as 'select 1'",
    "grant execute on function public.leaky() to anon",
    "create policy unwrapped on public.broadcasts for select to authenticated using (sender_id = auth.uid())",
    "drop function public.get_or_create_conversation(uuid)",
]


BROKEN: dict[str, set[str]] = {  # check -> what it must newly report once BREAKAGE is applied
    "missing_tables": {"community_messages"},
    "wrong_indexes": {"idx_messages_conversation_created missing"},
    "missing_function": {"get_or_create_conversation() missing or not executable by authenticated"},
    "missing_triggers": {
        "conversations: no BEFORE UPDATE trigger calling update_updated_at_column",
        "community_members: no AFTER INSERT OR DELETE trigger calling update_community_member_count"},
    "rls_not_forced": {"audit_log: enabled=True forced=False", "messages: enabled=False forced=True"},
    "missing_policies": {"messages: no DELETE policy"},
    "granted_without_policy": {"broadcasts: DELETE granted to authenticated without a policy"},
    "not_in_realtime_publication": {"conversations"},
    "unindexed_foreign_keys": {"broadcasts.broadcasts_sender_id_fkey (sender_id)"},
    "definer_search_path_mutable": {"leaky()"},
    "definer_executable_by_anon": {"leaky()"},
    "unwrapped_auth_calls": {"broadcasts.unwrapped"},
}


def test_every_check_fails_on_a_schema_broken_that_way(new_database: Callable[[], str]) -> None:
    assert set(BROKEN) == {c.__name__ for c in CHECKS}
    with psycopg.connect(new_database(), autocommit=True) as conn:
        # compared with the scratch copy's own baseline, so a finding on the clean schema does not mask this
        baseline = {check.__name__: set(check(conn)) for check in CHECKS}
        for statement in BREAKAGE:
            conn.execute(statement)
        found = {check.__name__: set(check(conn)) - baseline[check.__name__] for check in CHECKS}
        # last, as its cascade takes policies and the seed index with it
        conn.execute("drop table public.community_messages cascade")
        found["missing_tables"] = set(missing_tables(conn)) - baseline["missing_tables"]
    assert found == BROKEN
