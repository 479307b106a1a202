"""realtime.delivery, realtime.no_leak, realtime.resume, realtime.multi_tab: messages over the socket.

Every scene is real: probe users, a group conversation created through the REST API, messages sent
through the REST API, and WebSockets that authenticate and join like a client would.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import Field

from msgops.probes.context import Context
from msgops.probes.realtime.client import REPLY_TIMEOUT, SETTLE, Frame, Scene, Socket, brief, received
from msgops.probes.realtime.evidence import realtime_probe
from msgops.results import Outcome, failed, passed


@realtime_probe(
    "realtime.delivery",
    what="Two probe users share a conversation and join it over the WebSocket; a message sent through the "
         "REST API reaches the recipient's socket within budget_ms (default 1000).",
    why="Realtime is the product: a message that shows up seconds late (or on refresh only) reads as broken.",
    example="The recipient's message_received arrives 2300 ms after the POST, over a 1000 ms budget.",
    fix="Check that the API publishes after commit and that the hub's bus is running (/health realtime_bus); "
        "with several instances use the PostgreSQL bus.",
)
async def delivery(ctx: Context, budget_ms: Annotated[float, Field(gt=0)] = 1000) -> Outcome:
    async with Scene(ctx) as scene:
        await scene.add_users("sender", "recipient")
        await scene.group("sender", "recipient")
        inbox = await scene.socket("recipient")
        await scene.socket("sender")
        sent = await scene.send("sender", "msgops delivery probe")
        frame = await inbox.wait(received(sent.id), timeout=max(budget_ms / 1000 * 2, REPLY_TIMEOUT))
        evidence: dict[str, Any] = {"conversation_id": str(scene.conversation), "message_id": sent.id,
                                    "seq": sent.seq, "recipient": scene.who(scene.uid("recipient")),
                                    "budget_ms": budget_ms}
        if frame is None:
            evidence["recipient_frames"] = [brief(f) for f in inbox.frames[-5:]]
            return failed(f"the message never reached the recipient's socket (waited "
                          f"{max(budget_ms / 1000 * 2, REPLY_TIMEOUT):g}s)", **evidence)
        latency = round((inbox.arrival(frame) - sent.at) * 1000, 1)
        evidence["latency_ms"] = latency
        if latency > budget_ms:
            return failed(f"delivered in {latency} ms, over the {budget_ms:g} ms budget", **evidence)
        return passed(f"delivered in {latency} ms (budget {budget_ms:g} ms)", **evidence)


def _about(scene: Scene, frame: Frame, message_ids: set[str]) -> bool:
    """Does this frame tell its receiver anything about the probe conversation or its messages?"""
    if frame.get("type") == "error":  # the answer to one's own refused request
        return False
    text = repr(frame)
    return str(scene.conversation) in text or any(m in text for m in message_ids)


def _leak(scene: Scene, sock: Socket, frame: Frame, who: str) -> dict[str, Any]:
    return {"event": frame.get("type"), "user": scene.who(scene.users[who].id), "socket": sock.label,
            "frame": brief(frame)}


@realtime_probe(
    "realtime.no_leak",
    waits_long=True,
    what="A non-member who tries to join a conversation is refused and, listening while messages are sent and "
         "members type, receives nothing about it; a member removed from a group stops receiving at once.",
    why="A realtime event delivered to a non-member leaks the conversation as surely as a missing RLS policy.",
    example="The stranger's join_conversation is answered with `joined`, and message_received for seq 1 "
            "reaches the stranger's socket.",
    fix="Check membership (as the user, under RLS) when a socket joins, re-check on membership changes, and "
        "drop removed members' subscriptions before delivering anything newer.",
)
async def no_leak(ctx: Context) -> Outcome:
    async with Scene(ctx) as scene:
        await scene.add_users("owner", "member", "removed", "stranger")
        conversation = await scene.group("owner", "member", "removed")
        owner, member, removed = await asyncio.gather(scene.socket("owner"), scene.socket("member"),
                                                      scene.socket("removed"))
        stranger = await scene.socket("stranger", join=False)
        leaks: list[dict[str, Any]] = []

        # 1. The stranger asks to join: refused with an error, never `joined`.
        await stranger.send(type="join_conversation", conversation_id=str(conversation), ref="stranger-join")
        answer = await stranger.wait(lambda f: f.get("ref") == "stranger-join" or f.get("type") == "joined")
        if answer is None:
            return failed("the stranger's join_conversation got no answer (expected an error frame)",
                          user=scene.who(scene.users["stranger"].id), conversation_id=str(conversation))
        join_refusal = brief(answer)
        if answer.get("type") != "error":
            leaks.append(_leak(scene, stranger, answer, "stranger"))

        # 2. A message and typing while the stranger listens: members get them, the stranger nothing.
        first = await scene.send("owner", "msgops no-leak probe 1")
        await owner.send(type="typing_start", conversation_id=str(conversation))
        got = await member.wait(received(first.id))
        typing = await member.wait(lambda f: f.get("type") == "user_typing" and f.get("typing") is True)
        if got is None:
            raise RuntimeError("the member never received the probe message: realtime delivery is broken, so "
                               "absence at the stranger proves nothing (see realtime.delivery)")

        # Still a member during step 2: its socket gets the same frames. Wait for them, so that nothing
        # from step 2 arriving a moment late is taken for something delivered after the removal.
        if await removed.wait(received(first.id)) is None or await removed.wait(
                lambda f: f.get("type") == "user_typing" and f.get("typing") is True) is None:
            raise RuntimeError("the member about to be removed missed the probe message or the typing indicator: "
                               "realtime delivery is broken (see realtime.delivery)")

        # 3. Remove a member, then send again: the removed member must not receive it.
        mark = len(removed.frames)
        await scene.remove("owner", "removed")
        second = await scene.send("owner", "msgops no-leak probe 2")
        if await member.wait(received(second.id)) is None:
            raise RuntimeError("the member never received the second probe message")
        await asyncio.sleep(SETTLE)
        ids = {first.id, second.id}
        leaks += [_leak(scene, stranger, f, "stranger") for f in stranger.frames if _about(scene, f, ids)]
        leaks += [_leak(scene, removed, f, "removed") for f in removed.frames[mark:]
                  if f.get("type") in ("message_received", "message_updated", "message_deleted", "user_typing")
                  and _about(scene, f, {second.id})]
        removal = next((f for f in removed.frames[mark:] if f.get("type") == "left"), None)
        evidence: dict[str, Any] = {
            "conversation_id": str(conversation), "stranger_join_answer": join_refusal,
            "member_received": [first.seq, second.seq], "member_saw_typing": typing is not None,
            "removed_member_told": brief(removal) if removal else None, "leaks": leaks[:10],
        }
        if leaks:
            first_leak = leaks[0]
            return failed(f"{first_leak['event']} delivered to {first_leak['user']}, who is not a member",
                          **evidence)
        return passed("non-member refused and silent; removed member stopped receiving", **evidence)


@realtime_probe(
    "realtime.resume",
    waits_long=True,
    what="A socket receives messages, disconnects, more are sent through REST, and reconnecting with "
         "since_seq delivers exactly the missed ones, in order, without duplicates.",
    why="Phones drop connections constantly; without exact resume users miss messages or see them twice.",
    example="After reconnecting with since_seq=2 the client gets seq 3, 5 (4 missing) or seq 2 again.",
    fix="Deliver from the stored per-conversation seq (`seq > since_seq`, ordered), not from an in-memory "
        "buffer, and only then switch the socket to live delivery.",
)
async def resume(ctx: Context) -> Outcome:
    async with Scene(ctx) as scene:
        await scene.add_users("sender", "reader")
        await scene.group("sender", "reader")
        reader = await scene.socket("reader")
        before = [await scene.send("sender", f"msgops resume probe {i}") for i in (1, 2)]
        for message in before:
            if await reader.wait(received(message.id)) is None:
                raise RuntimeError(f"live delivery failed before the resume test (seq {message.seq} never arrived)")
        last_seen = before[-1].seq
        await reader.close()
        missed = [await scene.send("sender", f"msgops resume probe {i}") for i in (3, 4, 5)]
        again = await scene.socket("reader", join=False, tab=" (reconnected)")
        joined = await again.join(scene.conversation, since_seq=last_seen)  # type: ignore[arg-type]
        await again.wait(received(missed[-1].id))
        await asyncio.sleep(SETTLE)
        got = [f for f in again.frames if f.get("type") == "message_received"]
        seqs = [int(f["seq"]) for f in got]
        ids = [(f.get("message") or {}).get("id") for f in got]
        expected = [m.seq for m in missed]
        evidence = {"since_seq": last_seen, "expected_seqs": expected, "received_seqs": seqs,
                    "joined": brief(joined)}
        if ids != [m.id for m in missed]:
            problems = []
            if missing := [s for s in expected if s not in seqs]:
                problems.append(f"missing seq {missing}")
            if dupes := sorted({s for s in seqs if seqs.count(s) > 1}):
                problems.append(f"duplicated seq {dupes}")
            if extra := sorted({s for s in seqs if s not in expected}):
                problems.append(f"already-seen seq {extra} re-sent")
            if not problems:
                problems.append("out of order")
            return failed(f"resume from since_seq={last_seen}: {', '.join(problems)} (got {seqs})", **evidence)
        return passed(f"resumed exactly seq {expected} after since_seq={last_seen}", **evidence)


@realtime_probe(
    "realtime.multi_tab",
    waits_long=True,
    what="Two sockets of one user (two tabs) both receive each message exactly once.",
    why="Users keep several tabs and devices open; each must stay current without double-counting messages.",
    example="The second tab receives nothing (the server keyed sockets by user), or each tab gets it twice.",
    fix="Track subscriptions per socket, not per user, and deliver each message once per subscribed socket.",
)
async def multi_tab(ctx: Context) -> Outcome:
    async with Scene(ctx) as scene:
        await scene.add_users("sender", "reader")
        await scene.group("sender", "reader")
        tabs = [await scene.socket("reader", tab=" tab 1"), await scene.socket("reader", tab=" tab 2")]
        sent = [await scene.send("sender", f"msgops multi-tab probe {i}") for i in (1, 2)]
        await asyncio.gather(*(tab.wait(received(m.id)) for tab in tabs for m in sent))
        await asyncio.sleep(SETTLE)
        counts = {tab.label: {m.seq: len(tab.matching(received(m.id))) for m in sent} for tab in tabs}
        evidence = {"conversation_id": str(scene.conversation), "deliveries_per_tab": counts}
        wrong = [f"{label} got seq {seq} {n} times"
                 for label, per in counts.items() for seq, n in per.items() if n != 1]
        if wrong:
            return failed("; ".join(wrong), **evidence)
        return passed(f"each of {len(tabs)} tabs received each of {len(sent)} messages exactly once", **evidence)
