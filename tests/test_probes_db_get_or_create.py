"""db.get_or_create_room on the reference schema and on copies of it broken in exactly one way: a function
that creates a room per call, one that lets an outsider open a room between two other users, one that
always errors; and on schemas whose get-or-create has another name, or that have none."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from msgops.probes import Skip
from tests.test_probes_db import assert_fails_naming, check, sql

NewDatabase = Callable[..., str]
KIND = "db.get_or_create_room"

# the reference's function without its lookup: a new direct conversation on every call
CREATES_EACH_CALL = """
create or replace function public.get_or_create_conversation(other_user uuid) returns uuid
language plpgsql security definer set search_path = '' as $$
declare conv uuid;
begin
  if auth.uid() is null then raise exception 'not authenticated' using errcode = '42501'; end if;
  insert into public.conversations (kind, created_by) values ('group', auth.uid()) returning id into conv;
  insert into public.conversation_members (conversation_id, user_id, role)
  values (conv, auth.uid(), 'owner'), (conv, other_user, 'member');
  return conv;
end $$;
"""
# both participants are arguments and nothing checks that the caller is one of them
OPENS_FOR_OTHERS = """
drop function public.get_or_create_conversation(uuid);
create function public.get_or_create_conversation(user_a uuid, user_b uuid) returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  key text := least(user_a::text, user_b::text) || ':' || greatest(user_a::text, user_b::text);
  conv uuid;
begin
  if auth.uid() is null then raise exception 'not authenticated' using errcode = '42501'; end if;
  select id into conv from public.conversations where direct_key = key;
  if conv is null then
    insert into public.conversations (kind, created_by, direct_key) values ('direct', user_a, key)
    returning id into conv;
    insert into public.conversation_members (conversation_id, user_id, role)
    values (conv, user_a, 'owner'), (conv, user_b, 'member');
  end if;
  return conv;
end $$;
grant execute on function public.get_or_create_conversation(uuid, uuid) to authenticated;
"""
ALWAYS_ERRORS = """
create or replace function public.get_or_create_conversation(other_user uuid) returns uuid
language plpgsql security definer set search_path = '' as $$
begin
  return (select id from public.conversation where direct_key = other_user::text);
end $$;
"""


async def test_passes_on_the_reference(database_url: str) -> None:
    outcome = await check(database_url, KIND, function="get_or_create_conversation")
    assert outcome.status == "pass", outcome.message
    calls = outcome.evidence["calls"]
    assert [c["persona"] for c in calls] == ["member", "member", "outsider", "anon"]
    assert calls[0]["room"] == calls[1]["room"] and calls[0]["room_table"] == "public.conversations"
    assert calls[3]["sqlstate"] == "42501"
    assert outcome.evidence["found_by"] == "name"


@pytest.mark.parametrize(("breaks", "names"), [
    (CREATES_EACH_CALL, ["creates a room each call"]),
    (OPENS_FOR_OTHERS, ["get_or_create_conversation(user_a uuid, user_b uuid)",
                        "returned the member's room (public.conversations"]),
    (ALWAYS_ERRORS, ["errors for a member [42P01]", "public.conversation"]),
], ids=["creates-each-call", "opens-for-others", "always-errors"])
async def test_fails_on_a_broken_function(new_database: NewDatabase, breaks: str, names: list[str]) -> None:
    url = new_database()
    sql(url, breaks)
    assert_fails_naming(await check(url, KIND, function="get_or_create_conversation"), *names)


async def test_an_outsider_creating_a_room_for_two_others_fails(new_database: NewDatabase) -> None:
    url = new_database()
    # no existing room between them: the outsider's call creates one rather than returning the member's
    sql(url, OPENS_FOR_OTHERS.replace("select id into conv from public.conversations where direct_key = key;",
                                      "select id into conv from public.conversations where direct_key = key "
                                      "and created_by = auth.uid();").replace(
        "values ('direct', user_a, key)", "values ('direct', auth.uid(), key || ':' || auth.uid())"))
    assert_fails_naming(await check(url, KIND, function="get_or_create_conversation"),
                        "created a room between two other users for an outsider")


async def test_found_by_meaning_under_another_name(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "alter function public.get_or_create_conversation(uuid) rename to open_direct_chat")
    outcome = await check(url, KIND, function="get_or_create_conversation")
    assert outcome.status == "pass", outcome.message
    assert outcome.evidence["function"] == "public.open_direct_chat(other_user uuid)"
    assert outcome.evidence["found_by"] == "meaning"


async def test_missing_on_the_seed_schema_fails(new_database: NewDatabase) -> None:
    url = new_database()
    sql(url, "drop function public.get_or_create_conversation(uuid)")
    assert_fails_naming(await check(url, KIND, function="get_or_create_conversation"),
                        "missing: get_or_create_conversation()")


async def test_no_such_function_elsewhere_is_not_applicable(new_database: NewDatabase) -> None:
    from tests.test_probes_db_foreign import chat_database

    url = chat_database(new_database)
    with pytest.raises(Skip, match=r"not applicable: no exposed function is a get-or-create of public\.rooms"):
        await check(url, KIND, function="get_or_create_conversation")


# a marketplace (participants as buyer_id/seller_id columns of the room) with a get-or-create of its own name,
# returning the room's row
START_CONVERSATION = """
create function public.start_conversation(seller uuid) returns public.conversations
language plpgsql security definer set search_path = '' as $$
declare c public.conversations;
begin
  if auth.uid() is null then raise exception 'not authenticated' using errcode = '42501'; end if;
  select * into c from public.conversations where buyer_id = auth.uid() and seller_id = seller;
  if not found then
    insert into public.conversations (buyer_id, seller_id) values (auth.uid(), SELLER) returning * into c;
  end if;
  return c;
end $$;
revoke execute on function public.start_conversation(uuid) from public, anon;
grant execute on function public.start_conversation(uuid) to authenticated;
"""


@pytest.mark.parametrize(("seller", "problem"), [("seller", None), ("auth.uid()", "does not have other in it")],
                         ids=["both-in-the-room", "the-other-left-out"])
async def test_found_by_its_row_type_and_judged_on_participant_columns(new_database: NewDatabase, seller: str,
                                                                        problem: str | None) -> None:
    from tests.test_corpus import apply

    url = apply(new_database, "marketplace_buyer_seller")
    sql(url, START_CONVERSATION.replace("SELLER", seller))
    outcome = await check(url, KIND, function="get_or_create_conversation")
    assert outcome.evidence["function"] == "public.start_conversation(seller uuid)"
    if problem is None:
        assert outcome.status == "pass", outcome.message
        assert outcome.evidence["calls"][0]["members"] == ["member", "other"]
    else:
        assert_fails_naming(outcome, problem, "public.conversations")
