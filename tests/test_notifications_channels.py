"""http.notifications in channels (communities): the checks pass on the reference service and fail on one
broken in exactly the checked way."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from tests.support import RunningService, start_service
from tests.test_probes_features import run


@pytest.fixture(scope="module")
def svc(new_database: Callable[..., str]) -> Iterator[RunningService]:
    running = start_service(new_database(), rate_limits={})
    yield running
    running.stop()

# Mentions in community messages also notify whoever has the name, member or not.
BROKEN_MENTIONS = """
create function public.broken_channel_mentions() returns trigger language plpgsql security definer
set search_path = '' as $$ begin
  insert into public.notifications (user_id, kind, community_id, community_message_id, seq, actor_id)
  select p.id, 'mention', new.community_id, new.id, new.seq, new.sender_id from public.profiles p
   where p.display_name <> '' and new.content like '%@' || p.display_name || '%' and p.id <> new.sender_id
     and not exists (select 1 from public.community_members m
                      where m.community_id = new.community_id and m.user_id = p.id);
  return null;
end $$;
create trigger broken_channel_mentions after insert on public.community_messages
  for each row execute function public.broken_channel_mentions();
"""
# Channel settings lose their mute, or their level.
BROKEN_MUTE = """
create function public.forget_channel_mute() returns trigger language plpgsql as $$
begin new.muted_until := null; return new; end $$;
create trigger forget_channel_mute before insert or update on public.community_notification_settings
  for each row execute function public.forget_channel_mute();
"""
BROKEN_LEVEL = """
create function public.forget_channel_level() returns trigger language plpgsql as $$
begin new.level := 'all'; return new; end $$;
create trigger forget_channel_level before insert or update on public.community_notification_settings
  for each row execute function public.forget_channel_level();
"""
# Nobody hears a channel's messages unless mentioned.
BROKEN_FOLLOW = BROKEN_LEVEL.replace("'all'", "'mentions'").replace("forget_channel_level", "never_follow")


@pytest.mark.parametrize("check", ["channel_notifications", "channel_preferences"])
async def test_channel_checks_pass_on_the_reference(svc: RunningService, check: str) -> None:
    outcome = await run(svc, "http.notifications", check=check)
    assert outcome.status == "pass", outcome


@pytest.mark.parametrize(("check", "sql", "named"), [
    ("channel_notifications", BROKEN_MENTIONS, "who is not a member of channel"),
    ("channel_notifications", BROKEN_FOLLOW, "following channel"),
    ("channel_preferences", BROKEN_MUTE, "muted channel"),
    ("channel_preferences", BROKEN_LEVEL, "yet the plain message"),
], ids=["mention-of-non-member", "follow-ignored", "mute-ignored", "level-ignored"])
async def test_channel_checks_fail_on_a_broken_service(svc: RunningService, check: str, sql: str,
                                                       named: str) -> None:
    function = re.findall(r"create function (public\.\w+)", sql)[0]
    svc.sql(sql)
    try:
        outcome = await run(svc, "http.notifications", check=check)
    finally:
        svc.sql(f"drop function {function}() cascade")  # the service is whole again for the next test
    assert outcome.status == "fail" and named in outcome.message, outcome
    assert outcome.evidence["channel"] in outcome.message
