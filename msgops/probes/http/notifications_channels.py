"""http.notifications in channels (communities): who a channel's message notifies, and the per-channel
preferences. The channel is made for the run through the API map (create_community, join_community,
send_community_message, set_community_notifications); a target whose map lacks them is skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from msgops.probes.context import Context, ProbeUser
from msgops.probes.http.common import operation
from msgops.probes.http.notifications import SETTLE_S, WAIT_S, about, named
from msgops.results import Outcome, failed, passed


async def _channel(ctx: Context, owner: ProbeUser, *members: ProbeUser) -> str:
    made = await operation(ctx, owner, "create_community", "create a channel",
                           name=f"msgops notification probe {uuid4().hex[:8]}")
    cid = str(made["id"])
    for member in members:
        await operation(ctx, member, "join_community", "join the channel", community_id=cid)
    return cid


async def _set(ctx: Context, user: ProbeUser, cid: str, level: str, muted_until: str | None = None) -> None:
    await operation(ctx, user, "set_community_notifications", "set a channel's notification level",
                    community_id=cid, level=level, muted_until=muted_until)


async def _post(ctx: Context, user: ProbeUser, cid: str, content: str) -> str:
    return str((await operation(ctx, user, "send_community_message", "post in the channel", community_id=cid,
                                content=content))["id"])


async def channel_notifications(ctx: Context) -> Outcome:
    """A new message notifies the members who follow the channel and the members it mentions; a mention
    of someone outside the channel notifies no one."""
    (author, _), (follower, _), (member, member_name), (outsider, outsider_name) = await named(ctx, 4)
    cid = await _channel(ctx, author, follower, member)
    await _set(ctx, follower, cid, "all")
    mid = await _post(ctx, author, cid, f"news for @{member_name} and @{outsider_name}")
    mentioned = await about(ctx, member, mid, WAIT_S)
    followed = await about(ctx, follower, mid, WAIT_S)
    leaked = await about(ctx, outsider, mid, SETTLE_S)
    evidence: dict[str, Any] = {"channel": cid, "message_id": mid, "mentioned_member": mentioned,
                                "follower": followed, "mentioned_outsider": leaked}
    if leaked:
        return failed(f"a mention of {outsider_name}, who is not a member of channel {cid}, notified them about "
                      f"message {mid}", **evidence)
    if not mentioned:
        return failed(f"the mentioned member {member_name} of channel {cid} got no notification for message {mid}",
                      **evidence)
    if not followed:
        return failed(f"a member following channel {cid} (level all) got no notification for new message {mid}",
                      **evidence)
    return passed("a channel message notified its follower and the mentioned member, not the mentioned "
                  "non-member", **evidence)


async def channel_preferences(ctx: Context) -> Outcome:
    """A muted channel notifies no one, not even of a mention; "mentions only" notifies of mentions and
    of nothing else."""
    (author, _), (muted, muted_name), (picky, picky_name) = await named(ctx, 3)
    cid = await _channel(ctx, author, muted, picky)
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await _set(ctx, muted, cid, "all", until)
    await _set(ctx, picky, cid, "mentions")
    plain = await _post(ctx, author, cid, f"plain news {uuid4().hex[:6]}")
    mention = await _post(ctx, author, cid, f"@{muted_name} @{picky_name} have a look")
    heard = await about(ctx, picky, mention, WAIT_S)
    plain_heard = await about(ctx, picky, plain, SETTLE_S)
    muted_heard = await about(ctx, muted, mention, 0) + await about(ctx, muted, plain, 0)
    evidence: dict[str, Any] = {"channel": cid, "plain_message": plain, "mention_message": mention,
                                "muted_member": muted_heard, "mentions_only_member_mention": heard,
                                "mentions_only_member_plain": plain_heard}
    if muted_heard:
        return failed(f"{muted_name} muted channel {cid} until {until}, yet its messages notified them", **evidence)
    if plain_heard:
        return failed(f"{picky_name} chose mentions only in channel {cid}, yet the plain message {plain} notified "
                      "them", **evidence)
    if not heard:
        return failed(f"{picky_name} chose mentions only in channel {cid} and got no notification for the mention "
                      f"in message {mention}", **evidence)
    return passed("a muted channel notified no one; mentions only notified of the mention and not of the plain "
                  "message", **evidence)
