"""realtime.auth_required: sockets without a valid token are refused and hear nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import jwt

from msgops.probes.context import CannotEvaluate, Context
from msgops.probes.realtime import adapters
from msgops.probes.realtime.client import REPLY_TIMEOUT, SETTLE, Scene, Socket, brief, received
from msgops.probes.realtime.evidence import realtime_probe
from msgops.results import Outcome, failed, passed

_SILENT_TYPES = frozenset({"error"})  # what a refused socket may be sent


def _cases(ctx: Context) -> dict[str, tuple[str, str | None]]:
    """case -> (query string, auth frame token or None for no auth frame at all). An expired token is
    tried when the personas can sign one (hs256, private_key)."""
    someone = str(uuid.uuid4())
    now = int(time.time())
    forged = jwt.encode({"sub": someone, "role": "authenticated", "aud": "authenticated", "iat": now,
                         "exp": now + 900}, "msgops-probe-wrong-secret-" + uuid.uuid4().hex, algorithm="HS256")
    cases: dict[str, tuple[str, str | None]] = {
        "missing": ("", None),
        "malformed": ("", "not-a-jwt"),
        "invalid_signature": ("", forged),
        "invalid_query_token": ("?token=not-a-jwt", None),
    }
    if ctx.personas.can_sign:
        cases["expired"] = ("", ctx.mint(someone, ttl=-120))
    return cases


@realtime_probe(
    "realtime.auth_required",
    waits_long=True,
    what="WebSockets that send no token, a malformed, badly signed or expired token (as the auth frame or "
         "?token=) are refused — closed or answered with an error — and receive no event while a message is "
         "sent to the conversation they try to join.",
    why="An unauthenticated socket that can join rooms reads every conversation.",
    example="A socket whose first frame is join_conversation (no auth) gets `joined` and then message_received.",
    fix="Require a verified token (signature, exp, aud) before any other frame; close with 4401 otherwise.",
)
async def auth_required(ctx: Context) -> Outcome:
    async with Scene(ctx) as scene:
        await scene.add_users("owner", "member")
        conversation = await scene.group("owner", "member")
        member = await scene.socket("member")  # control: a valid client works, so refusals mean something
        cases = _cases(ctx)

        async def attempt(case: str, query: str, token: str | None) -> Socket:
            sock = await adapters.attempt(ctx, f"no valid token ({case})", token, query)
            scene.sockets.append(sock)
            await sock.send(type="join_conversation", conversation_id=str(conversation), ref=f"join-{case}")
            await sock.wait(lambda f: f.get("type") == "error", REPLY_TIMEOUT)  # or closed
            return sock

        socks = await asyncio.gather(*(attempt(c, q, t) for c, (q, t) in cases.items()))
        sent = await scene.send("owner", "msgops auth probe")
        if await member.wait(received(sent.id)) is None:
            raise CannotEvaluate("the member never received the probe message: realtime delivery is broken, so "
                               "silence at the refused sockets proves nothing (see realtime.delivery)")
        await asyncio.sleep(SETTLE)
        rows: list[dict[str, Any]] = []
        problems: list[str] = []
        for case, sock in zip(cases, socks, strict=True):
            errors = [f for f in sock.frames if f.get("type") == "error"]
            events = [f for f in sock.frames if f.get("type") not in _SILENT_TYPES]
            rows.append({"case": case, "closed": sock.closed, "close_code": sock.close_code,
                         "close_reason": sock.close_reason[:120],
                         "error": errors[0].get("code") if errors else None,
                         "events": [brief(f) for f in events[:5]]})
            if events:
                problems.append(f"{case}: received {', '.join(sorted({str(f.get('type')) for f in events}))}")
            elif not sock.closed and not errors:
                problems.append(f"{case}: neither closed nor answered with an error")
        evidence: dict[str, Any] = {"conversation_id": str(conversation), "attempts": rows}
        untried = "" if "expired" in cases else "; an expired token was not tried (personas cannot sign one)"
        if untried:
            evidence["not_tried"] = ["expired: personas.source gives no signing key"]
        if problems:
            return failed("; ".join(problems), **evidence)
        codes = sorted({str(r["close_code"] or r["error"]) for r in rows})
        return passed(f"{len(rows)} unauthenticated sockets refused ({', '.join(codes)}), none received "
                      f"events{untried}", **evidence)
