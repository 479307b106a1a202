"""Attachments: upload (in one streamed request, or direct to storage then confirm), signed
download URLs for members of the conversation, attach to a message, delete.

Bytes never pass through memory whole: request bodies are streamed to a temporary file, checked
(size, sniffed type, image dimensions, audio duration), cleaned (EXIF) and handed to the storage
backend from disk. Rows are authorized by RLS like messages; a refused file leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse

from service.attachments.config import AttachmentSettings
from service.attachments.media import Processed, Rejected, process
from service.attachments.names import sanitize_filename
from service.db import Conn, fetch_all, fetch_one
from service.deps import CurrentUser, State, parse_uuid
from service.schemas.attachments import Attachment, AttachRequest, PresignedUpload, PresignRequest
from service.state import AppState
from service.storage import ObjectTooLarge, Storage, open_storage
from service.storage.local import LocalStorage
from service.storage.signing import BadToken, expires_in, verify

router = APIRouter(tags=["attachments"])

_COLUMNS = ("a.id, a.conversation_id, a.message_id, a.uploader_id, a.status, a.kind, a.filename, "
            "a.content_type, a.size_bytes, a.width, a.height, a.duration_ms, a.created_at, a.storage_key, "
            "a.thumbnail_key")
_CHUNK = 256 * 1024
_REFUSED: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such conversation or attachment visible to you"},
    413: {"description": "the file is larger than the limit"},
    415: {"description": "the file's content is not of an allowed type"},
    422: {"description": "image too large in pixels, audio too long, or empty file"},
}


def _settings(state: AppState) -> AttachmentSettings:
    settings: AttachmentSettings = state.settings.attachments
    if not settings.enabled:
        raise HTTPException(404, detail="attachments are turned off on this service")
    return settings


def _storage(settings: AttachmentSettings) -> Storage:
    return open_storage(settings.storage)


def _too_large(settings: AttachmentSettings, size: int | str) -> HTTPException:
    return HTTPException(413, detail=f"file is {size} bytes; the limit is {settings.max_bytes}")


async def _stream_to(request: Request, dest: Path, limit: int) -> int:
    """Write the request body to `dest`; 413 as soon as it exceeds `limit` (before reading it all)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, detail=f"file is {declared} bytes; the limit is {limit}")
    size = 0
    with dest.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, detail=f"file is over {limit} bytes; the limit is {limit}")
            out.write(chunk)
    return size


@contextlib.asynccontextmanager
async def _workdir() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="msgops-upload-") as tmp:
        yield Path(tmp)


async def _member_or_404(conn: Conn, conversation_id: uuid.UUID) -> None:
    row = await fetch_one(conn, "select public.is_conversation_member(%s) as member", (conversation_id,))
    if not row or not row["member"]:
        raise HTTPException(404, detail="conversation not found")


async def _new_pending(state: AppState, user: CurrentUser, conversation_id: uuid.UUID, filename: str) -> \
        tuple[uuid.UUID, str]:
    attachment_id = uuid.uuid4()
    key = f"conversations/{conversation_id}/{attachment_id}"
    async with state.db.transaction(user) as conn:
        await _member_or_404(conn, conversation_id)
        await conn.execute(
            "insert into public.attachments (id, conversation_id, uploader_id, filename, storage_key) "
            "values (%s, %s, %s, %s, %s)",
            (attachment_id, conversation_id, user.sub, sanitize_filename(filename, "") or "file", key))
    return attachment_id, key


async def _discard(state: AppState, user: CurrentUser, attachment_id: uuid.UUID) -> None:
    """Remove a refused upload's row (its objects are queued for the cleanup job) and objects."""
    async with state.db.transaction(user) as conn:
        row = await fetch_one(conn, "delete from public.attachments where id = %s returning storage_key, "
                                    "thumbnail_key", (attachment_id,))
    if row:
        storage = _storage(state.settings.attachments)
        for key in (row["storage_key"], row["thumbnail_key"]):
            if key:
                with contextlib.suppress(Exception):
                    await storage.delete(key)


async def _finish(state: AppState, user: CurrentUser, attachment_id: uuid.UUID, key: str, file: Path,
                  filename: str) -> dict[str, Any]:
    """Check and clean `file`, store it (and its thumbnail), mark the attachment ready."""
    settings = state.settings.attachments
    try:
        done: Processed = await asyncio.to_thread(process, file, settings)
    except Rejected as exc:
        await _discard(state, user, attachment_id)
        raise HTTPException(exc.status, detail=exc.detail) from None
    storage = _storage(settings)
    await storage.put(key, file, done.type.mime)
    thumb_key = None
    if done.thumbnail is not None:
        thumb_key = f"{key}.thumb.jpg"
        await storage.put(thumb_key, done.thumbnail, "image/jpeg")
    async with state.db.transaction(user) as conn:
        row = await fetch_one(
            conn,
            f"""update public.attachments a set status = 'ready', kind = %s, content_type = %s, size_bytes = %s,
                       width = %s, height = %s, duration_ms = %s, thumbnail_key = %s, filename = %s
                 where a.id = %s returning {_COLUMNS}""",
            (done.type.kind, done.type.mime, done.size, done.width, done.height, done.duration_ms, thumb_key,
             sanitize_filename(filename, done.type.extension), attachment_id))
    if row is None:
        raise HTTPException(404, detail="attachment not found")
    return row


def _out(row: dict[str, Any], state: AppState, request: Request, with_urls: bool = True) -> Attachment:
    out = Attachment.model_validate(row)
    if with_urls and row["status"] == "ready":
        settings = state.settings.attachments
        storage = _storage(settings)
        base = str(request.base_url)
        ttl = settings.url_ttl_s
        out.url = storage.download_url(row["storage_key"], row["filename"], row["content_type"], ttl, base)
        if row["thumbnail_key"]:
            out.thumbnail_url = storage.download_url(row["thumbnail_key"], "thumbnail.jpg", "image/jpeg", ttl, base)
        out.url_expires_at = datetime.fromtimestamp(expires_in(ttl), UTC)
    return out


@router.post("/conversations/{conversation_id}/attachments", response_model=Attachment, status_code=201,
             responses=_REFUSED,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload(conversation_id: str, request: Request, user: CurrentUser, state: State,
                 filename: str = Query("file", max_length=255, description="the file's name, as shown")
                 ) -> Attachment:
    """Upload a file, image or voice message in one request: the body is the file's bytes. Its type is
    judged by content against the allow-list (never by Content-Type or extension); images lose their
    EXIF and get a thumbnail; audio gets its duration. Put it on a message with POST /attachments/{id}/attach."""
    settings = _settings(state)
    cid = parse_uuid(conversation_id)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_bytes:
        raise _too_large(settings, declared)
    attachment_id, key = await _new_pending(state, user, cid, filename)
    async with _workdir() as tmp:
        file = tmp / "upload"
        try:
            await _stream_to(request, file, settings.max_bytes)
        except HTTPException:
            await _discard(state, user, attachment_id)
            raise
        row = await _finish(state, user, attachment_id, key, file, filename)
    return _out(row, state, request)


@router.post("/conversations/{conversation_id}/attachments/presign", response_model=PresignedUpload,
             status_code=201, responses={404: _REFUSED[404]})
async def presign(conversation_id: str, body: PresignRequest, request: Request, user: CurrentUser,
                  state: State) -> PresignedUpload:
    """Direct-to-storage upload, step 1: a short-lived URL to PUT the file to. Step 2 is
    POST /attachments/{id}/confirm, which checks the stored file like a one-request upload."""
    settings = _settings(state)
    cid = parse_uuid(conversation_id)
    attachment_id, key = await _new_pending(state, user, cid, body.filename)
    storage = _storage(settings)
    await storage.ready()
    url = storage.upload_url(key, "application/octet-stream", settings.url_ttl_s, str(request.base_url))
    return PresignedUpload(attachment_id=attachment_id, upload_url=url, max_bytes=settings.max_bytes,
                           expires_at=datetime.fromtimestamp(expires_in(settings.url_ttl_s), UTC))


@router.post("/attachments/{attachment_id}/confirm", response_model=Attachment, responses=_REFUSED)
async def confirm(attachment_id: str, request: Request, user: CurrentUser, state: State) -> Attachment:
    """Direct-to-storage upload, step 2: check the uploaded object and make the attachment ready."""
    settings = _settings(state)
    aid = parse_uuid(attachment_id)
    async with state.db.transaction(user) as conn:
        row = await fetch_one(conn, f"select {_COLUMNS} from public.attachments a where a.id = %s "
                                    "and a.uploader_id = (select auth.uid())", (aid,))
    if row is None:
        raise HTTPException(404, detail="attachment not found")
    if row["status"] == "ready":
        return _out(row, state, request)
    storage = _storage(settings)
    async with _workdir() as tmp:
        file = tmp / "upload"
        try:
            await storage.fetch(row["storage_key"], file, settings.max_bytes)
        except FileNotFoundError:
            raise HTTPException(409, detail="nothing was uploaded to the presigned URL yet") from None
        except ObjectTooLarge as exc:
            await _discard(state, user, aid)
            raise _too_large(settings, str(exc).split()[0]) from None
        done = await _finish(state, user, aid, row["storage_key"], file, row["filename"])
    return _out(done, state, request)


@router.get("/attachments/{attachment_id}", response_model=Attachment, responses={404: _REFUSED[404]})
async def get_attachment(attachment_id: str, request: Request, user: CurrentUser, state: State) -> Attachment:
    """An attachment with short-lived signed URLs for it and its thumbnail: members of its conversation only."""
    _settings(state)
    aid = parse_uuid(attachment_id)
    async with state.db.transaction(user) as conn:
        row = await fetch_one(conn, f"select {_COLUMNS} from public.attachments a where a.id = %s", (aid,))
    if row is None:
        raise HTTPException(404, detail="attachment not found")
    return _out(row, state, request)


@router.get("/conversations/{conversation_id}/attachments", response_model=list[Attachment],
            responses={404: _REFUSED[404]})
async def list_attachments(conversation_id: str, request: Request, user: CurrentUser, state: State,
                           message_id: uuid.UUID | None = None,
                           limit: int = Query(50, ge=1, le=200)) -> list[Attachment]:
    """A conversation's ready attachments, newest first (optionally those of one message), with signed URLs."""
    _settings(state)
    cid = parse_uuid(conversation_id)
    async with state.db.transaction(user) as conn:
        await _member_or_404(conn, cid)
        rows = await fetch_all(
            conn, f"""select {_COLUMNS} from public.attachments a
                       where a.conversation_id = %s and a.status = 'ready'
                         and (%s::uuid is null or a.message_id = %s)
                       order by a.created_at desc limit %s""", (cid, message_id, message_id, limit))
    return [_out(r, state, request) for r in rows]


@router.post("/attachments/{attachment_id}/attach", response_model=Attachment,
             responses={404: _REFUSED[404], 409: {"description": "not ready, already attached, or not your "
                                                                  "message in this conversation"}})
async def attach(attachment_id: str, body: AttachRequest, request: Request, user: CurrentUser,
                 state: State) -> Attachment:
    """Put your ready attachment on your own message in the same conversation."""
    _settings(state)
    aid = parse_uuid(attachment_id)
    async with state.db.transaction(user) as conn:
        ok = await fetch_one(conn, "select public.attach_to_message(%s, %s) as ok", (aid, body.message_id))
        row = await fetch_one(conn, f"select {_COLUMNS} from public.attachments a where a.id = %s", (aid,))
    if row is None:
        raise HTTPException(404, detail="attachment not found")
    if not (ok and ok["ok"]) and row["message_id"] != body.message_id:
        raise HTTPException(409, detail="cannot attach: the attachment must be yours, ready and unattached, and "
                                        "the message yours, not deleted, in the same conversation")
    return _out(row, state, request)


@router.delete("/attachments/{attachment_id}", status_code=204, responses={404: _REFUSED[404]})
async def delete_attachment(attachment_id: str, user: CurrentUser, state: State) -> Response:
    """Delete your attachment; its stored objects are removed at once (and by the cleanup job otherwise)."""
    _settings(state)
    aid = parse_uuid(attachment_id)
    async with state.db.transaction(user) as conn:
        row = await fetch_one(conn, "select 1 from public.attachments where id = %s "
                                    "and uploader_id = (select auth.uid())", (aid,))
    if row is None:
        raise HTTPException(404, detail="attachment not found")
    await _discard(state, user, aid)
    return Response(status_code=204)


# --- the local backend's signed URLs ----------------------------------------------------------------

def _local(state: AppState) -> LocalStorage:
    storage = _storage(_settings(state))
    if not isinstance(storage, LocalStorage):
        raise HTTPException(404, detail="not found")
    return storage


def _grant(storage: LocalStorage, token: str, op: Any) -> Any:
    try:
        return verify(storage.secret, token, op)
    except BadToken as exc:
        raise HTTPException(403, detail=f"{exc}; ask GET /attachments/{{id}} for a fresh URL") from None


# Signed links are capabilities, not API operations: the signature is the authorization, so they stay
# out of the OpenAPI document (whose operations all require a bearer token).
@router.get("/attachments/blob/{token}", response_class=FileResponse, include_in_schema=False)
async def download_blob(token: str, state: State) -> FileResponse:
    """A stored file, through a signed link from GET /attachments/{id} (local storage only)."""
    storage = _local(state)
    grant = _grant(storage, token, "get")
    path = storage.path(grant.key)
    if not path.is_file():
        raise HTTPException(404, detail="file not found")
    return FileResponse(path, media_type=grant.content_type, filename=grant.filename or None,
                        content_disposition_type="attachment", headers={"Cache-Control": "private, no-store"})


@router.put("/attachments/blob/{token}", status_code=204, include_in_schema=False)
async def upload_blob(token: str, request: Request, state: State) -> Response:
    """The target of a presigned upload URL (local storage only): the body is the file's bytes."""
    settings = _settings(state)
    storage = _local(state)
    grant = _grant(storage, token, "put")
    dest = storage.path(grant.key)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        await _stream_to(request, part, settings.max_bytes)
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)
    return Response(status_code=204)
