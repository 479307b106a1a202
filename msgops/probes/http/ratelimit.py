"""http.rate_limit: a fresh probe user bursts just past a limit and must get 429 with Retry-After."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any

import httpx

from msgops import apimap
from msgops.probes import OneOf, probe
from msgops.probes.context import Context
from msgops.probes.http.common import exchange, group, json_of, shared
from msgops.results import Outcome, failed, passed

# The seeds' limits: 10 messages/minute, 100 messages/hour, 5 conversations/hour, 3 communities/day.
SEED_LIMITS: dict[str, tuple[int, int]] = {
    "send_message": (10, 60),
    "send_message_hourly": (100, 3600),
    "create_conversation": (5, 3600),
    "create_community": (3, 86400),
}
_HEADERS = ("retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit-limit",
            "ratelimit-reset")
_BURST_CONCURRENCY = 20


def _parse_limit(value: Any) -> tuple[int, int] | None:
    """`{"max_hits": 10, "window_seconds": 60}` or `"10/60"`."""
    if isinstance(value, dict) and "max_hits" in value and "window_seconds" in value:
        return int(value["max_hits"]), int(value["window_seconds"])
    if isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)):
        return int(m.group(1)), int(m.group(2))
    return None


async def _limit(ctx: Context, action: str) -> tuple[int, int, str]:
    """The service's configured limit when it publishes them (`rate_limits` in /health), else the seed's."""

    async def published() -> dict[str, Any]:
        body = json_of(await ctx.http.get("/health"))
        limits = body.get("rate_limits") if isinstance(body, dict) else None
        return limits if isinstance(limits, dict) else {}

    parsed = _parse_limit((await shared(ctx, "rate_limits", published)).get(action))
    if parsed is not None:
        return (*parsed, "published by the service (/health rate_limits)")
    return (*SEED_LIMITS[action], "seed default")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:  # an HTTP-date
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


async def _sender(ctx: Context, action: str) -> Callable[[int], Awaitable[httpx.Response]]:
    """One attempt of `action` by a fresh probe user (nothing it did before counts against it)."""
    user = await ctx.api_user()
    run = uuid.uuid4().hex[:8]

    async def attempt(name: str, /, **values: Any) -> httpx.Response:
        return (await apimap.call(ctx, user, name, **values)).response

    if action in ("send_message", "send_message_hourly"):
        conv = await group(ctx, user, title=f"msgops rate limit {run}")
        return lambda i: attempt("send_message", conversation_id=conv, content=f"msgops rate limit probe {run} #{i}")
    if action == "create_conversation":
        return lambda i: attempt("create_group", title=f"msgops rate limit {run} #{i}", member_ids=[])
    return lambda i: attempt("create_community", name=f"msgops rate limit {run} #{i}", description="",
                             is_private=False)


async def _waves(attempt: Callable[[int], Awaitable[httpx.Response]], total: int) -> list[httpx.Response]:
    """Up to `total` attempts in concurrent waves, stopping after the first wave that met a 429: in a
    window every later attempt would be refused too (100/hour behind 10/minute needs 20, not 101)."""
    answers: list[httpx.Response] = []
    while len(answers) < total:
        wave = range(len(answers), min(total, len(answers) + _BURST_CONCURRENCY))
        answers += await asyncio.gather(*(attempt(i) for i in wave))
        if any(r.status_code == 429 for r in answers):
            break
    return answers


@probe("http.rate_limit",
       what="A fresh probe user makes up to limit+1 attempts of `action` in concurrent waves "
            "(send_message 10/min, send_message_hourly 100/h, create_conversation 5/h, create_community "
            "3/day, or the limits the service publishes): at most `limit` succeed, and a 429 with "
            "Retry-After comes by attempt limit+1.",
       why="Without per-user limits one account (or one stolen token) floods conversations, exhausts the "
           "database and pages everyone; Retry-After tells well-behaved clients when to come back.",
       example="11 messages in a burst are all accepted (201); or the 429 has no Retry-After header.",
       fix="Count each action per user in a window (service: public.rate_limit_hit) and answer 429 with "
           "Retry-After; configure the limits (MSGOPS_RATE_LIMITS).")
async def rate_limit(ctx: Context, action: Annotated[str, OneOf(SEED_LIMITS, "action")]) -> Outcome:
    if action not in SEED_LIMITS:
        raise ValueError(f"unknown action {action!r} (expected one of {', '.join(SEED_LIMITS)})")
    return await _burst(ctx, action)


async def _burst(ctx: Context, action: str) -> Outcome:
    limit, window, source = await _limit(ctx, action)
    attempt = await _sender(ctx, action)
    answers = await _waves(attempt, limit + 1)
    statuses = Counter(r.status_code for r in answers)
    accepted = sum(n for code, n in statuses.items() if 200 <= code < 300)
    refused = [r for r in answers if r.status_code == 429]
    unexpected = [r for r in answers if not (200 <= r.status_code < 300 or r.status_code == 429)]
    evidence: dict[str, Any] = {"action": action, "limit": limit, "window_s": window, "limit_source": source,
                                "attempts": len(answers), "accepted": accepted, "refused_429": len(refused),
                                "statuses": {str(k): v for k, v in sorted(statuses.items())}}
    if refused:
        evidence["first_429"] = exchange(refused[0], headers=_HEADERS, body=200)
    if unexpected:
        evidence["unexpected"] = [exchange(r, body=200) for r in unexpected[:3]]
        return failed(f"{action}: {len(unexpected)} attempt(s) answered neither 2xx nor 429 "
                      f"({', '.join(str(r.status_code) for r in unexpected[:5])})", **evidence)
    if accepted > limit:
        return failed(f"{action}: {accepted} of {len(answers)} attempts accepted; the limit is {limit} per "
                      f"{window}s", **evidence)
    if not refused:
        return failed(f"{action}: no 429 after {limit + 1} attempts", **evidence)
    retry = _retry_after(refused[0].headers.get("retry-after"))
    if retry is None:
        return failed(f"{action}: 429 without a usable Retry-After header", **evidence)
    message = f"{action}: {accepted} accepted, then 429 with Retry-After {retry:g}s (limit {limit} per {window}s)"
    if accepted < limit:
        note = (f"a shorter window answered first (Retry-After {retry:g}s): no more than {limit} got through, "
                f"but the {window}s limit itself is reached only after {limit} accepted attempts")
        evidence["note"] = note
        message += f"; {note}"
    return passed(message, **evidence)
