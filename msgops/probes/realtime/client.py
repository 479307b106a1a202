"""A probe's realtime client and the REST calls that set up its scenes.

Sockets (`recording.Socket`, opened through the adapter msgops.yaml's `realtime:` names: the reference
WebSocket protocol or Socket.IO) keep every event with its arrival time. `Scene` creates probe users
and a group conversation through the REST API; everything it creates belongs to `ctx.users()` users
and is erased with them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from msgops.probes.context import CannotEvaluate, Context, ProbeUser
from msgops.probes.http.common import operation
from msgops.probes.realtime import adapters
from msgops.probes.realtime.recording import (
    OPEN_TIMEOUT,
    REPLY_TIMEOUT,
    SETTLE,
    Frame,
    Predicate,
    RealtimeUnavailable,
    Socket,
)

__all__ = ["OPEN_TIMEOUT", "REPLY_TIMEOUT", "SETTLE", "Frame", "Predicate", "RealtimeUnavailable", "Scene",
           "Socket", "brief", "is_type", "received"]


def ws_url(ctx: Context) -> str:
    """Where the realtime probes connect, as evidence names it."""
    return adapters.endpoint(ctx)


def mask(token: str) -> str:
    return token[:8] + "…"


def is_type(kind: str, **fields: Any) -> Predicate:
    return lambda f: f.get("type") == kind and all(str(f.get(k)) == str(v) for k, v in fields.items())


# --- REST set-up -----------------------------------------------------------------------------


@dataclass
class Sent:
    id: str
    seq: int
    at: float  # perf_counter just before the request


@dataclass
class Scene:
    """Probe users, a group conversation among some of them, and the sockets opened for the scene."""

    ctx: Context
    users: dict[str, ProbeUser] = field(default_factory=dict)
    sockets: list[Socket] = field(default_factory=list)
    conversation: str | None = None  # opaque, as the API gave it

    async def __aenter__(self) -> Scene:
        ws_url(self.ctx)
        self.ctx.personas  # noqa: B018 - NotRun before anything is opened when there is no way to get users
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(s.close() for s in self.sockets), return_exceptions=True)

    async def add_users(self, *labels: str) -> None:
        made = await self.ctx.users(*["attendee"] * len(labels))
        self.users.update(zip(labels, made, strict=True))

    def uid(self, label: str) -> str:
        return self.users[label].id

    async def group(self, owner: str, *members: str) -> str:
        made = await operation(self.ctx, self.users[owner], "create_group", "create a probe conversation",
                               title=f"msgops probe {self.ctx.run_id}", member_ids=[self.uid(m) for m in members])
        if made.get("id") in (None, ""):
            raise CannotEvaluate(f"creating a probe conversation gave no id ({made!r}); map the response's id "
                                 "in api.operations.create_group.response")
        self.conversation = str(made["id"])
        return self.conversation

    async def socket(self, label: str, join: bool = True, tab: str = "") -> Socket:
        sock = await adapters.authenticated(self.ctx, self.users[label].token, f"{label}{tab}")
        self.sockets.append(sock)
        if join and self.conversation is not None:
            await sock.join(self.conversation)
        return sock

    async def send(self, sender: str, content: str) -> Sent:
        started = time.perf_counter()
        body = await operation(self.ctx, self.users[sender], "send_message", "send a probe message",
                               conversation_id=str(self.conversation), content=content,
                               client_msg_id=uuid.uuid4().hex)
        seq = body.get("seq")
        return Sent(str(body["id"]), int(seq) if isinstance(seq, int) else -1, started)

    async def remove(self, owner: str, member: str) -> None:
        await operation(self.ctx, self.users[owner], "remove_member", "remove a probe member",
                        conversation_id=str(self.conversation), user_id=self.uid(member))

    def who(self, user_id: object) -> str:
        """A user id in evidence, labelled with its role in the scene."""
        for label, user in self.users.items():
            if user.id == str(user_id):
                return f"{label} ({user.id})"
        return str(user_id)


def received(message_id: str) -> Predicate:
    return lambda f: f.get("type") == "message_received" and (f.get("message") or {}).get("id") == message_id


def brief(frame: Frame) -> Frame:
    """A frame for evidence: message content trimmed."""
    out = dict(frame)
    if isinstance(out.get("message"), dict):
        message = dict(out["message"])
        if isinstance(message.get("content"), str):
            message["content"] = message["content"][:80]
        out["message"] = message
    return out
