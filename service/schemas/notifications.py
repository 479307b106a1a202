"""Request and response models of notifications, mentions and notification preferences."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

Level = Literal["all", "mentions", "none"]
NotificationKind = Literal["mention", "reply", "direct", "message"]


class Notification(BaseModel):
    id: int
    kind: NotificationKind
    conversation_id: uuid.UUID | None = Field(None, description="the conversation, for a conversation's message")
    community_id: uuid.UUID | None = Field(None, description="the community, for a community's message")
    message_id: uuid.UUID = Field(description="the message (of the conversation or of the community)")
    seq: int
    actor_id: uuid.UUID | None = None
    actor_name: str | None = None
    excerpt: str | None = Field(None, description="the start of the message (empty once it is deleted)")
    created_at: datetime
    read_at: datetime | None = None


class NotificationFeed(BaseModel):
    items: list[Notification]
    unread: int


class UnreadCount(BaseModel):
    unread: int


class MarkRead(BaseModel):
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(
        None, max_length=500, description="these notifications; omit for all of yours")


class Preferences(BaseModel):
    direct_messages: Level = "all"
    rooms: Level = Field("mentions", description="default for group conversations and communities without their "
                                                 "own setting")
    mentions: Literal["all", "none"] = "all"
    muted_until: datetime | None = Field(None, description="nothing notifies before this time")


class RoomSetting(BaseModel):
    level: Level = "all"
    muted_until: datetime | None = None


class RoomSettingOut(RoomSetting):
    conversation_id: uuid.UUID


class CommunitySettingOut(RoomSetting):
    community_id: uuid.UUID


class PreferencesOut(Preferences):
    conversations: list[RoomSettingOut] = []
    communities: list[CommunitySettingOut] = []


class Mention(BaseModel):
    user_id: uuid.UUID
    display_name: str
