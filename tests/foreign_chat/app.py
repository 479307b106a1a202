"""A small chat service that is not the reference: other routes, other JSON field names, Socket.IO only.

Rooms, members and posts live in memory. Users are HS256 JWTs (its own secret) and come to exist on
`GET /api/me`. Realtime is Socket.IO at path /ws, namespace /chat, `auth: {jwt}`: `enterRoom` (acked),
`startTyping`/`stopTyping` from clients; `newPost` and `someoneTyping` to members who entered the room.

`Breaks` switches off one protection at a time, so msgops's checks can be shown to fail here too.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import jwt
import socketio
from fastapi import FastAPI, Header, HTTPException, Request, Response
from pydantic import BaseModel

SECRET = "foreign-chat-secret-0123456789abcdef0123456789"
HEADERS = {"Content-Security-Policy": "default-src 'none'", "X-Frame-Options": "DENY",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Permissions-Policy": "camera=(), microphone=()"}


@dataclass
class Breaks:
    leak_email: bool = False          # posts carry their author's email
    drop_header: str | None = None    # one security header is not sent
    outsiders_enter: bool = False     # enterRoom does not check membership
    no_rate_limit: bool = False       # posting is not limited


@dataclass
class Room:
    id: str
    name: str
    owner: str
    members: set[str]
    posts: list[dict[str, Any]] = field(default_factory=list)


class NewRoom(BaseModel):
    name: str
    members: list[str] = []


class NewPost(BaseModel):
    text: str
    nonce: str | None = None


class RoomOut(BaseModel):
    roomId: str
    name: str
    people: list[str]


class RoomEnvelope(BaseModel):
    room: RoomOut


class PostOut(BaseModel):
    postId: str
    seq: int
    text: str
    authorId: str
    roomId: str
    authorEmail: str | None = None


class PostEnvelope(BaseModel):
    post: PostOut


def create_app(breaks: Breaks | None = None) -> Any:
    breaks = breaks or Breaks()
    api = FastAPI(title="foreign chat")
    users: dict[str, str] = {}  # id -> email
    rooms: dict[str, Room] = {}
    hits: dict[str, deque[float]] = defaultdict(deque)
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[])
    sessions: dict[str, str] = {}  # sid -> user id
    entered: dict[str, set[str]] = defaultdict(set)  # room id -> sids

    def who(authorization: str | None) -> str:
        token = (authorization or "").removeprefix("Bearer ").strip()
        try:
            claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated")
        except jwt.PyJWTError:
            raise HTTPException(401, "sign in") from None
        users.setdefault(str(claims["sub"]), str(claims.get("email", "")))
        return str(claims["sub"])

    def member_room(room_id: str, user: str) -> Room:
        room = rooms.get(room_id)
        if room is None or user not in room.members:
            raise HTTPException(404, "no such room")
        return room

    @api.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in HEADERS.items():
            if name != breaks.drop_header:
                response.headers[name] = value
        return response

    @api.get("/api/me")
    async def me(authorization: str | None = Header(None)) -> dict[str, Any]:
        user = who(authorization)
        return {"userId": user}

    @api.post("/api/rooms", status_code=201, operation_id="createRoom", response_model=RoomEnvelope)
    async def new_room(body: NewRoom, authorization: str | None = Header(None)) -> dict[str, Any]:
        user = who(authorization)
        room = Room(str(uuid.uuid4()), body.name, user, {user, *body.members})
        rooms[room.id] = room
        return {"room": {"roomId": room.id, "name": room.name, "people": sorted(room.members)}}

    @api.delete("/api/rooms/{room_id}/people/{person}", status_code=204, operation_id="removePerson")
    async def remove(room_id: str, person: str, authorization: str | None = Header(None)) -> Response:
        room = member_room(room_id, who(authorization))
        room.members.discard(person)
        for sid in [s for s in entered[room_id] if sessions.get(s) == person]:
            entered[room_id].discard(sid)
        return Response(status_code=204)

    @api.post("/api/rooms/{room_id}/posts", status_code=201, operation_id="sendPost", response_model=PostEnvelope,
              response_model_exclude_none=True)
    async def post(room_id: str, body: NewPost, response: Response,
                   authorization: str | None = Header(None)) -> dict[str, Any]:
        user = who(authorization)
        room = member_room(room_id, user)
        window = hits[user]
        now = time.monotonic()
        while window and now - window[0] > 60:
            window.popleft()
        if not breaks.no_rate_limit and len(window) >= 10:
            raise HTTPException(429, "slow down", headers={"Retry-After": str(int(60 - (now - window[0])) + 1)})
        window.append(now)
        item: dict[str, Any] = {"postId": str(uuid.uuid4()), "seq": len(room.posts) + 1, "text": body.text,
                                "authorId": user, "roomId": room_id}
        if breaks.leak_email:
            item["authorEmail"] = users.get(user, "")
        room.posts.append(item)
        for sid in list(entered[room_id]):
            await sio.emit("newPost", {"roomId": room_id, "seq": item["seq"], "post": item}, to=sid, namespace="/chat")
        return {"post": item}

    @api.get("/api/rooms/{room_id}/posts", operation_id="listPosts")
    async def posts(room_id: str, authorization: str | None = Header(None)) -> dict[str, Any]:
        return {"posts": member_room(room_id, who(authorization)).posts}

    @sio.on("connect", namespace="/chat")
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            user = who("Bearer " + str((auth or {}).get("jwt", "")))
        except HTTPException:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized") from None
        sessions[sid] = user

    @sio.on("disconnect", namespace="/chat")
    async def disconnect(sid: str, reason: str = "") -> None:
        sessions.pop(sid, None)
        for sids in entered.values():
            sids.discard(sid)

    @sio.on("enterRoom", namespace="/chat")
    async def enter(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        room = rooms.get(str(data.get("roomId")))
        if room is None or (sessions.get(sid) not in room.members and not breaks.outsiders_enter):
            return {"ok": False, "error": "no such room"}
        entered[room.id].add(sid)
        return {"ok": True, "roomId": room.id, "lastSeq": len(room.posts)}

    async def typing(sid: str, data: dict[str, Any], on: bool) -> None:
        room_id = str(data.get("roomId"))
        if sid not in entered.get(room_id, set()):
            return
        for other in entered[room_id] - {sid}:
            await sio.emit("someoneTyping", {"roomId": room_id, "userId": sessions.get(sid), "typing": on},
                           to=other, namespace="/chat")

    @sio.on("startTyping", namespace="/chat")
    async def start(sid: str, data: dict[str, Any]) -> None:
        await typing(sid, data, True)

    @sio.on("stopTyping", namespace="/chat")
    async def stop(sid: str, data: dict[str, Any]) -> None:
        await typing(sid, data, False)

    from tests.foreign_chat.files import router as files_router  # uploads, signed links, alerts
    api.include_router(files_router(rooms, who, breaks))
    return socketio.ASGIApp(sio, other_asgi_app=api, socketio_path="ws")


# How msgops is told about this service (msgops.yaml sections).
PERSONAS = {"source": "hs256", "secret_env": "FOREIGN_CHAT_SECRET", "create": {"request": "GET /api/me"},
            "grant_role": None, "delete": None}
API = {"defaults": "none", "operations": {
    "create_group": {"request": "POST /api/rooms", "json": {"name": "{title}", "members": "{member_ids}"},
                     "response": {"id": "room.roomId"}},
    "send_message": {"request": "POST /api/rooms/{conversation_id}/posts",
                     "json": {"text": "{content}", "nonce": "{client_msg_id}"},
                     "response": {"id": "post.postId", "seq": "post.seq"}},
    "remove_member": {"request": "DELETE /api/rooms/{conversation_id}/people/{user_id}"},
    "list_messages": {"request": "GET /api/rooms/{conversation_id}/posts", "response": {"messages": "posts"}},
}}
REALTIME = {"protocol": "socketio", "path": "/ws", "namespace": "/chat", "auth": {"jwt": "{token}"}, "acks": True,
            "events": {"join_conversation": "enterRoom", "message_received": "newPost", "typing_start": "startTyping",
                       "typing_stop": "stopTyping", "user_typing": "someoneTyping"},
            "fields": {"conversation_id": "roomId", "message": "post", "id": "postId", "user_id": "userId",
                       "content": "text", "sender_id": "authorId", "last_seq": "lastSeq"}}
