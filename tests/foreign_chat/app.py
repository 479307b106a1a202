"""A small chat service that is not the reference: other routes, other JSON field names, Socket.IO only.

Rooms, members and posts live in memory. Users are HS256 JWTs (its own secret) and come to exist on
`GET /api/me`. Posts are edited (PUT) and deleted (DELETE, a `gone` placeholder stays) by their author;
a room's posts page by seq (`limit`, `before`, `after`, `since`, `more`); `/search?text=` finds posts
with a `snippet` that marks the match; `POST /seen {upTo}` moves one's read position, never backwards,
and `GET /api/rooms` lists one's rooms with what is `unseen`.
Realtime is Socket.IO at path /ws, namespace /chat, `auth: {jwt}`: `enterRoom` (acked),
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
    anyone_edits: bool = False        # any member may edit or delete any post
    search_everywhere: bool = False   # search ignores the room and who asks
    page_repeats: bool = False        # `before` includes the post it names
    unseen_stays_zero: bool = False   # rooms never count unseen posts


@dataclass
class Room:
    id: str
    name: str
    owner: str
    members: set[str]
    posts: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)  # user id -> the last seq they have seen


class NewRoom(BaseModel):
    name: str
    members: list[str] = []


class NewPost(BaseModel):
    text: str
    nonce: str | None = None


class PostEdit(BaseModel):
    text: str


class Seen(BaseModel):
    upTo: int


class RoomOut(BaseModel):
    roomId: str
    name: str
    people: list[str]


class RoomEnvelope(BaseModel):
    room: RoomOut


class PostOut(BaseModel):
    postId: str
    seq: int
    text: str | None
    authorId: str
    roomId: str
    gone: bool = False
    editedAt: float | None = None
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
                                "authorId": user, "roomId": room_id, "gone": False, "editedAt": None}
        if breaks.leak_email:
            item["authorEmail"] = users.get(user, "")
        room.posts.append(item)
        for sid in list(entered[room_id]):
            await sio.emit("newPost", {"roomId": room_id, "seq": item["seq"], "post": item}, to=sid, namespace="/chat")
        return {"post": item}

    @api.get("/api/rooms/{room_id}/posts", operation_id="listPosts")
    async def posts(room_id: str, limit: int = 50, before: int | None = None, after: int | None = None,
                    since: int | None = None, authorization: str | None = Header(None)) -> dict[str, Any]:
        room = member_room(room_id, who(authorization))
        if after is not None or since is not None:  # forwards from a seq
            start = after if after is not None else since
            later = [p for p in room.posts if p["seq"] > (start or 0)]
            return {"posts": later[:limit], "more": len(later) > limit}
        earlier = [p for p in room.posts if before is None or p["seq"] < before
                   or (breaks.page_repeats and p["seq"] == before)]
        return {"posts": earlier[-limit:], "more": len(earlier) > limit}

    def own_post(room_id: str, post_id: str, user: str) -> dict[str, Any]:
        post = find_post(room_id, post_id, user)
        if post["authorId"] != user and not breaks.anyone_edits:
            raise HTTPException(403, "not your post")
        return post

    def find_post(room_id: str, post_id: str, user: str) -> dict[str, Any]:
        post = next((p for p in member_room(room_id, user).posts if p["postId"] == post_id), None)
        if post is None:
            raise HTTPException(404, "no such post")
        return post

    @api.get("/api/rooms/{room_id}/posts/{post_id}", operation_id="fetchPost", response_model=PostEnvelope)
    async def one_post(room_id: str, post_id: str, authorization: str | None = Header(None)) -> dict[str, Any]:
        return {"post": find_post(room_id, post_id, who(authorization))}

    @api.put("/api/rooms/{room_id}/posts/{post_id}", operation_id="editPost", response_model=PostEnvelope)
    async def edit(room_id: str, post_id: str, body: PostEdit,
                   authorization: str | None = Header(None)) -> dict[str, Any]:
        post = own_post(room_id, post_id, who(authorization))
        post.update(text=body.text, editedAt=time.time())
        return {"post": post}

    @api.delete("/api/rooms/{room_id}/posts/{post_id}", status_code=204, operation_id="deletePost")
    async def delete(room_id: str, post_id: str, authorization: str | None = Header(None)) -> Response:
        own_post(room_id, post_id, who(authorization)).update(text=None, gone=True)
        return Response(status_code=204)

    @api.get("/api/rooms/{room_id}/search", operation_id="searchPosts")
    async def search(room_id: str, text: str, authorization: str | None = Header(None)) -> dict[str, Any]:
        user = who(authorization)
        where = list(rooms.values()) if breaks.search_everywhere else [member_room(room_id, user)]
        hits = [{**p, "snippet": (p["text"] or "").replace(text, f"<mark>{text}</mark>")}
                for room in where for p in room.posts if text in (p["text"] or "")]
        return {"hits": hits}

    def unseen(room: Room, user: str) -> int:
        if breaks.unseen_stays_zero:
            return 0
        return sum(1 for p in room.posts if p["seq"] > room.seen.get(user, 0) and p["authorId"] != user)

    @api.post("/api/rooms/{room_id}/seen", operation_id="markSeen")
    async def seen(room_id: str, body: Seen, authorization: str | None = Header(None)) -> dict[str, Any]:
        user = who(authorization)
        room = member_room(room_id, user)
        room.seen[user] = max(room.seen.get(user, 0), body.upTo)
        return {"unseen": unseen(room, user)}

    @api.get("/api/rooms", operation_id="listRooms")
    async def my_rooms(authorization: str | None = Header(None)) -> dict[str, Any]:
        user = who(authorization)
        return {"rooms": [{"roomId": r.id, "name": r.name, "unseen": unseen(r, user)}
                          for r in rooms.values() if user in r.members]}

    @api.get("/api/rooms/{room_id}", operation_id="showRoom", response_model=RoomEnvelope)
    async def show_room(room_id: str, authorization: str | None = Header(None)) -> dict[str, Any]:
        room = member_room(room_id, who(authorization))
        return {"room": {"roomId": room.id, "name": room.name, "people": sorted(room.members)}}

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
_POST = {"id": "postId", "content": "text", "seq": "seq", "is_deleted": "gone", "edited_at": "editedAt"}
API = {"defaults": "none", "operations": {
    "create_direct": {"request": "POST /api/rooms", "json": {"name": "direct", "members": ["{user_id}"]},
                      "response": {"id": "room.roomId"}},
    "create_group": {"request": "POST /api/rooms", "json": {"name": "{title}", "members": "{member_ids}"},
                     "response": {"id": "room.roomId"}},
    "list_conversations": {"request": "GET /api/rooms", "response": {"conversations": "rooms"},
                           "items": {"conversations": {"id": "roomId", "title": "name", "unread_count": "unseen"}}},
    "get_conversation": {"request": "GET /api/rooms/{conversation_id}",
                         "response": {"id": "room.roomId", "title": "room.name"}},
    "send_message": {"request": "POST /api/rooms/{conversation_id}/posts",
                     "json": {"text": "{content}", "nonce": "{client_msg_id}"},
                     "response": {"id": "post.postId", "seq": "post.seq", "content": "post.text"}},
    "remove_member": {"request": "DELETE /api/rooms/{conversation_id}/people/{user_id}"},
    "list_messages": {"request": "GET /api/rooms/{conversation_id}/posts?limit={limit}&before={before}"
                                 "&after={after}&since={since_seq}",
                      "response": {"messages": "posts", "has_more": "more"}, "items": {"messages": _POST}},
    "get_message": {"request": "GET /api/rooms/{conversation_id}/posts/{message_id}",
                    "response": {k: f"post.{v}" for k, v in _POST.items()}},
    "edit_message": {"request": "PUT /api/rooms/{conversation_id}/posts/{message_id}", "json": {"text": "{content}"},
                     "response": {"content": "post.text", "edited_at": "post.editedAt"}},
    "delete_message": {"request": "DELETE /api/rooms/{conversation_id}/posts/{message_id}"},
    "search": {"request": "GET /api/rooms/{conversation_id}/search?text={query}", "response": {"results": "hits"},
               "items": {"results": {"id": "postId", "content": "text", "highlight": "snippet"}}},
    "mark_read": {"request": "POST /api/rooms/{conversation_id}/seen", "json": {"upTo": "{seq}"},
                  "response": {"unread_count": "unseen"}},
}}
REALTIME = {"protocol": "socketio", "path": "/ws", "namespace": "/chat", "auth": {"jwt": "{token}"}, "acks": True,
            "events": {"join_conversation": "enterRoom", "message_received": "newPost", "typing_start": "startTyping",
                       "typing_stop": "stopTyping", "user_typing": "someoneTyping"},
            "fields": {"conversation_id": "roomId", "message": "post", "id": "postId", "user_id": "userId",
                       "content": "text", "sender_id": "authorId", "last_seq": "lastSeq"}}
