"""Helpers for the realtime tests: a real WebSocket client on loopback, and REST shortcuts.

(No tests here; the test_realtime_*.py modules import these.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support import RunningService, User


class Client:
    """A WebSocket client that keeps frames it was not asked for, so tests can wait for one type
    while others arrive."""

    def __init__(self, ws: ClientConnection, user: User | None = None) -> None:
        self.ws = ws
        self.user = user
        self.buffer: list[dict[str, Any]] = []
        self.seen: list[dict[str, Any]] = []  # every frame received, in order

    @classmethod
    async def open(cls, service: RunningService, user: User | None, *, auth: bool = True,
                   query_token: bool = False, **kwargs: Any) -> Client:
        url = f"{service.ws_url}/realtime"
        if query_token and user is not None:
            url += f"?token={user.token}"
        ws = await connect(url, compression=None, open_timeout=10, **kwargs)
        client = cls(ws, user)
        if auth and user is not None and not query_token:
            await client.send(type="auth", token=user.token)
        if auth and user is not None:
            frame = await client.next("authenticated")
            assert frame["user_id"] == str(user.id)
        return client

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame, default=str))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def _read(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout=timeout)
        frame: dict[str, Any] = json.loads(raw)
        self.seen.append(frame)
        return frame

    async def next(self, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The first frame of `kind` (whose fields equal `match`), buffered or arriving within timeout."""
        def fits(f: dict[str, Any]) -> bool:
            return f.get("type") == kind and all(str(f.get(k)) == str(v) for k, v in match.items())

        for i, frame in enumerate(self.buffer):
            if fits(frame):
                return self.buffer.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} {match or ''} within {timeout}s; got {self.buffer[-10:]}")
            try:
                frame = await self._read(left)
            except TimeoutError:
                continue
            if fits(frame):
                return frame
            self.buffer.append(frame)

    async def nothing(self, kind: str, within: float, **match: Any) -> None:
        """Assert that no frame of `kind` (matching) arrives within `within` seconds."""
        try:
            frame = await self.next(kind, timeout=within, **match)
        except AssertionError:
            return
        raise AssertionError(f"unexpected {kind}: {frame}")

    def take_all(self, kind: str) -> list[dict[str, Any]]:
        found = [f for f in self.buffer if f.get("type") == kind]
        self.buffer = [f for f in self.buffer if f.get("type") != kind]
        return found

    async def drain(self, within: float) -> None:
        """Read whatever arrives within `within` seconds into the buffer."""
        deadline = time.monotonic() + within
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            while (left := deadline - time.monotonic()) > 0:
                self.buffer.append(await self._read(left))

    async def join(self, conversation_id: Any, since_seq: int | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "join_conversation", "conversation_id": str(conversation_id)}
        if since_seq is not None:
            frame["since_seq"] = since_seq
        await self.send(**frame)
        return await self.next("joined", conversation_id=conversation_id)

    async def closed_with(self, timeout: float = 10.0) -> int | None:
        """Read until the server closes; the close code."""
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                self.buffer.append(await self._read(left))
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else 1006
        raise AssertionError(f"socket still open after {timeout}s")

    async def close(self, code: int = 1000) -> None:
        """1000 signs out (presence goes offline at once); 1001 is a page leaving, which may come back."""
        with contextlib.suppress(Exception):
            await self.ws.close(code)


class Api:
    """Async REST shortcuts against one service."""

    def __init__(self, service: RunningService) -> None:
        self.http = httpx.AsyncClient(base_url=service.url, timeout=30)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def group(self, owner: User, *members: User, title: str = "team") -> uuid.UUID:
        r = await self.http.post("/conversations", headers=owner.headers,
                                 json={"kind": "group", "title": title, "member_ids": [str(m.id) for m in members]})
        assert r.status_code == 201, r.text
        return uuid.UUID(r.json()["id"])

    async def send(self, user: User, conversation_id: uuid.UUID, content: str,
                   client_msg_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"content": content}
        if client_msg_id:
            body["client_msg_id"] = client_msg_id
        r = await self.http.post(f"/conversations/{conversation_id}/messages", headers=user.headers, json=body)
        assert r.status_code in (200, 201), r.text
        result: dict[str, Any] = r.json()
        return result

    async def remove(self, owner: User, conversation_id: uuid.UUID, member: User) -> None:
        r = await self.http.delete(f"/conversations/{conversation_id}/members/{member.id}", headers=owner.headers)
        assert r.status_code == 204, r.text

    async def community(self, owner: User, name: str = "channel") -> uuid.UUID:
        r = await self.http.post("/communities", headers=owner.headers, json={"name": name})
        assert r.status_code == 201, r.text
        return uuid.UUID(r.json()["id"])

    async def join_community(self, user: User, community_id: uuid.UUID) -> None:
        r = await self.http.post(f"/communities/{community_id}/join", headers=user.headers)
        assert r.status_code in (200, 201), r.text

    async def post_community(self, user: User, community_id: uuid.UUID, content: str) -> dict[str, Any]:
        r = await self.http.post(f"/communities/{community_id}/messages", headers=user.headers,
                                 json={"content": content})
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result
