"""A probe's WebSocket client and the REST calls that set up its scenes.

`Socket` reads in the background and keeps every frame with its arrival time, so a probe can wait
for one frame while others arrive, and afterwards inspect everything a socket was sent (the leak
checks need exactly that). `Scene` creates probe users and a group conversation through the REST
API; everything it creates belongs to `ctx.users()` users and is erased with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from msgops.probes.context import CannotEvaluate, Context, ProbeUser

Frame = dict[str, Any]
Predicate = Callable[[Frame], bool]

OPEN_TIMEOUT = 5.0
REPLY_TIMEOUT = 3.0   # a frame the server should send at once (authenticated, joined, acks)
SETTLE = 0.3          # after the expected frames arrived: how long stray ones get to show up


class RealtimeUnavailable(CannotEvaluate):
    """The WebSocket endpoint cannot be used at all (missing route, refused handshake, down)."""


def ws_url(ctx: Context) -> str:
    ctx.require_api()
    url = ctx.target.ws_url
    assert url is not None
    return url


def mask(token: str) -> str:
    return token[:8] + "…"


def is_type(kind: str, **fields: Any) -> Predicate:
    return lambda f: f.get("type") == kind and all(str(f.get(k)) == str(v) for k, v in fields.items())


class Socket:
    def __init__(self, ws: ClientConnection, label: str) -> None:
        self.ws = ws
        self.label = label  # who this socket is in evidence ("member B", "stranger C")
        self.frames: list[Frame] = []
        self.times: list[float] = []
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.closed = False
        self._news = asyncio.Event()
        self._task = asyncio.create_task(self._read(), name=f"probe-socket-{label}")

    @classmethod
    async def open(cls, ctx: Context, label: str, query: str = "") -> Socket:
        url = ws_url(ctx) + query
        try:
            ws = await connect(url, compression=None, open_timeout=OPEN_TIMEOUT, max_size=1 << 20)
        except InvalidStatus as exc:
            raise RealtimeUnavailable(f"no WebSocket at {ws_url(ctx)}: the handshake was answered with HTTP "
                                      f"{exc.response.status_code}") from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise RealtimeUnavailable(f"cannot open a WebSocket at {ws_url(ctx)}: {type(exc).__name__}: {exc}"
                                      ) from None
        return cls(ws, label)

    @classmethod
    async def authenticated(cls, ctx: Context, user: ProbeUser, label: str) -> Socket:
        """Open, send the auth frame, and wait for `authenticated`; anything else means realtime is broken."""
        sock = await cls.open(ctx, label)
        await sock.send(type="auth", token=user.token)
        frame = await sock.wait(lambda f: f.get("type") in ("authenticated", "error"), REPLY_TIMEOUT)
        if frame is None or frame.get("type") != "authenticated":
            await sock.close()
            why = (f"closed {sock.close_code} {sock.close_reason!r}" if sock.closed
                   else f"answered {frame}" if frame else f"no answer within {REPLY_TIMEOUT:g}s")
            raise RealtimeUnavailable(f"a valid token was not accepted at {ws_url(ctx)} ({label}): {why}")
        return sock

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    frame = {"type": "<not JSON>", "raw": str(raw)[:200]}
                self.frames.append(frame if isinstance(frame, dict) else {"type": "<not an object>"})
                self.times.append(time.perf_counter())
                self._news.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason or ""
            self._news.set()

    async def send(self, **frame: Any) -> bool:
        """False when the server already closed the socket (a refusal some probes expect)."""
        try:
            await self.ws.send(json.dumps(frame, default=str))
        except ConnectionClosed:
            return False
        return True

    async def wait(self, predicate: Predicate, timeout: float = REPLY_TIMEOUT, after: int = 0) -> Frame | None:
        """The first frame from index `after` on that satisfies `predicate`, or None on timeout/close."""
        deadline = time.perf_counter() + timeout
        while True:
            seen = len(self.frames)
            for frame in self.frames[after:seen]:
                if predicate(frame):
                    return frame
            after = seen
            if self.closed:
                return None
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            self._news.clear()
            if len(self.frames) != seen:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), timeout=left)

    async def wait_closed(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout)
        return self.closed

    def arrival(self, frame: Frame) -> float:
        return self.times[next(i for i, f in enumerate(self.frames) if f is frame)]

    def matching(self, predicate: Predicate, after: int = 0) -> list[Frame]:
        return [f for f in self.frames[after:] if predicate(f)]

    async def join(self, conversation_id: uuid.UUID, since_seq: int | None = None) -> Frame:
        """Join and wait for `joined`; CannotEvaluate (probe error) when a member cannot join."""
        start = len(self.frames)
        frame: dict[str, Any] = {"type": "join_conversation", "conversation_id": str(conversation_id),
                                 "ref": f"join-{self.label}"}
        if since_seq is not None:
            frame["since_seq"] = since_seq
        await self.send(**frame)
        reply = await self.wait(lambda f: f.get("ref") == frame["ref"] or
                                (f.get("type") == "joined" and f.get("conversation_id") == str(conversation_id)),
                                REPLY_TIMEOUT, after=start)
        if reply is None or reply.get("type") != "joined":
            raise CannotEvaluate(f"{self.label} could not join its own conversation {conversation_id}: "
                               f"{reply or 'no answer'}")
        return reply

    async def close(self) -> None:
        """A normal close (1000), as a client signing out sends."""
        with contextlib.suppress(Exception):
            await self.ws.close(1000)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, timeout=2)


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
    conversation: uuid.UUID | None = None

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
        return str(self.users[label].id)

    async def group(self, owner: str, *members: str) -> uuid.UUID:
        user = self.users[owner]
        body = {"kind": "group", "title": f"msgops probe {self.ctx.run_id}",
                "member_ids": [self.uid(m) for m in members]}
        r = await self.ctx.http.post("/conversations", json=body, headers=user.headers)
        if r.status_code != 201:
            raise CannotEvaluate(f"could not create a probe conversation: POST /conversations answered "
                               f"{r.status_code} {r.text[:200]}")
        self.conversation = uuid.UUID(r.json()["id"])
        return self.conversation

    async def socket(self, label: str, join: bool = True, tab: str = "") -> Socket:
        sock = await Socket.authenticated(self.ctx, self.users[label], f"{label}{tab}")
        self.sockets.append(sock)
        if join and self.conversation is not None:
            await sock.join(self.conversation)
        return sock

    async def send(self, sender: str, content: str) -> Sent:
        started = time.perf_counter()
        r = await self.ctx.http.post(f"/conversations/{self.conversation}/messages",
                                     json={"content": content, "client_msg_id": uuid.uuid4().hex},
                                     headers=self.users[sender].headers)
        if r.status_code != 201:
            raise CannotEvaluate(f"could not send a probe message: POST /conversations/{{id}}/messages answered "
                               f"{r.status_code} {r.text[:200]}")
        body = r.json()
        return Sent(str(body["id"]), int(body["seq"]), started)

    async def remove(self, owner: str, member: str) -> None:
        r = await self.ctx.http.delete(f"/conversations/{self.conversation}/members/{self.uid(member)}",
                                       headers=self.users[owner].headers)
        if r.status_code != 204:
            raise CannotEvaluate(f"could not remove a probe member: DELETE /conversations/{{id}}/members/{{user}} "
                               f"answered {r.status_code} {r.text[:200]}")

    def who(self, user_id: object) -> str:
        """A user id in evidence, labelled with its role in the scene."""
        for label, user in self.users.items():
            if str(user.id) == str(user_id):
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
