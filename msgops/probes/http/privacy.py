"""http.no_email_leak: no GET endpoint shows one user's email address to another."""

from __future__ import annotations

import asyncio
import uuid
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
    exchange,
    fill_path,
    group,
    json_of,
    openapi,
    operation,
    operations,
    optional,
    send,
    target_of,
    users,
    walk_strings,
)
from msgops.results import Outcome, failed, passed

_EMAIL_KEYS = {"email", "email_address", "user_email", "mail"}
_MAPPED_READS = ("list_conversations", "get_conversation", "list_messages", "get_message", "search")


@dataclass
class _World:
    users: list[ProbeUser]  # two attendees sharing everything, a moderator, an organizer
    emails: dict[str, str]  # user id -> the email in their token
    values: dict[str, str]  # path parameter -> an id the readers can see


async def _world(ctx: Context) -> _World:
    """Users whose tokens carry an email, sharing a group and a direct conversation, a community with
    messages, a report and a broadcast: every place a member's identity is shown, as far as the target's
    API has these operations (a group with a message is the least)."""
    staffed = await apimap.lookup(ctx, "list_reports") is not None
    everyone = await users(ctx, "attendee", "attendee", *(("moderator", "organizer") if staffed else ()))
    a, b = everyone[:2]
    conv = await group(ctx, a, title="msgops email leak group", members=(b,))
    message = await send(ctx, b, conv, "msgops email leak probe")
    values = {"conversation_id": conv, "message_id": str(message["id"]), "user_id": str(b.id), "id": conv}
    made = await optional(ctx, a, "create_direct", user_id=str(b.id))
    if made is not None and made.ok:
        values["conversation_id"] = values["id"] = str(made["id"])
        message = await send(ctx, b, values["conversation_id"], "msgops email leak probe")
        values["message_id"] = str(message["id"])
    comm = await optional(ctx, a, "create_community", name=f"msgops probe {uuid.uuid4().hex[:8]}",
                          description="created by msgops probes", is_private=False)
    if comm is not None and comm.ok:
        cid = values["community_id"] = str(comm["id"])
        await operation(ctx, b, "join_community", "join a community", community_id=cid)
        await operation(ctx, b, "send_community_message", "post in a community", community_id=cid,
                        content="msgops email leak probe")
    # Reports and broadcasts widen what is read back; a target without them is still checked.
    await optional(ctx, a, "report", conversation_id=values["conversation_id"], message_id=values["message_id"],
                   reason="msgops email leak probe")
    if staffed:
        await optional(ctx, everyone[3], "broadcast", audience="everyone", phase="during_show",
                       content="msgops email leak probe")
    return _World(list(everyone), {str(u.id): _email(u) for u in everyone}, values)


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
    answers = await asyncio.gather(*(read(u, op) for op in ops for u in members))
    # The API map's own reads, with the world's ids in place (OpenAPI parameter names may differ).
    values = {**world.values, "query": "msgops", "limit": 50}
    mapped = [(u, name) for name in _MAPPED_READS for u in members] + [(m, "list_reports") for m in staff]

    async def read_mapped(reader: ProbeUser, name: str) -> tuple[ProbeUser, httpx.Response] | None:
        answer = await optional(ctx, reader, name, **values)
        return None if answer is None else (reader, answer.response)

    answers += [a for a in await asyncio.gather(*(read_mapped(u, name) for u, name in mapped)) if a is not None]
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
    readers = "two members" + (" and a moderator" if staff else "")
    return passed(f"no email address in {len(answers)} responses of {len(ops)} GET endpoints ({readers} reading)",
                  **evidence)
