"""http.sql_injection: classic payloads in content, query parameters and path ids do nothing but be text."""

from __future__ import annotations

import asyncio
import html
from typing import Any

import httpx

from msgops import apimap
from msgops.probes import probe
from msgops.probes.context import Context
from msgops.probes.http.common import (
    direct,
    exchange,
    group,
    optional,
    require,
    send,
    target_of,
    users,
)
from msgops.results import Outcome, failed, passed

SQL_PAYLOADS = (
    "' OR '1'='1",
    "'; DROP TABLE messages; --",
    "\" OR \"\"=\"",
    "1 UNION SELECT id, email FROM profiles --",
    "%' OR 1=1 --",
    "admin'--",
    "')) OR 1=1; --",
    "'||(SELECT pg_sleep(3))||'",
)
SLEEP_MS = 2900.0  # the pg_sleep(3) payload, executed, shows up as a three-second answer


@probe("http.sql_injection",
       what="SQL injection payloads as message content, search queries, cursors and path ids never cause a "
            "5xx or a three-second (pg_sleep) answer, never return another user's private rows, and content "
            "is stored as the literal text.",
       why="A single concatenated query hands the database to whoever types a quote; RLS narrows the damage "
           "but a 500 on a quote is the first sign of it.",
       example="GET /communities?q=' OR '1'='1 answers 500 (syntax error from a formatted query).",
       fix="Pass every value as a bound parameter (psycopg: %s placeholders; psycopg.sql for identifiers); "
           "never format user input into SQL text.")
async def sql_injection(ctx: Context) -> Outcome:
    return await _sql_injection(ctx)


async def _sql_injection(ctx: Context) -> Outcome:
    a, b, outsider = await users(ctx, "attendee", "attendee", "attendee")
    conv = await direct(ctx, a, b)
    await send(ctx, b, conv, "msgops injection probe hello")
    secret_conv = await group(ctx, outsider, title="msgops private injection group")
    private_ids = {secret_conv}
    secret = await optional(ctx, outsider, "create_community", name="msgops private injection probe",
                            description="hello probe", is_private=True)
    if secret is not None and secret.ok:
        private_ids.add(str(secret["id"]))

    sent = await asyncio.gather(*(apimap.call(ctx, a, "send_message", conversation_id=conv, content=p)
                                  for p in SQL_PAYLOADS))
    stored = [answer.response for answer in sent]
    reads: list[tuple[str, str, httpx.Response]] = []
    gate = asyncio.Semaphore(16)

    async def read(kind: str, payload: str, name: str, **values: Any) -> None:
        """A read through operation `name`, when the target's API has it (and places the payload)."""
        async with gate:
            answer = await optional(ctx, a, name, **values)
        if answer is not None:
            reads.append((kind, payload, answer.response))

    jobs = []
    for i, p in enumerate(SQL_PAYLOADS):
        jobs += [read("query", p, "list_communities", query=p, needs=("query",)),
                 read("query", p, "search", conversation_id=conv, query=p, needs=("query",))]
        if i % 2 == 0 or "pg_sleep" in p:  # ids and cursors take one parsing path: half the payloads do
            jobs += [read("query", p, "list_conversations", cursor=p, needs=("cursor",)),
                     read("path", p, "get_conversation", conversation_id=p, needs=("conversation_id",)),
                     read("path", p, "get_message", conversation_id=conv, message_id=p, needs=("message_id",)),
                     read("path", p, "list_community_messages", community_id=p, needs=("community_id",))]
    await asyncio.gather(*jobs)
    listed = await apimap.call(ctx, a, "list_messages", conversation_id=conv, limit=50)
    page = listed.response
    require(page, 200, what="read the messages back")
    contents = [m.get("content") for m in listed.fields.get("messages") or []]

    problems: list[str] = []
    everything = [("content", p, r) for p, r in zip(SQL_PAYLOADS, stored, strict=True)] + reads + \
        [("read", "", page)]
    for kind, payload, r in everything:
        where = target_of(r)
        ms = r.elapsed.total_seconds() * 1000
        if r.status_code >= 500:
            problems.append(f"{where} answered {r.status_code}")
        elif "pg_sleep" in payload and ms > SLEEP_MS:
            problems.append(f"{where} took {ms:.0f} ms: the pg_sleep payload ran as SQL")
        if kind == "path" and r.status_code == 200:
            problems.append(f"{where} answered 200 to a path id that is not an id")
        leaked = sorted(i for i in private_ids if i in r.text)
        if leaked:
            problems.append(f"{where} returned another user's private resource {', '.join(leaked)}")
    for payload, answer in zip(SQL_PAYLOADS, sent, strict=True):
        if answer.ok and payload not in [html.unescape(c or "") for c in contents]:
            problems.append(f"payload {payload!r} was not stored as its literal text")
    evidence: dict[str, Any] = {
        "payloads": list(SQL_PAYLOADS), "requests": len(everything),
        "statuses": sorted({f"{k}:{r.status_code}" for k, _, r in everything}),
        "stored": [{"sent": p, "status": answer.response.status_code,
                    "returned": answer.fields.get("content") if answer.ok else None}
                   for p, answer in zip(SQL_PAYLOADS, sent, strict=True)],
        "slowest_ms": round(max(r.elapsed.total_seconds() for _, _, r in everything) * 1000, 1),
    }
    if problems:
        first = next((r for _, _, r in everything if r.status_code >= 500), None)
        if first is not None:
            evidence["first_5xx"] = exchange(first, body=300)
        return failed(f"{len(problems)} problem(s); first: {problems[0]}", problems=problems[:20], **evidence)
    return passed(f"{len(everything)} requests with {len(SQL_PAYLOADS)} payloads: no 5xx, no private rows, "
                  "content stored as literal text", **evidence)
