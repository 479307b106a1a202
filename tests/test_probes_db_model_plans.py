"""db.query_plan's unread counts and search on the model of a schema msgops did not design (a corpus schema),
and the seed indexes for them judged by those plans: served by an index, or a finding that names the table
and the plan node; a table or column the model lacks is not applicable, with the reason."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from msgops.probes import Skip
from tests.test_corpus import apply
from tests.test_probes_db import assert_fails_naming, check, sql

NewDatabase = Callable[..., str]
SEED_INDEXES = ["idx_messages_search", "idx_messages_conversation_created", "idx_conversation_members_user"]


@pytest.fixture(scope="module")
def team_channels(new_database: NewDatabase) -> str:
    """Channels, channel members with last_read_at, team messages: indexed for unread counts, not for search."""
    return apply(new_database, "team_channels")


async def test_unread_counts_from_the_read_position(team_channels: str) -> None:
    outcome = await check(team_channels, "db.query_plan", query="unread_counts")
    assert outcome.status == "pass", outcome.message
    assert "idx_team_channel_members_user" in outcome.message
    assert '"last_read_at"' in outcome.evidence["sql"] and "public.team_messages" in outcome.evidence["sql"]


async def test_search_without_a_text_index_is_a_finding(team_channels: str) -> None:
    outcome = await check(team_channels, "db.query_plan", query="search")
    assert_fails_naming(outcome, "Seq Scan on public.team_messages", "gin_trgm_ops")
    assert "ilike" in outcome.evidence["sql"]


async def test_seed_indexes_by_meaning(team_channels: str) -> None:
    outcome = await check(team_channels, "db.indexes_exist", indexes=SEED_INDEXES)
    assert_fails_naming(outcome, "public.idx_messages_search", "no index serves search",
                        "Seq Scan on public.team_messages")
    assert "idx_conversation_members_user" not in outcome.message
    assert outcome.evidence["by_meaning"]["public.idx_conversation_members_user"].startswith(
        "idx_team_channel_members_user")


async def test_dropping_the_unread_index_fails_naming_the_table_and_the_node(new_database: NewDatabase) -> None:
    url = apply(new_database, "team_channels")
    sql(url, "drop index public.idx_team_channel_members_user")
    # the unique (channel_id, user_id) index is left: read without its leading column, it is a whole-index scan
    assert_fails_naming(await check(url, "db.query_plan", query="unread_counts"),
                        "on public.team_channel_members reads the whole index", "leaves channel_id free")
    # with no index on the table at all, the plan node is a Seq Scan
    sql(url, "alter table public.team_channel_members drop constraint team_channel_members_channel_id_user_id_key",
        "alter table public.team_channel_members drop constraint team_channel_members_pkey",
        "drop index public.idx_team_channel_members_channel")
    assert_fails_naming(await check(url, "db.query_plan", query="unread_counts"),
                        "Seq Scan on public.team_channel_members")
    assert_fails_naming(await check(url, "db.indexes_exist", indexes=SEED_INDEXES),
                        "public.idx_conversation_members_user", "Seq Scan on public.team_channel_members")


@pytest.mark.parametrize("index", [
    "create extension if not exists pg_trgm; "
    "create index team_messages_trgm on public.team_messages using gin (content gin_trgm_ops)",
    "create index team_messages_fts on public.team_messages using gin (to_tsvector('english', content))",
    "alter table public.team_messages add column search tsvector "
    "generated always as (to_tsvector('english', content)) stored; "
    "create index team_messages_search on public.team_messages using gin (search)",
], ids=["trigram", "fulltext-expression", "tsvector-column"])
async def test_a_text_index_serves_search(new_database: NewDatabase, index: str) -> None:
    url = apply(new_database, "team_channels")
    sql(url, index)
    outcome = await check(url, "db.query_plan", query="search")
    assert outcome.status == "pass", outcome.message
    assert "team_messages_" in outcome.message
    assert (await check(url, "db.indexes_exist", indexes=SEED_INDEXES)).status == "pass"


async def test_a_read_flag_by_receiver_needs_an_index_on_the_receiver(new_database: NewDatabase) -> None:
    url = apply(new_database, "marketplace_buyer_seller")
    outcome = await check(url, "db.query_plan", query="unread_counts")
    assert_fails_naming(outcome, "Seq Scan on public.messages", "(receiver_id)")
    assert '"is_read"' in outcome.evidence["sql"]
    sql(url, "create index messages_unread on public.messages (receiver_id) where not is_read")
    assert (await check(url, "db.query_plan", query="unread_counts")).status == "pass"


async def test_no_read_state_is_not_applicable(new_database: NewDatabase) -> None:
    url = apply(new_database, "channels_memberships")
    with pytest.raises(Skip, match=r"not applicable: public\.memberships has no read position"):
        await check(url, "db.query_plan", query="unread_counts")


async def test_dropping_the_unread_index_on_the_reference(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "drop index public.idx_conversation_members_user")
    assert_fails_naming(await check(url, "db.query_plan", query="unread_counts"),
                        "Seq Scan on public.conversation_members")
    assert_fails_naming(await check(url, "db.indexes_exist", indexes=SEED_INDEXES),
                        "public.idx_conversation_members_user")
