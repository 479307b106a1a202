"""realtime.event: each SPEC-MSG-001 event, exercised and observed.

Client -> server events are sent and their reply or broadcast is awaited; server -> client events
are provoked the way a client would (a REST send, a mark_read, a connect) and observed at the
socket that should get them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from msgops.probes import OneOf
from msgops.probes.context import Context
from msgops.probes.realtime.client import REPLY_TIMEOUT, Frame, Scene, brief, is_type, received
from msgops.probes.realtime.ephemeral import OFFLINE_TIMEOUT
from msgops.probes.realtime.evidence import realtime_probe
from msgops.results import Outcome, failed, passed

Observation = tuple[str, Frame | None, dict[str, Any]]  # (what was expected, the frame seen, extra evidence)


async def _pair(scene: Scene) -> tuple[Any, Any]:
    await scene.add_users("sender", "recipient")
    await scene.group("sender", "recipient")
    return await scene.socket("sender"), await scene.socket("recipient")


async def _join(scene: Scene) -> Observation:
    await scene.add_users("owner", "member")
    conversation = await scene.group("owner", "member")
    sock = await scene.socket("member", join=False)
    await sock.send(type="join_conversation", conversation_id=str(conversation), ref="probe-join")
    frame = await sock.wait(lambda f: f.get("ref") == "probe-join" or f.get("type") == "joined")
    ok = frame is not None and frame.get("type") == "joined" and isinstance(frame.get("last_seq"), int)
    return "joined with conversation_id and last_seq", frame if ok else None, {"answer": frame}


async def _send(scene: Scene) -> Observation:
    sender, recipient = await _pair(scene)
    client_msg_id = uuid.uuid4().hex
    await sender.send(type="send_message", conversation_id=str(scene.conversation), content="msgops event probe",
                      client_msg_id=client_msg_id, ref="probe-send")
    ack = await sender.wait(lambda f: f.get("ref") == "probe-send")
    if ack is None or ack.get("type") != "message_sent" or ack.get("client_msg_id") != client_msg_id:
        return "message_sent acknowledging the client_msg_id", None, {"answer": ack}
    delivered = await recipient.wait(received(str(ack.get("id"))))
    return ("message_sent to the sender and message_received by the recipient", ack if delivered else None,
            {"ack": ack, "recipient_got": brief(delivered) if delivered else None})


async def _received(scene: Scene) -> Observation:
    _, recipient = await _pair(scene)
    sent = await scene.send("sender", "msgops event probe")
    frame = await recipient.wait(received(sent.id))
    ok = frame is not None and frame.get("seq") == sent.seq and \
        (frame.get("message") or {}).get("sender_id") == scene.uid("sender")
    return "message_received with the message, its seq and sender", frame if ok else None, {"seq": sent.seq}


async def _read(scene: Scene) -> Observation:
    sender, recipient = await _pair(scene)
    sent = await scene.send("sender", "msgops event probe")
    if await recipient.wait(received(sent.id)) is None:
        raise RuntimeError("the probe message never reached the recipient, so it cannot be marked read")
    await recipient.send(type="mark_read", conversation_id=str(scene.conversation), seq=sent.seq, ref="probe-read")
    reader = scene.uid("recipient")
    receipt, own = await asyncio.gather(sender.wait(is_type("message_read", user_id=reader, seq=sent.seq)),
                                        recipient.wait(is_type("message_read", user_id=reader, seq=sent.seq)))
    error = recipient.matching(lambda f: f.get("ref") == "probe-read" and f.get("type") == "error")
    return ("message_read (reader, seq) at the sender's and the reader's sockets",
            receipt if receipt and own else None,
            {"sender_got": receipt, "reader_got": own, "error": error[0] if error else None})


async def _typing(scene: Scene, stop: bool) -> Observation:
    sender, recipient = await _pair(scene)
    room = str(scene.conversation)
    await sender.send(type="typing_start", conversation_id=room)
    on = await recipient.wait(is_type("user_typing", user_id=scene.uid("sender"), typing=True))
    if not stop:
        return "user_typing(typing=true) at the other member", on, {}
    if on is None:
        return "user_typing(typing=true) before the stop", None, {}
    await sender.send(type="typing_stop", conversation_id=room)
    off = await recipient.wait(lambda f: f.get("type") == "user_typing" and f.get("typing") is False)
    return "user_typing(typing=false) at the other member right after typing_stop", off, {"start": on}


async def _heartbeat(scene: Scene) -> Observation:
    await scene.add_users("user")
    sock = await scene.socket("user", join=False)
    await sock.send(type="heartbeat", ref="probe-beat")
    frame = await sock.wait(lambda f: f.get("ref") == "probe-beat")
    return "heartbeat_ack echoing the ref", frame if frame and frame.get("type") == "heartbeat_ack" else None, \
        {"answer": frame}


async def _presence(scene: Scene, offline: bool) -> Observation:
    await scene.add_users("subject", "peer")
    await scene.group("peer", "subject")
    peer = await scene.socket("peer", join=False)
    subject = await scene.socket("subject", join=False)
    who = scene.uid("subject")
    online = await peer.wait(is_type("user_online", user_id=who), REPLY_TIMEOUT)
    if not offline:
        return "user_online for a co-member who connects", online, {}
    await subject.close()
    frame = await peer.wait(is_type("user_offline", user_id=who), OFFLINE_TIMEOUT)
    return "user_offline for a co-member who disconnects", frame, {"online_before": online}


_EXERCISES: dict[str, Callable[[Scene], Awaitable[Observation]]] = {
    "join_conversation": _join,
    "send_message": _send,
    "message_sent": _send,
    "message_received": _received,
    "mark_read": _read,
    "message_read": _read,
    "typing_start": lambda s: _typing(s, stop=False),
    "user_typing": lambda s: _typing(s, stop=False),
    "typing_stop": lambda s: _typing(s, stop=True),
    "heartbeat": _heartbeat,
    "user_online": lambda s: _presence(s, offline=False),
    "user_offline": lambda s: _presence(s, offline=True),
}
EVENTS = frozenset(_EXERCISES)


@realtime_probe(
    "realtime.event",
    waits_long=True,
    what="Exercises one SPEC-MSG-001 WebSocket event (join_conversation, send_message, mark_read, typing_start, "
         "typing_stop, heartbeat -> message_sent, message_received, message_read, user_typing, user_online, "
         "user_offline) and observes the expected reply or broadcast.",
    why="Clients are written against the event list; an event that is missing or misnamed breaks them silently.",
    example="`event: mark_read` fails when no message_read reaches the sender after the recipient marks read.",
    fix="Implement the event as docs/realtime.md describes (names, fields, who receives it).",
)
async def event(ctx: Context, event: Annotated[str, OneOf(_EXERCISES, "event")]) -> Outcome:
    exercise = _EXERCISES.get(event)
    if exercise is None:
        raise ValueError(f"unknown realtime event {event!r}; expected one of {', '.join(sorted(EVENTS))}")
    async with Scene(ctx) as scene:
        expected, frame, extra = await exercise(scene)
        evidence: dict[str, Any] = {"event": event, "expected": expected,
                                    **{k: brief(v) if isinstance(v, dict) and "type" in v else v
                                       for k, v in extra.items()}}
        if frame is None:
            return failed(f"{event}: expected {expected}, not observed", **evidence)
        evidence["observed"] = brief(frame)
        return passed(f"{event}: observed {frame.get('type')}", **evidence)
