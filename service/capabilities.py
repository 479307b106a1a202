"""What this service offers beyond the core messaging API, as `/health` lists it: probes and clients
read it to know which features a target has, where they live, and their limits."""

from __future__ import annotations

from pydantic import BaseModel, Field

from service.attachments.media import allowed_types
from service.state import AppState


class AttachmentsCapability(BaseModel):
    upload: str = "POST /conversations/{conversation_id}/attachments"
    presign: str = "POST /conversations/{conversation_id}/attachments/presign"
    confirm: str = "POST /attachments/{attachment_id}/confirm"
    get: str = "GET /attachments/{attachment_id}"
    attach: str = "POST /attachments/{attachment_id}/attach"
    delete: str = "DELETE /attachments/{attachment_id}"
    max_bytes: int
    max_image_side: int
    types: list[str] = Field(description="allowed types, judged by content")
    url_ttl_s: int = Field(description="lifetime of signed download and upload URLs")
    storage: str
    cleanup_job: str = "cleanup_attachments"


class NotificationsCapability(BaseModel):
    feed: str = "GET /notifications"
    mark_read: str = "POST /notifications/read"
    preferences: str = "PUT /notifications/preferences"
    room_setting: str = "PUT /conversations/{conversation_id}/notifications"
    community_setting: str = "PUT /communities/{community_id}/notifications"
    mentions: str = "GET /messages/{message_id}/mentions"
    community_mentions: str = "GET /community-messages/{message_id}/mentions"
    realtime_event: str = "notification"
    kinds: list[str] = ["mention", "reply", "direct", "message"]


class PushCapability(BaseModel):
    vapid_public_key: str
    subscribe: str = "POST /push/subscriptions"


class Capabilities(BaseModel):
    attachments: AttachmentsCapability | None = None
    notifications: NotificationsCapability | None = None
    push: PushCapability | None = None


def capabilities(state: AppState) -> Capabilities:
    att = state.settings.attachments
    return Capabilities(
        attachments=AttachmentsCapability(max_bytes=att.max_bytes, max_image_side=att.max_image_side,
                                          types=allowed_types(), url_ttl_s=att.url_ttl_s,
                                          storage=att.storage.backend) if att.enabled else None,
        notifications=NotificationsCapability(),
        push=PushCapability(vapid_public_key=state.push.public_key) if state.push is not None else None,
    )
