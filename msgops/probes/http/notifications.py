"""http.notifications: mentions, notifications and their preferences, observed from outside.

The feed, the per-room setting and display names are operations of the target's API map
(list_notifications, set_room_notifications, set_display_name); a target whose map lacks them is
skipped. A notification is about a message when it names the message's id anywhere in it. Each check
runs as fresh probe users with names of their own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from msgops.probes import probe
from msgops.probes.context import Context, ProbeUser
from msgops.probes.http.capabilities import feature
from msgops.probes.http.common import group, operation, send, users, walk_strings
from msgops.results import Outcome, failed, passed

NotificationCheck = Literal["mention_members_only", "muted_room_silent", "channel_notifications",
                            "channel_preferences", "offline_push"]
SETTLE_S = 1.5  # how long a notification that should not come is waited for
WAIT_S = 5.0  # how long a notification that should come is waited for


async def named(ctx: Context, count: int) -> list[tuple[ProbeUser, str]]:
    """Probe users with display names nobody else has (mentions resolve names)."""
    made = await users(ctx, *(["attendee"] * count))
    out = []
    for user in made:
        name = f"msgops{uuid.uuid4().hex[:10]}"
        await operation(ctx, user, "set_display_name", "give a probe user a display name", display_name=name)
        out.append((user, name))
    return out


async def _feed(ctx: Context, user: ProbeUser) -> list[dict[str, Any]]:
    fields = await operation(ctx, user, "list_notifications", "read the notification feed")
    items = fields.get("items", fields["body"])
    return [i for i in items or [] if isinstance(i, dict)] if isinstance(items, list) else []


def _names(item: dict[str, Any], message_id: str) -> bool:
    return any(text == message_id for _, text in walk_strings(item))


async def about(ctx: Context, user: ProbeUser, message_id: str, wait_s: float) -> list[dict[str, Any]]:
    """The user's notifications about `message_id`, waiting up to `wait_s` for one to appear."""
    deadline = time.monotonic() + wait_s
    while True:
        found = [n for n in await _feed(ctx, user) if _names(n, message_id)]
        if found or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(0.2)


async def mention_members_only(ctx: Context) -> Outcome:
    (author, _), (member, member_name), (outsider, outsider_name) = await named(ctx, 3)
    conv = await group(ctx, author, title="msgops mention probe", members=(member,))
    message = await send(ctx, author, conv, f"hello @{member_name} and @{outsider_name}")
    mid = str(message["id"])
    theirs = await about(ctx, member, mid, WAIT_S)
    leaked = await about(ctx, outsider, mid, SETTLE_S)
    evidence = {"message_id": mid, "member_notifications": theirs, "outsider_notifications": leaked}
    if leaked:
        return failed(f"a mention of {outsider_name}, who is not in the conversation, notified them about "
                      f"message {mid}", **evidence)
    if not theirs:
        return failed(f"the mentioned member {member_name} got no notification for message {mid}", **evidence)
    return passed("the mentioned member was notified; the mentioned non-member was not", **evidence)


async def muted_room_silent(ctx: Context) -> Outcome:
    (author, _), (member, member_name) = await named(ctx, 2)
    muted = await group(ctx, author, title="msgops muted room probe", members=(member,))
    loud = await group(ctx, author, title="msgops unmuted room probe", members=(member,))
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await operation(ctx, member, "set_room_notifications", "mute a conversation", conversation_id=muted,
                    level="all", muted_until=until)
    quiet = await send(ctx, author, muted, f"@{member_name} in a muted room")
    control = await send(ctx, author, loud, f"@{member_name} in a room not muted")
    heard = await about(ctx, member, str(control["id"]), WAIT_S)
    leaked = await about(ctx, member, str(quiet["id"]), SETTLE_S)
    evidence = {"muted_conversation": muted, "muted_message": quiet["id"], "notified_in_muted": leaked,
                "control_message": control["id"], "notified_in_unmuted": heard}
    if leaked:
        return failed(f"conversation {muted} is muted until {until}, yet message {quiet['id']} notified",
                      **evidence)
    if not heard:
        return failed("no notification came for a mention in a room that is not muted either: the check "
                      "cannot tell muting from no notifications at all", **evidence)
    return passed("a mention in a muted room notified no one; the same in an unmuted room did", **evidence)


@probe("http.notifications",
       what="Sends messages as probe users and reads the recipients' notification feed (operations "
            "list_notifications, set_room_notifications, set_display_name of the API map): "
            "mention_members_only (mentioning a non-member notifies no one), muted_room_silent (a muted room "
            "does not notify), channel_notifications (a channel's message notifies its followers and the "
            "members it mentions, not mentioned non-members), channel_preferences (a muted channel is silent; "
            "'mentions only' notifies of mentions alone), offline_push (an offline member's web push arrives).",
       why="Notifications reach people outside the conversation: a mention that resolves to anyone leaks "
           "content, and a mute that does not hold is the first thing users report.",
       example="mention_members_only: '@bob' in a room bob is not in puts the message's excerpt in bob's feed.",
       fix="Resolve mentions among the room's members only, and apply each recipient's preferences (level, "
           "mute until) before writing the notification.")
async def http_notifications(ctx: Context, check: NotificationCheck) -> Outcome:
    if check == "offline_push":
        from msgops.probes.http.push import offline_push

        return await offline_push(ctx)
    await feature(ctx, "notifications", "notifications", "list_notifications")
    if check == "mention_members_only":
        return await mention_members_only(ctx)
    if check == "muted_room_silent":
        return await muted_room_silent(ctx)
    if check in ("channel_notifications", "channel_preferences"):
        from msgops.probes.http import notifications_channels as channels

        await feature(ctx, "notifications", "notifications", "set_community_notifications")
        return await (channels.channel_notifications(ctx) if check == "channel_notifications"
                      else channels.channel_preferences(ctx))
    raise ValueError(f"unknown notifications check {check!r}")


