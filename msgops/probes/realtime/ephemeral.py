"""realtime.typing_ttl and realtime.presence: typing indicators and online status (memory, not rows)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from pydantic import Field

from msgops.probes.context import Context
from msgops.probes.realtime.client import REPLY_TIMEOUT, SETTLE, Frame, Scene, brief
from msgops.probes.realtime.evidence import realtime_probe
from msgops.results import Outcome, failed, passed

# The subject signs out (close code 1000). The reference announces that at once; servers that treat
# every close like a drop wait out a reconnect grace period first (a few seconds) and still pass.
OFFLINE_TIMEOUT = 8.0
_TTL_FIELDS = ("expires_in", "ttl_s", "ttl")  # a protocol that states the typing TTL saves the wait


def _typing(user: str, on: bool) -> Any:
    return lambda f: f.get("type") == "user_typing" and f.get("user_id") == user and f.get("typing") is on


def _stated_ttl(frame: Frame) -> tuple[str, float] | None:
    for name in _TTL_FIELDS:
        value = frame.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return name, float(value)
    return None


@realtime_probe(
    "realtime.typing_ttl",
    waits_long=True,
    what="typing_start reaches the other member as user_typing; without typing_stop it expires after `seconds` "
         "(default 10): read from the protocol when the frame states it (expires_in), otherwise observed.",
    why="An indicator that never expires shows someone typing forever after they closed the tab.",
    example="After typing_start and no stop, user_typing(typing=false) arrives after 30 s, or never.",
    fix="Keep typing state with a deadline refreshed by each typing_start; announce typing=false when it passes.",
)
async def typing_ttl(ctx: Context, seconds: Annotated[float, Field(gt=0)] = 10) -> Outcome:
    async with Scene(ctx) as scene:
        await scene.add_users("typist", "watcher")
        conversation = await scene.group("typist", "watcher")
        typist, watcher = await scene.socket("typist"), await scene.socket("watcher")
        started = time.perf_counter()
        await typist.send(type="typing_start", conversation_id=str(conversation))
        on = await watcher.wait(_typing(scene.uid("typist"), True))
        evidence: dict[str, Any] = {"conversation_id": str(conversation), "expected_ttl_s": seconds}
        if on is None:
            return failed("typing_start did not reach the other member as user_typing", **evidence)
        evidence["user_typing"] = brief(on)
        tolerance = max(0.5, seconds * 0.1)
        if stated := _stated_ttl(on):
            name, ttl = stated
            evidence.update(method=f"read from user_typing.{name} (not waited)", ttl_s=ttl)
            if abs(ttl - seconds) > tolerance:
                return failed(f"the protocol states a typing TTL of {ttl:g} s, expected {seconds:g} s", **evidence)
            return passed(f"typing TTL {ttl:g} s, as stated by user_typing.{name}", **evidence)
        deadline = seconds * 1.2 + 1.5
        off = await watcher.wait(_typing(scene.uid("typist"), False), timeout=deadline)
        evidence["method"] = "observed: typing_start without typing_stop, timed until user_typing(typing=false)"
        if off is None:
            return failed(f"still typing {deadline:g} s after typing_start without typing_stop "
                          f"(expected expiry after {seconds:g} s)", **evidence)
        elapsed = round(watcher.arrival(off) - started, 2)
        evidence["expired_after_s"] = elapsed
        if elapsed < seconds - tolerance:
            return failed(f"typing expired after {elapsed} s, sooner than the {seconds:g} s TTL", **evidence)
        return passed(f"typing expired after {elapsed} s (TTL {seconds:g} s)", **evidence)


@realtime_probe(
    "realtime.presence",
    waits_long=True,
    what="When a user connects, a peer who shares a conversation gets user_online and, when they disconnect, "
         "user_offline; a stranger who shares nothing gets neither.",
    why="Presence is personal data: it must reach the people one talks to, and no one else.",
    example="The stranger receives user_online for the subject, or the peer never sees the subject go offline.",
    fix="Fan presence out to co-members only (one query per batch of changes); announce offline when the last "
        "socket closes (at once for a normal close, after a short grace period for a dropped one).",
)
async def presence(ctx: Context) -> Outcome:
    async with Scene(ctx) as scene:
        await scene.add_users("subject", "peer", "stranger")
        await scene.group("peer", "subject")
        peer = await scene.socket("peer", join=False)
        stranger = await scene.socket("stranger", join=False)
        subject = await scene.socket("subject", join=False)
        who = scene.uid("subject")
        online = await peer.wait(lambda f: f.get("type") == "user_online" and f.get("user_id") == who,
                                 REPLY_TIMEOUT)
        await subject.close()
        closed_at = time.perf_counter()
        offline = await peer.wait(lambda f: f.get("type") == "user_offline" and f.get("user_id") == who,
                                  OFFLINE_TIMEOUT)
        await asyncio.sleep(SETTLE)
        leaked = [f for f in stranger.frames if f.get("user_id") == who]
        evidence: dict[str, Any] = {
            "subject": scene.who(who), "peer_saw_online": brief(online) if online else None,
            "peer_saw_offline": brief(offline) if offline else None,
            "offline_after_s": round(peer.arrival(offline) - closed_at, 2) if offline else None,
            "stranger_received": [brief(f) for f in leaked],
        }
        problems = []
        if leaked:
            problems.append(f"{leaked[0].get('type')} about {scene.who(who)} delivered to the stranger "
                            f"{scene.who(scene.users['stranger'].id)}, who shares no conversation")
        if online is None:
            problems.append("the peer never received user_online for the subject")
        if offline is None:
            problems.append(f"the peer never received user_offline within {OFFLINE_TIMEOUT:g} s of the disconnect")
        if problems:
            return failed("; ".join(problems), **evidence)
        return passed(f"peer saw online and offline ({evidence['offline_after_s']} s after disconnect); "
                      "the stranger saw nothing", **evidence)
