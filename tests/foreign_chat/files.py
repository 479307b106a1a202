"""Files and notifications of the foreign chat, with routes and JSON of its own:

    PUT    /api/profile                {nickname}                 -> {profile: {userId, nickname}}
    POST   /api/rooms/{room_id}/files  multipart form, file `blob` -> {file: {fileId, bytes, mime}}
    GET    /api/files/{file_id}/link                               -> {link: {href, expiresAt}}  (members)
    GET    /api/blobs/{file_id}?exp=&sig=                          the bytes, for whoever holds the link
    DELETE /api/files/{file_id}
    GET    /api/alerts                                             -> {alerts: [{alertId, reason, post: {...}}]}
    POST   /api/rooms/{room_id}/quiet  {until}                     no alerts from the room until then

Uploads are limited to MAX_BYTES and judged by their first bytes; links are HMAC-signed and short-lived.
Alerts are the posts that mention you (`@nickname`) in rooms you are in. `Breaks` adds one switch per
protection to the chat's own.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from typing import Any

from fastapi import APIRouter, Header, HTTPException, Request, Response
from pydantic import BaseModel

from tests.foreign_chat import app

MAX_BYTES = 1_000_000
LINK_TTL_S = 300
_KEY = b"foreign-chat-link-key"
_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"%PDF-": "application/pdf",
          b"RIFF": "audio/wav"}
_BY_NAME = {".png": "image/png", ".jpg": "image/jpeg", ".pdf": "application/pdf", ".wav": "audio/wav"}


@dataclass
class Breaks(app.Breaks):
    no_size_limit: bool = False        # uploads of any size are stored
    trust_file_name: bool = False      # the type comes from the file name, not the content
    outsiders_get_links: bool = False  # anyone signed in gets a link to any file
    mention_anyone: bool = False       # a mention alerts whoever has the nickname, member or not


class Nickname(BaseModel):
    nickname: str


class Quiet(BaseModel):
    until: datetime


def _sign(file_id: str, exp: int) -> str:
    return hmac.new(_KEY, f"{file_id}:{exp}".encode(), hashlib.sha256).hexdigest()


def _file_part(content_type: str, body: bytes, field: str) -> tuple[str, bytes] | None:
    """(filename, bytes) of the multipart form's file field `field`."""
    if not content_type.startswith("multipart/form-data"):
        return None
    form = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in form.iter_parts():
        if part.get_param("name", header="content-disposition") == field:
            data = part.get_payload(decode=True)
            return part.get_filename() or "file", data if isinstance(data, bytes) else b""
    return None


def router(rooms: dict[str, app.Room], who: Callable[[str | None], str], breaks: app.Breaks) -> APIRouter:
    broken = breaks if isinstance(breaks, Breaks) else Breaks()
    api = APIRouter()
    nicknames: dict[str, str] = {}  # user id -> nickname
    files: dict[str, dict[str, Any]] = {}
    quiet: dict[tuple[str, str], datetime] = {}  # (user, room) -> until

    def member_room(room_id: str, user: str) -> app.Room:
        room = rooms.get(room_id)
        if room is None or user not in room.members:
            raise HTTPException(404, "no such room")
        return room

    @api.put("/api/profile")
    async def profile(body: Nickname, authorization: str | None = Header(None)) -> dict[str, Any]:
        user = who(authorization)
        nicknames[user] = body.nickname
        return {"profile": {"userId": user, "nickname": body.nickname}}

    @api.post("/api/rooms/{room_id}/files", status_code=201)
    async def upload(room_id: str, request: Request, authorization: str | None = Header(None)) -> dict[str, Any]:
        user = who(authorization)
        member_room(room_id, user)
        part = _file_part(request.headers.get("content-type", ""), await request.body(), "blob")
        if part is None:
            raise HTTPException(422, "send the file as the multipart field `blob`")
        name, data = part
        if len(data) > MAX_BYTES and not broken.no_size_limit:
            raise HTTPException(413, f"files are limited to {MAX_BYTES} bytes")
        mime = next((m for magic, m in _MAGIC.items() if data.startswith(magic)), None)
        if mime is None and broken.trust_file_name:
            mime = _BY_NAME.get(name[name.rfind("."):].lower())
        if mime is None:
            raise HTTPException(415, "only PNG, JPEG, PDF and WAV files")
        file_id = uuid.uuid4().hex
        files[file_id] = {"room": room_id, "owner": user, "mime": mime, "data": data}
        return {"file": {"fileId": file_id, "bytes": len(data), "mime": mime}}

    @api.get("/api/files/{file_id}/link")
    async def link(file_id: str, request: Request, authorization: str | None = Header(None)) -> dict[str, Any]:
        user = who(authorization)
        stored = files.get(file_id)
        if stored is None or (user not in rooms[stored["room"]].members and not broken.outsiders_get_links):
            raise HTTPException(404, "no such file")
        exp = int(time.time()) + LINK_TTL_S
        href = f"{str(request.base_url).rstrip('/')}/api/blobs/{file_id}?exp={exp}&sig={_sign(file_id, exp)}"
        return {"link": {"href": href, "expiresAt": datetime.fromtimestamp(exp, UTC).isoformat()}}

    @api.get("/api/blobs/{file_id}")
    async def blob(file_id: str, exp: int = 0, sig: str = "") -> Response:
        stored = files.get(file_id)
        if stored is None or exp < time.time() or not hmac.compare_digest(sig, _sign(file_id, exp)):
            raise HTTPException(403, "invalid or expired link")
        return Response(stored["data"], media_type=stored["mime"])

    @api.delete("/api/files/{file_id}", status_code=204)
    async def delete(file_id: str, authorization: str | None = Header(None)) -> Response:
        user = who(authorization)
        if files.get(file_id, {}).get("owner") == user:
            del files[file_id]
        return Response(status_code=204)

    @api.post("/api/rooms/{room_id}/quiet", status_code=204)
    async def hush(room_id: str, body: Quiet, authorization: str | None = Header(None)) -> Response:
        user = who(authorization)
        member_room(room_id, user)
        quiet[(user, room_id)] = body.until
        return Response(status_code=204)

    @api.get("/api/alerts")
    async def alerts(authorization: str | None = Header(None)) -> dict[str, Any]:
        user = who(authorization)
        name = nicknames.get(user)
        found: list[dict[str, Any]] = []
        if not name:
            return {"alerts": found}
        mention = re.compile(rf"@{re.escape(name)}\b", re.IGNORECASE)
        now = datetime.now(UTC)
        for room in rooms.values():
            if user not in room.members and not broken.mention_anyone:
                continue
            if quiet.get((user, room.id), now) > now:
                continue
            found += [{"alertId": f"{post['postId']}:{user}", "reason": "mention",
                       "post": {"postId": post["postId"], "roomId": room.id, "preview": post["text"][:80]}}
                      for post in room.posts if post["authorId"] != user and mention.search(post["text"])]
        return {"alerts": found[::-1]}

    return api


# The foreign chat's API map with these operations (msgops.yaml `api:`).
OPERATIONS: dict[str, Any] = {
    "set_display_name": {"request": "PUT /api/profile", "json": {"nickname": "{display_name}"}},
    "upload_attachment": {"request": "POST /api/rooms/{conversation_id}/files", "multipart": {"blob": "{file}"},
                          "response": {"id": "file.fileId"}},
    "attachment_url": {"request": "GET /api/files/{attachment_id}/link",
                       "response": {"url": "link.href", "url_expires_at": "link.expiresAt"}},
    "delete_attachment": {"request": "DELETE /api/files/{attachment_id}"},
    "list_notifications": {"request": "GET /api/alerts", "response": {"items": "alerts"}},
    "set_room_notifications": {"request": "POST /api/rooms/{conversation_id}/quiet",
                               "json": {"until": "{muted_until}"}},
}
API: dict[str, Any] = {**app.API, "operations": {**app.API["operations"], **OPERATIONS}}
