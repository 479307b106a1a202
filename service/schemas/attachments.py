"""Request and response models of the attachment endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class Attachment(BaseModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID | None = None
    uploader_id: uuid.UUID | None = None
    status: Literal["pending", "ready"]
    kind: Literal["image", "audio", "file"] | None = None
    filename: str
    content_type: str | None = None
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = Field(None, description="voice messages and other audio: the length")
    created_at: datetime
    url: str | None = Field(None, description="signed download URL, valid until url_expires_at")
    thumbnail_url: str | None = Field(None, description="signed URL of a JPEG thumbnail (images)")
    url_expires_at: datetime | None = None


class PresignRequest(BaseModel):
    filename: str = Field(min_length=1, max_length=255)


class PresignedUpload(BaseModel):
    attachment_id: uuid.UUID
    upload_url: str = Field(description="PUT the file's bytes here, then POST /attachments/{id}/confirm")
    method: Literal["PUT"] = "PUT"
    expires_at: datetime
    max_bytes: int


class AttachRequest(BaseModel):
    message_id: uuid.UUID
