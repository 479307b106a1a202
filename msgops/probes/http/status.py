"""http.status_codes: each listed status is reached by a purposeful request, and bad input never 500s."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from pydantic import Field

from msgops import apimap
from msgops.probes import probe
from msgops.probes.context import Context, Skip
from msgops.probes.http.common import community, exchange, group, json_of, shared, target_of, users
from msgops.results import Outcome, failed, passed

StatusCode = Annotated[int, Field(ge=100, le=599)]


@dataclass
class Attempt:
    expect: int  # the status this request is meant to produce (0: bad input, anything but 5xx)
    purpose: str
    response: httpx.Response | None  # None: not part of this API (see `missing`)
    missing: str = ""


async def _battery(ctx: Context) -> list[Attempt]:
    """The requests, observed once per run: each listed purpose and a set of hostile inputs. A request
    whose operation the target's API map lacks is left out (and named in `missing`)."""

    async def run() -> list[Attempt]:
        a, b = await users(ctx, "attendee", "attendee")
        conv = await group(ctx, a, title="msgops status codes probe")
        attempts: list[Attempt] = []

        async def go(expect: int, purpose: str, user: Any, name: str, /, **values: Any) -> httpx.Response | None:
            try:
                r = (await apimap.call(ctx, user, name, **values)).response
            except Skip as skipped:
                attempts.append(Attempt(expect, purpose, None, str(skipped)))
                return None
            attempts.append(Attempt(expect, purpose, r))
            return r

        def community_values() -> dict[str, Any]:
            return {"name": f"msgops status {uuid.uuid4().hex[:8]}", "description": "", "is_private": False}

        created = await go(201, "create a community", a, "create_community", **community_values())
        comm = str(json_of(created).get("id")) if created is not None and created.status_code == 201 else None
        if created is not None and comm is None:
            comm = str((await community(ctx, a))["id"])
        if comm is None:  # what needs a community is not part of this API either
            attempts += [Attempt(403, "a non-member posts in a community", None, attempts[-1].missing),
                         Attempt(409, "the owner leaves their community", None, attempts[-1].missing)]
        nobody = str(uuid.uuid4())
        await asyncio.gather(
            go(200, "list my conversations", a, "list_conversations"),
            go(400, "a malformed paging cursor", a, "list_conversations", cursor="not-a-cursor", needs=("cursor",)),
            go(400, "a direct conversation with oneself", a, "create_direct", user_id=str(a.id)),
            go(401, "no token", None, "list_conversations"),
            go(403, "an attendee reads the moderation queue", a, "list_reports"),
            go(403, "a user changes app roles", a, "set_role", user_id=str(a.id), role="admin"),
            go(404, "an unknown conversation", a, "get_conversation", conversation_id=nobody),
            go(404, "another user's private conversation", b, "get_conversation", conversation_id=conv),
            go(404, "an unknown message", a, "get_message", message_id=nobody, conversation_id=conv),
            go(422, "an empty message", a, "send_message", conversation_id=conv, content=""),
            go(422, "a conversation without a kind", a, "create_group", body={}),
            *([go(403, "a non-member posts in a community", b, "send_community_message", community_id=comm,
                  content="msgops status probe"),
               go(409, "the owner leaves their community", a, "leave_community", community_id=comm)]
              if comm is not None else []),
            *_hostile(go, a, conv),
        )
        # 429: more communities than the daily limit allows (3 by default; one made above).
        for _ in range(5 if comm is not None else 0):
            r = await go(429, "communities past the daily limit", a, "create_community", **community_values())
            if r is None or r.status_code != 201:
                break
        return attempts

    return await shared(ctx, "status_battery", run)


def _hostile(go: Any, user: Any, conv: str) -> list[Any]:
    """Bad input a client can send: each must get a 4xx, never a 5xx."""
    json_headers = {"Content-Type": "application/json"}
    send = {"conversation_id": conv}
    return [
        go(0, "truncated JSON", user, "send_message", raw=b'{"content": ', headers=json_headers, **send),
        go(0, "a JSON list body", user, "send_message", raw=b"[1, 2]", headers=json_headers, **send),
        go(0, "a lone UTF-16 surrogate", user, "send_message", raw=b'{"content": "\\ud800"}',
           headers=json_headers, **send),
        go(0, "a NUL character", user, "send_message", content="a\u0000b", **send),
        go(0, "a text/plain body", user, "send_message", raw=b"hello", headers={"Content-Type": "text/plain"},
           **send),
        go(0, "a 100 kB message", user, "send_message", content="x" * 100_000, **send),
        go(0, "a number for the content", user, "send_message", content=12345, **send),
        go(0, "a huge page size", user, "list_messages", limit=str(10**30), needs=("limit",), **send),
        go(0, "a negative cursor", user, "list_messages", before="-1", needs=("before",), **send),
        go(0, "a search with a NUL", user, "search", query="a\u0000", **send),
        go(0, "a 10 kB search", user, "search", query="x" * 10_000, **send),
        go(0, "a non-UUID id", user, "get_conversation", conversation_id="not-a-uuid"),
        go(0, "an encoded path traversal", user, "get_conversation", conversation_id="../../etc/passwd"),
        go(0, "a boolean that is not", user, "list_conversations", archived="maybe", needs=("archived",)),
        go(0, "an unknown field", user, "send_message", extra={"is_admin": True}, content="x", **send),
    ]


@probe("http.status_codes", waits_long=True,
       what="Each listed code is produced by a purposeful request (200 list, 201 create, 400 malformed, 401 "
            "no token, 403 forbidden action, 404 unknown or private resource, 409 conflict, 422 validation, "
            "429 rate limit); 500 is satisfied when no request of the battery, hostile inputs included, "
            "produced a 5xx.",
       why="Clients branch on status codes: retry on 429, re-authenticate on 401, show a form error on 422. "
           "A 500 for bad input means an unhandled path that a hostile client can hit at will.",
       example="A truncated JSON body or a lone surrogate in content answers 500; a private conversation "
               "answers 403 (revealing that it exists) instead of 404.",
       fix="Validate with request models, map database errors by SQLSTATE to 4xx (service/http_errors.py), "
           "and answer 404 for what the caller cannot see.")
async def status_codes(ctx: Context, codes: Annotated[list[StatusCode], Field(min_length=1)]) -> Outcome:
    everything = await _battery(ctx)
    attempts = [a for a in everything if a.response is not None]
    results: dict[str, Any] = {}
    missing: list[str] = []
    untried: dict[int, list[str]] = {}
    for code in codes:
        if code == 500:
            continue
        tried = [a for a in attempts if a.expect == code]
        if not tried:
            untried[code] = [a.missing for a in everything if a.expect == code] or ["no request of the battery"]
            continue
        hit = [a for a in tried if _status(a) == code]
        results[str(code)] = {"reached": bool(hit), "requests": [
            {"purpose": a.purpose, "request": target_of(_response(a)), "status": _status(a)} for a in tried]}
        if not hit:
            missing.append(f"{code} ({'; '.join(f'{a.purpose}: {_status(a)}' for a in tried)})")
    errors = [a for a in attempts if _status(a) >= 500]
    evidence: dict[str, Any] = {"codes": results, "requests": len(attempts),
                                "hostile_inputs": [{"purpose": a.purpose, "status": _status(a)}
                                                   for a in attempts if a.expect == 0]}
    left_out = [f"{a.purpose}: {a.missing}" for a in everything if a.response is None]
    if left_out:
        evidence["not_tried"] = left_out
    problems = []
    if missing:
        problems.append(f"not reached: {', '.join(missing)}")
    if errors:
        evidence["server_errors"] = [{"purpose": a.purpose, **exchange(_response(a), body=200)} for a in errors]
        problems.append("5xx for user input: " + ", ".join(f"{a.purpose} -> {_status(a)}" for a in errors))
    if problems:
        return failed("; ".join(problems), **evidence)
    if untried:
        code, why = next(iter(untried.items()))
        raise Skip(f"cannot reach {code}: {why[0]}")
    return passed(f"reached {', '.join(str(c) for c in codes if c != 500)}"
                  + ("; no 5xx" if 500 in codes else "") + f" across {len(attempts)} requests", **evidence)


def _response(attempt: Attempt) -> httpx.Response:
    assert attempt.response is not None
    return attempt.response


def _status(attempt: Attempt) -> int:
    return _response(attempt).status_code
