"""User input at the API: length limits hold at the boundary, and markup never survives storage."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

import httpx
from pydantic import Field

from msgops import apimap
from msgops.probes import OneOf, probe
from msgops.probes.context import Context, ProbeUser
from msgops.probes.http.common import (
    community,
    exchange,
    group,
    json_of,
    perform,
    target_of,
    trim,
    users,
)
from msgops.results import Outcome, failed, passed

DEFAULT_LIMITS = {"message_content": 5000, "community_name": 100}


def _field_error(r: httpx.Response, field: str) -> bool:
    """FastAPI-style 422: `{"detail": [{"loc": [..., "content"], ...}]}` naming the field."""
    body = json_of(r)
    detail = body.get("detail") if isinstance(body, dict) else None
    return isinstance(detail, list) and any(isinstance(e, dict) and field in (e.get("loc") or []) for e in detail)


@probe("http.validation_limit",
       what="`field` at exactly `max` characters is accepted and at max+1 is refused with 422 naming the "
            "field (message_content: 5000, community_name: 100 by default).",
       why="Unbounded text fills the database, the search index and every client's screen; a limit "
           "enforced only in the UI is no limit for a script.",
       example="A 5001-character message is stored (201), or a 5000-character one is refused.",
       fix="Declare the limit on the request model (pydantic Field(max_length=5000)) and keep a CHECK "
           "constraint in the table as the last line.")
async def validation_limit(ctx: Context, field: Annotated[str, OneOf(DEFAULT_LIMITS, "field")],
                           max: Annotated[int, Field(ge=1)] | None = None) -> Outcome:
    if field not in DEFAULT_LIMITS:
        raise ValueError(f"unknown field {field!r} (expected one of {', '.join(DEFAULT_LIMITS)})")
    limit = int(max if max is not None else DEFAULT_LIMITS[field])
    return await _validation(ctx, field, limit)


async def _validation(ctx: Context, field: str, limit: int) -> Outcome:
    user = await ctx.api_user()
    if field == "message_content":
        conv = await group(ctx, user, title="msgops validation probe")
        name, value = "send_message", "content"

        def values(n: int) -> dict[str, Any]:
            return {"conversation_id": conv, "content": "x" * n}
    else:
        name, value = "create_community", "name"
        run = f"msgops {uuid.uuid4().hex[:8]} "

        def values(n: int) -> dict[str, Any]:
            return {"name": (run + "n" * n)[:n], "description": "", "is_private": False}

    op = await apimap.need(ctx, name, value)
    key = op.json_key(value) or value  # the target's name for the field, which its 422 names
    over = (await apimap.call(ctx, user, name, **values(limit + 1))).response
    at = (await apimap.call(ctx, user, name, **values(limit))).response
    evidence: dict[str, Any] = {"field": field, "max": limit, f"at_{limit}": exchange(at, body=0),
                                f"at_{limit + 1}": exchange(over, body=300)}
    problems = []
    if over.status_code != 422:
        problems.append(f"{limit + 1} characters answered {over.status_code}, expected 422")
    elif not _field_error(over, key):
        problems.append(f"the 422 for {limit + 1} characters names no `{key}` field error")
    if not 200 <= at.status_code < 300:
        problems.append(f"{limit} characters answered {at.status_code}, expected to be accepted")
    if problems:
        return failed(f"{field}: " + "; ".join(problems), **evidence)
    return passed(f"{field}: {limit} characters accepted ({at.status_code}), {limit + 1} refused with 422 "
                  f"naming `{key}`", **evidence)


# --- XSS -----------------------------------------------------------------------------------------

XSS_PAYLOADS = (
    "msgops <script>alert(1)</script> probe",
    "msgops <img src=x onerror=alert(1)> probe",
    "msgops <svg onload=alert(1)> probe",
    "msgops <a href=\"javascript:alert(1)\">link</a> probe",
    "msgops <iframe src=\"javascript:alert(1)\"></iframe> probe",
    "msgops \"><script>alert(document.cookie)</script> probe",
    "msgops <scr<script>ipt>alert(1)</scr</script>ipt> probe",
    "msgops <body onload=alert(1)> probe",
)
MARKUP = re.compile(r"<\s*/?\s*[a-zA-Z!?]")


def _markup_in(value: Any) -> bool:
    return isinstance(value, str) and bool(MARKUP.search(value))


class _Xss:
    """Collects what came back for each payload and what still holds markup."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.problems: list[str] = []

    def check(self, r: httpx.Response, where: str, fields: dict[str, Any]) -> None:
        for name, value in fields.items():
            bad = _markup_in(value)
            self.seen.append({"where": where, "field": name, "returned": trim(str(value), 120), "markup": bad})
            if bad:
                self.problems.append(f"{name} returned by {target_of(r)} still holds markup: {trim(str(value), 80)}")

    def echoed(self, r: httpx.Response) -> None:
        """A refusal that echoes the payload into an HTML page is reflected XSS."""
        if "text/html" in r.headers.get("content-type", "") and "<script" in r.text.lower():
            self.problems.append(f"{target_of(r)} answered {r.status_code} as HTML echoing a script tag")


async def _xss_community(ctx: Context, owner: ProbeUser, seen: _Xss) -> int:
    """Payloads in a community's name, description and messages; the number of refused payloads."""
    refused = 0
    created = await community(ctx, owner, name=f"msgops <img src=x onerror=alert(1)> {uuid.uuid4().hex[:6]}",
                              description="msgops <script>alert(1)</script> <b onmouseover=alert(1)>x</b>")
    cid = str(created["id"])
    for payload in XSS_PAYLOADS[:3]:
        posted = await apimap.call(ctx, owner, "send_community_message", community_id=cid, content=payload)
        if not posted.ok:
            refused += 1
            seen.echoed(posted.response)
    back = await perform(ctx, owner, "get_community", "read the community back", community_id=cid)
    seen.check(back.response, "community (read)", {k: back.fields.get(k) for k in ("name", "description")})
    messages = await perform(ctx, owner, "list_community_messages", "read the community messages back",
                             community_id=cid)
    for m in messages.fields.get("messages") or []:
        seen.check(messages.response, "community message (read)", {"content": m.get("content")})
    return refused


@probe("http.xss_sanitized",
       what="Script and event-handler payloads in message content, community names/descriptions and group "
            "titles come back (on create and on read) with no markup left.",
       why="Stored markup runs in every member's browser that renders it: one message steals every "
           "reader's session.",
       example="`<img src=x onerror=alert(1)>` is returned verbatim by GET /conversations/{id}/messages.",
       fix="Treat text as text: strip or escape markup on input (nh3.clean with no tags allowed) and "
           "escape on output; never render message content as HTML.")
async def xss_sanitized(ctx: Context) -> Outcome:
    return await _xss(ctx)


async def _xss(ctx: Context) -> Outcome:
    author, owner = await users(ctx, "attendee", "attendee")
    seen = _Xss()
    refused = 0
    conv = await group(ctx, author, title="msgops <script>alert(1)</script> group")
    for payload in XSS_PAYLOADS:
        sent = await apimap.call(ctx, author, "send_message", conversation_id=conv, content=payload)
        if sent.ok:
            seen.check(sent.response, "message (create)", {"content": sent.fields.get("content")})
        else:
            refused += 1
            seen.echoed(sent.response)
    page = await perform(ctx, author, "list_messages", "read the messages back", conversation_id=conv, limit=50)
    for m in page.fields.get("messages") or []:
        seen.check(page.response, "message (read)", {"content": m.get("content")})
    detail = await perform(ctx, author, "get_conversation", "read the group back", conversation_id=conv)
    seen.check(detail.response, "group (read)", {"title": detail.fields.get("title")})

    if await apimap.lookup(ctx, "create_community") is not None:
        refused += await _xss_community(ctx, owner, seen)

    evidence: dict[str, Any] = {"payloads": list(XSS_PAYLOADS), "returned": seen.seen[:30],
                                "refused_payloads": refused}
    if seen.problems:
        return failed(f"{len(seen.problems)} value(s) kept markup; first: {seen.problems[0]}",
                      problems=seen.problems[:20], **evidence)
    return passed(f"{len(seen.seen)} stored values read back without markup ({refused} payloads refused)",
                  **evidence)
