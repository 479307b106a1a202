"""One socket's session: authenticate, then read frames one at a time and act on them.

Frames from one socket are handled in order (a join completes before the send that follows it).
Everything a user asks for runs in a transaction as that user, so RLS decides; the hub is told
the result. A bad frame is answered with an `error` frame and the session goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import psycopg
from fastapi import HTTPException
from starlette.websockets import WebSocket

from service import http_errors
from service.auth import AuthError, Claims
from service.deps import ensure_profile
from service.realtime import protocol as p
from service.realtime.connection import Connection
from service.realtime.delivery import COMMUNITY, CONVERSATION, RoomKind
from service.realtime.hub import Hub
from service.realtime.membership import RoomKey, check_join, member_of
from service.state import AppState

log = logging.getLogger("service.realtime")

# REST status -> error code, for errors raised by the shared messaging functions.
_STATUS_CODES: dict[int, p.ErrorCode] = {
    400: "invalid_frame", 401: "invalid_token", 403: "forbidden", 404: "not_found", 409: "conflict",
    422: "invalid_frame", 429: "rate_limited", 503: "unavailable",
}
_SQLSTATE_CODES: dict[str, p.ErrorCode] = {
    "42501": "forbidden", "P0429": "rate_limited", "23505": "conflict", "23514": "invalid_frame",
    "22001": "invalid_frame", "23503": "invalid_frame", "22P02": "invalid_frame", "22023": "invalid_frame",
    "P0002": "not_found", "57014": "unavailable",
}


def _fail(code: p.ErrorCode, message: str, frame: Any = None, **extra: Any) -> p.FrameError:
    return p.FrameError(p.Error(code=code, message=message, ref=getattr(frame, "ref", None),
                                request_type=getattr(frame, "type", None), **extra))


class Session:
    __slots__ = ("_auth_ref", "config", "hub", "state", "ws")

    def __init__(self, state: AppState, hub: Hub, websocket: WebSocket) -> None:
        self.state = state
        self.hub = hub
        self.ws = websocket
        self.config = hub.config
        self._auth_ref: str | None = None

    async def run(self) -> None:
        await self.ws.accept()
        if self.hub.stopping:
            await self._close_quietly(p.CLOSE_GOING_AWAY, "server shutting down")
            return
        try:
            claims = await self._authenticate()
        except Exception:  # e.g. the database is down while creating the profile: a clear close, no traceback
            log.exception("realtime authentication failed")
            await self._close_quietly(1011, "internal error; retry later")
            return
        if claims is None:
            return
        conn = Connection(self.ws, claims, self.config.outbox_frames, self.config.frames_per_second)
        self.hub.register(conn)
        log.info("websocket connected", extra={"user_id": str(conn.user_id), "conn": conn.id})
        try:
            self._arm_expiry(conn)
            conn.send(p.Authenticated(user_id=conn.user_id, expires_at=self._exp(claims),
                                      ref=self._auth_ref).encode(), "authenticated")
            await self._read_loop(conn)
        finally:
            self.hub.unregister(conn)
            await conn.finish()
            log.info("websocket closed", extra={"user_id": str(conn.user_id), "conn": conn.id,
                                                "code": conn.close_code, "reason": conn.close_reason})

    # Authentication ---------------------------------------------------------------------------

    async def _authenticate(self) -> Claims | None:
        """`?token=` or, preferably (URLs end up in logs), an `auth` frame within auth_timeout."""
        token = self.ws.query_params.get("token")
        if token is None:
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout=self.config.auth_timeout)
            except TimeoutError:
                await self._refuse("authentication timed out: send {\"type\":\"auth\",\"token\":...} first")
                return None
            if message["type"] == "websocket.disconnect":
                return None
            try:
                frame = p.parse_client_frame(message.get("text", message.get("bytes")), self.config.max_frame_bytes)
            except p.FrameError as exc:
                await self._refuse(f"expected an auth frame: {exc.error.message}")
                return None
            if not isinstance(frame, p.Auth):
                await self._refuse("the first frame must be {\"type\":\"auth\",\"token\":...}")
                return None
            token, self._auth_ref = frame.token, frame.ref
        try:
            claims = self._verify(token)
        except AuthError as exc:
            await self._refuse(str(exc))
            return None
        if claims.sub not in self.state.known_users:
            await ensure_profile(self.state, claims)
        return claims

    def _verify(self, token: str) -> Claims:
        claims = self.state.verifier.verify(token)
        if claims.is_service:
            raise AuthError("service tokens cannot open realtime sessions; use a user's token")
        return claims

    async def _refuse(self, reason: str) -> None:
        await self._close_quietly(p.CLOSE_UNAUTHORIZED, reason)

    async def _close_quietly(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):  # the peer may be gone already
            await self.ws.close(code, reason[:120])

    @staticmethod
    def _exp(claims: Claims) -> int:
        return int(claims.raw.get("exp", 0))

    def _arm_expiry(self, conn: Connection) -> None:
        if conn.expiry is not None:
            conn.expiry.cancel()
        delay = max(0.0, self._exp(conn.claims) - time.time())
        conn.expiry = asyncio.get_running_loop().call_later(
            delay, conn.request_close, p.CLOSE_TOKEN_EXPIRED, "token expired")

    # Frames -----------------------------------------------------------------------------------

    async def _read_loop(self, conn: Connection) -> None:
        while True:
            message = await conn.receive()
            if message is None:
                return
            if message["type"] == "websocket.disconnect":
                conn.signed_off = message.get("code") == p.CLOSE_NORMAL
                conn.request_close(1006, "client went away")
                return
            if not conn.bucket.take():
                conn.send(p.Error(code="rate_limited", message="too many frames; slow down",
                                  retry_after=1).encode(), "error")
                continue
            try:
                frame = p.parse_client_frame(message.get("text", message.get("bytes")), self.config.max_frame_bytes)
                await self._handle(conn, frame)
            except p.FrameError as exc:
                conn.send(exc.error.encode(), "error")
            except Exception:  # never let one frame end the session with a traceback
                log.exception("realtime frame handling failed", extra={"conn": conn.id})
                conn.send(p.Error(code="internal", message="internal error").encode(), "error")
            if conn.closing:
                return

    async def _handle(self, conn: Connection, frame: Any) -> None:
        if isinstance(frame, p.JoinConversation):
            await self._join(conn, CONVERSATION, frame.conversation_id, frame.since_seq, frame)
        elif isinstance(frame, p.JoinCommunity):
            await self._join(conn, COMMUNITY, frame.community_id, frame.since_seq, frame)
        elif isinstance(frame, p.LeaveConversation | p.LeaveCommunity):
            self._leave(conn, frame)
        elif isinstance(frame, p.SendMessage):
            await self._send_message(conn, frame)
        elif isinstance(frame, p.MarkRead):
            await self._mark_read(conn, frame)
        elif isinstance(frame, p.TypingStart | p.TypingStop):
            key = self._room_key(frame)
            if key not in conn.subs:
                raise _fail("not_found", "join the room before typing in it", frame)
            self.hub.typing(conn, key, isinstance(frame, p.TypingStart))
            if isinstance(frame, p.TypingStart):
                self.hub.heartbeat(conn)  # typing is activity
        elif isinstance(frame, p.Heartbeat):
            self.hub.heartbeat(conn)
            conn.send(p.HeartbeatAck(server_time=time.time(), ref=frame.ref).encode(), "heartbeat_ack")
        elif isinstance(frame, p.RefreshToken | p.Auth):
            await self._refresh(conn, frame)

    @staticmethod
    def _room_key(frame: Any) -> RoomKey:
        if getattr(frame, "conversation_id", None) is not None:
            return (CONVERSATION.name, frame.conversation_id)
        return (COMMUNITY.name, frame.community_id)

    async def _join(self, conn: Connection, kind: RoomKind, room_id: Any, since: int | None, frame: Any) -> None:
        check = await check_join(self.state, conn.claims, kind, room_id)
        if check is None:
            # Same answer for "does not exist" and "not yours": never reveal a private room.
            raise _fail("not_found", f"{kind.name} not found, or you are not a member", frame)
        cursor = check.last_seq
        if since is not None:
            if check.last_seq - since > self.config.max_backfill:
                raise _fail("resume_gap_too_large",
                            f"more than {self.config.max_backfill} messages were missed; page through "
                            f"GET /{kind.name}s/{{id}}/messages, then join with a later since_seq", frame)
            cursor = min(since, check.last_seq)
        online = None
        if check.members is not None:
            online = self.hub.online([u for u in check.members if u != conn.user_id])
        # `joined` is queued before the subscription exists, so it precedes every delivery.
        conn.send(p.Joined(last_seq=check.last_seq, since_seq=since, online=online, ref=frame.ref,  # type: ignore[arg-type]
                           **{kind.id_field: room_id}).encode(), "joined")
        self.hub.subscribe(conn, kind, room_id, cursor, check.last_seq)

    def _leave(self, conn: Connection, frame: Any) -> None:
        key = self._room_key(frame)
        if not self.hub.unsubscribe(conn, key):
            raise _fail("not_found", "you have not joined that room", frame)
        conn.send(p.Left(reason="left", ref=frame.ref, **{f"{key[0]}_id": key[1]}).encode(), "left")  # type: ignore[arg-type]

    async def _send_message(self, conn: Connection, frame: p.SendMessage) -> None:
        from service import messaging  # the REST send path: same validation, limits and publish

        self.hub.heartbeat(conn)
        kind: messaging.RoomKind = "conversation" if frame.conversation_id is not None else "community"
        room = frame.conversation_id or frame.community_id
        assert room is not None  # the frame names exactly one room
        try:
            row, created = await messaging.send_to_room(self.state, conn.claims, kind, room, frame.content,
                                                        client_msg_id=frame.client_msg_id, parent_id=frame.parent_id)
        except (HTTPException, psycopg.Error) as exc:
            raise self._as_error(exc, frame) from None
        conn.send(p.MessageSent(conversation_id=frame.conversation_id, community_id=frame.community_id,
                                client_msg_id=frame.client_msg_id, id=row["id"], seq=row["seq"],
                                created_at=row["created_at"], duplicate=not created, ref=frame.ref).encode(),
                  "message_sent")

    async def _mark_read(self, conn: Connection, frame: p.MarkRead) -> None:
        """Answered by the `message_read` event, which reaches all of the reader's sockets."""
        from service import messaging

        try:
            await messaging.mark_read(self.state, conn.claims, frame.conversation_id, frame.seq)
        except (HTTPException, psycopg.Error) as exc:
            raise self._as_error(exc, frame) from None

    async def _refresh(self, conn: Connection, frame: p.RefreshToken | p.Auth) -> None:
        try:
            claims = self._verify(frame.token)
        except AuthError as exc:
            raise _fail("invalid_token", f"refresh refused: {exc}; the current token stays until it expires",
                        frame) from None
        if claims.sub != conn.user_id:
            raise _fail("invalid_token", "a refreshed token must be for the same user", frame)
        conn.claims = claims
        self._arm_expiry(conn)
        # Claims can carry a new role: what this socket watches is decided again.
        keys = list(conn.subs)
        if keys:
            allowed = await member_of(self.state, conn.claims, keys)
            for key in keys:
                if key not in allowed:
                    self.hub.unsubscribe(conn, key, reason="removed")
        conn.send(p.TokenRefreshed(expires_at=self._exp(claims), ref=frame.ref).encode(), "token_refreshed")

    @staticmethod
    def _as_error(exc: HTTPException | psycopg.Error, frame: Any) -> p.FrameError:
        client_msg_id = getattr(frame, "client_msg_id", None)
        if isinstance(exc, HTTPException):
            code = _STATUS_CODES.get(exc.status_code, "internal")
            retry = (exc.headers or {}).get("Retry-After")
            detail = exc.detail if isinstance(exc.detail, str) else "request refused"
            details = exc.detail if isinstance(exc.detail, list) else None
            return _fail(code, detail, frame, client_msg_id=client_msg_id,
                         retry_after=int(retry) if retry and retry.isdigit() else None, details=details)
        code = _SQLSTATE_CODES.get(exc.sqlstate or "", "internal")
        _, message, _ = http_errors.answer(exc)  # logged there; PostgreSQL's own words stay in the log
        return _fail(code, "request refused" if code == "internal" else message, frame, client_msg_id=client_msg_id)
