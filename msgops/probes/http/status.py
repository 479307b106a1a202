"""http.status_codes: each listed status is reached by a purposeful request, and bad input never 500s."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from pydantic import Field

from msgops.probes import probe
from msgops.probes.context import Context
from msgops.probes.http.common import call, community, exchange, group, shared, target_of, users
from msgops.results import Outcome, failed, passed

StatusCode = Annotated[int, Field(ge=100, le=599)]


@dataclass
class Attempt:
    expect: int  # the status this request is meant to produce (0: bad input, anything but 5xx)
    purpose: str
    response: httpx.Response


async def _battery(ctx: Context) -> list[Attempt]:
    """The requests, observed once per run: each listed purpose and a set of hostile inputs."""

    async def run() -> list[Attempt]:
        a, b = await users(ctx, "attendee", "attendee")
        conv = await group(ctx, a, title="msgops status codes probe")
        attempts: list[Attempt] = []

        async def go(expect: int, purpose: str, user: Any, method: str, path: str, **kw: Any) -> None:
            attempts.append(Attempt(expect, purpose, await call(ctx, user, method, path, **kw)))

        created = await call(ctx, a, "POST", "/communities",
                             json={"name": f"msgops status {uuid.uuid4().hex[:8]}", "description": "",
                                   "is_private": False})
        attempts.append(Attempt(201, "create a community", created))
        comm = created.json()["id"] if created.status_code == 201 else (await community(ctx, a))["id"]
        nobody = str(uuid.uuid4())
        await asyncio.gather(
            go(200, "list my conversations", a, "GET", "/conversations"),
            go(400, "a malformed paging cursor", a, "GET", "/conversations", params={"cursor": "not-a-cursor"}),
            go(400, "a direct conversation with oneself", a, "POST", "/conversations",
               json={"kind": "direct", "user_id": str(a.id)}),
            go(401, "no token", None, "GET", "/conversations"),
            go(403, "an attendee reads the moderation queue", a, "GET", "/moderation/reports"),
            go(403, "a user changes app roles", a, "PUT", f"/admin/users/{a.id}/role", json={"role": "admin"}),
            go(403, "a non-member posts in a community", b, "POST", f"/communities/{comm}/messages",
               json={"content": "msgops status probe"}),
            go(404, "an unknown conversation", a, "GET", f"/conversations/{nobody}"),
            go(404, "another user's private conversation", b, "GET", f"/conversations/{conv}"),
            go(404, "an unknown message", a, "GET", f"/messages/{nobody}"),
            go(409, "the owner leaves their community", a, "POST", f"/communities/{comm}/leave"),
            go(422, "an empty message", a, "POST", f"/conversations/{conv}/messages", json={"content": ""}),
            go(422, "a conversation without a kind", a, "POST", "/conversations", json={}),
            *_hostile(go, a, conv),
        )
        # 429: more communities than the daily limit allows (3 by default; one made above).
        for _ in range(5):
            r = await call(ctx, a, "POST", "/communities",
                           json={"name": f"msgops status {uuid.uuid4().hex[:8]}", "description": "",
                                 "is_private": False})
            attempts.append(Attempt(429, "communities past the daily limit", r))
            if r.status_code != 201:
                break
        return attempts

    return await shared(ctx, "status_battery", run)


def _hostile(go: Any, user: Any, conv: str) -> list[Any]:
    """Bad input a client can send: each must get a 4xx, never a 5xx."""
    json_headers = {"Content-Type": "application/json"}
    messages = f"/conversations/{conv}/messages"
    return [
        go(0, "truncated JSON", user, "POST", messages, content=b'{"content": ', headers=json_headers),
        go(0, "a JSON list body", user, "POST", messages, content=b"[1, 2]", headers=json_headers),
        go(0, "a lone UTF-16 surrogate", user, "POST", messages, content=b'{"content": "\\ud800"}',
           headers=json_headers),
        go(0, "a NUL character", user, "POST", messages, json={"content": "a\u0000b"}),
        go(0, "a text/plain body", user, "POST", messages, content=b"hello", headers={"Content-Type": "text/plain"}),
        go(0, "a 100 kB message", user, "POST", messages, json={"content": "x" * 100_000}),
        go(0, "a number for the content", user, "POST", messages, json={"content": 12345}),
        go(0, "a huge page size", user, "GET", messages, params={"limit": str(10**30)}),
        go(0, "a negative cursor", user, "GET", messages, params={"before": "-1"}),
        go(0, "a search with a NUL", user, "GET", f"{messages}/search", params={"q": "a\u0000"}),
        go(0, "a 10 kB search", user, "GET", f"{messages}/search", params={"q": "x" * 10_000}),
        go(0, "a non-UUID id", user, "GET", "/conversations/not-a-uuid"),
        go(0, "an encoded path traversal", user, "GET", "/conversations/..%2F..%2Fetc%2Fpasswd"),
        go(0, "a boolean that is not", user, "GET", "/conversations", params={"archived": "maybe"}),
        go(0, "an unknown field", user, "POST", messages, json={"content": "x", "is_admin": True}),
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
    attempts = await _battery(ctx)
    results: dict[str, Any] = {}
    missing: list[str] = []
    for code in codes:
        if code == 500:
            continue
        tried = [a for a in attempts if a.expect == code]
        hit = [a for a in tried if a.response.status_code == code]
        results[str(code)] = {"reached": bool(hit), "requests": [
            {"purpose": a.purpose, "request": target_of(a.response), "status": a.response.status_code}
            for a in tried]}
        if not hit:
            missing.append(f"{code} ({'; '.join(f'{a.purpose}: {a.response.status_code}' for a in tried)})")
    errors = [a for a in attempts if a.response.status_code >= 500]
    evidence: dict[str, Any] = {"codes": results, "requests": len(attempts),
                                "hostile_inputs": [{"purpose": a.purpose, "status": a.response.status_code}
                                                   for a in attempts if a.expect == 0]}
    problems = []
    if missing:
        problems.append(f"not reached: {', '.join(missing)}")
    if errors:
        evidence["server_errors"] = [{"purpose": a.purpose, **exchange(a.response, body=200)} for a in errors]
        problems.append("5xx for user input: " + ", ".join(f"{a.purpose} -> {a.response.status_code}"
                                                            for a in errors))
    if problems:
        return failed("; ".join(problems), **evidence)
    return passed(f"reached {', '.join(str(c) for c in codes if c != 500)}"
                  + ("; no 5xx" if 500 in codes else "") + f" across {len(attempts)} requests", **evidence)
