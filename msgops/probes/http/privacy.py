"""http.no_email_leak: no GET endpoint shows one user's email address to another."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from msgops import apimap
from msgops.probes import probe
from msgops.probes.context import Context, ProbeUser
from msgops.probes.http.common import (
    EMAIL,
    PUBLIC_PATHS,
    Operation,
    call,
    community,
    direct,
    exchange,
    fill_path,
    group,
    json_of,
    openapi,
    operations,
    require,
    send,
    target_of,
    users,
    walk_strings,
)
from msgops.results import Outcome, failed, passed

_EMAIL_KEYS = {"email", "email_address", "user_email", "mail"}


@dataclass
class _World:
    users: list[ProbeUser]  # two attendees sharing everything, a moderator, an organizer
    emails: dict[str, str]  # user id -> the email in their token
    values: dict[str, str]  # path parameter -> an id the readers can see


async def _world(ctx: Context) -> _World:
    """Users whose tokens carry an email, sharing a direct conversation, a group, a community with
    messages, a report and a broadcast: every place a member's identity is shown."""
    if apimap.of(ctx).defaults != "reference":  # a target described by its own API map: its conversations
        return await _mapped_world(ctx)
    a, b, mod, org = await users(ctx, "attendee", "attendee", "moderator", "organizer")
    conv = await direct(ctx, a, b)
    message = await send(ctx, b, conv, "msgops email leak probe")
    await group(ctx, a, title="msgops email leak group", members=(b,))
    comm = await community(ctx, a)
    require(await call(ctx, b, "POST", f"/communities/{comm['id']}/join"), 200, 201, what="join a community")
    require(await call(ctx, b, "POST", f"/communities/{comm['id']}/messages",
                       json={"content": "msgops email leak probe"}), 201, what="post in a community")
    # Reports and broadcasts widen what is read back; a target without them is still checked.
    await call(ctx, a, "POST", f"/messages/{message['id']}/report", json={"reason": "msgops email leak probe"})
    await call(ctx, org, "POST", "/broadcasts",
               json={"audience": "everyone", "phase": "during_show", "content": "msgops email leak probe"})
    everyone = [a, b, mod, org]
    return _World(everyone, {str(u.id): _email(u) for u in everyone},
                  {"conversation_id": conv, "message_id": str(message["id"]), "community_id": str(comm["id"]),
                   "user_id": str(b.id), "id": conv})


async def _mapped_world(ctx: Context) -> _World:
    """Two members of a group with a message: what the API map's operations can arrange."""
    a, b = await users(ctx, "attendee", "attendee")
    conv = await group(ctx, a, title="msgops email leak group", members=(b,))
    message = await send(ctx, b, conv, "msgops email leak probe")
    return _World([a, b], {str(u.id): _email(u) for u in (a, b)},
                  {"conversation_id": conv, "message_id": str(message["id"]), "user_id": str(b.id), "id": conv})


def _email(user: ProbeUser) -> str:
    """The address the identity provider knows the user by (the token's email claim when not given)."""
    if user.email:
        return user.email
    claims = jwt.decode(user.token, options={"verify_signature": False})
    return str(claims.get("email", ""))


def _findings(r: httpx.Response, reader: ProbeUser, world: _World) -> list[dict[str, str]]:
    own = world.emails[str(reader.id)].lower()
    others = {e.lower() for uid, e in world.emails.items() if uid != str(reader.id) and e}
    body = json_of(r)
    strings = list(walk_strings(body)) if body is not None else [("(body)", r.text)]
    found = []
    for path, value in strings:
        matches = [m for m in EMAIL.findall(value) if m.lower() != own]  # one's own address is one's own
        for match in matches:
            kind = "another probe user's email" if match.lower() in others else "an email address"
            found.append({"url": target_of(r), "path": path, "kind": kind, "reader": str(reader.id)})
        # An email field is a leak even when its value is masked beyond the pattern ("j***@…").
        if not matches and path.rsplit(".", 1)[-1] in _EMAIL_KEYS and value.strip() and value.lower() != own:
            found.append({"url": target_of(r), "path": path, "kind": "an email field", "reader": str(reader.id)})
    return found


def _readable(op: Operation) -> bool:
    return op.method == "GET" and op.path not in PUBLIC_PATHS and not op.path.startswith("/admin")


@probe("http.no_email_leak",
       what="As probe users whose tokens carry an email, GET every documented endpoint over a world of "
            "shared conversations, communities, reports and broadcasts, and scan every JSON string for an "
            "email address (a user's own address on their own profile is allowed).",
       why="Emails are personal data and the key to phishing and account takeover; a member list that "
           "includes them leaks every user to every other.",
       example="GET /conversations/{conversation_id} returns members[].email.",
       fix="Return display names and ids only: response models without email fields; keep emails in a "
           "table no API role can select.")
async def no_email_leak(ctx: Context) -> Outcome:
    return await _no_email_leak(ctx)


async def _no_email_leak(ctx: Context) -> Outcome:
    doc = await openapi(ctx)
    world = await _world(ctx)
    ops = [op for op in operations(doc) if _readable(op)]
    gate = asyncio.Semaphore(16)

    async def read(reader: ProbeUser, op: Operation) -> tuple[ProbeUser, httpx.Response]:
        params = {p["name"]: "msgops" for p in op.query_params()}
        async with gate:
            return reader, await call(ctx, reader, "GET", fill_path(op.path, world.values), params=params)

    # The two members read everything; the moderator reads what only moderators can (the queue).
    members, staff = world.users[:2], world.users[2:3]
    pairs = [(u, op) for op in ops for u in members]
    pairs += [(m, op) for op in ops for m in staff if "/moderation" in op.path]
    answers = await asyncio.gather(*(read(u, op) for u, op in pairs))
    # The API map's own reads, with the world's ids in place (OpenAPI parameter names may differ).
    values = {**world.values, "query": "msgops", "limit": 50}
    mapped = [path for name in ("list_messages", "search") if (path := await apimap.get_path(ctx, name, values))]

    async def read_path(reader: ProbeUser, path: str) -> tuple[ProbeUser, httpx.Response]:
        return reader, await call(ctx, reader, "GET", path)

    answers += await asyncio.gather(*(read_path(u, path) for path in mapped for u in members))
    findings = [f for reader, r in answers for f in _findings(r, reader, world)]
    evidence: dict[str, Any] = {
        "endpoints": [op.label for op in ops], "readers": len(members) + len(staff), "requests": len(answers),
        "answered_200": sorted({target_of(r) for _, r in answers if r.status_code == 200})[:40],
    }
    if findings:
        leaks = sorted({f"{f['url']} {f['path']}" for f in findings})
        first = next(r for _, r in answers if target_of(r) == findings[0]["url"])
        return failed(f"email addresses in {len(leaks)} place(s): {', '.join(leaks[:5])}", findings=findings[:20],
                      example=exchange(first, body=300), **evidence)
    return passed(f"no email address in {len(answers)} responses of {len(ops)} GET endpoints "
                  "(two members and a moderator reading)", **evidence)
