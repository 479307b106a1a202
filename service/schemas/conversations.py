"""Request and response models of the conversation endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.sanitize import MAX_COMMUNITY_NAME_CHARS, cleaned

MAX_TITLE_CHARS = MAX_COMMUNITY_NAME_CHARS
MAX_GROUP_MEMBERS = 256


Title = Annotated[str, Field(min_length=1, max_length=MAX_TITLE_CHARS), cleaned(MAX_TITLE_CHARS)]

class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DirectConversationIn(_In):
    kind: Literal["direct"]
    user_id: uuid.UUID = Field(description="The other person (the direct-message rules of your roles apply)")


class GroupConversationIn(_In):
    kind: Literal["group"]
    title: Title
    member_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_GROUP_MEMBERS,
                                        description="Members besides you")


ConversationIn = Annotated[DirectConversationIn | GroupConversationIn, Field(discriminator="kind")]


class ArchiveIn(_In):
    archived: bool


class MemberIn(_In):
    user_id: uuid.UUID


class ConversationSummary(BaseModel):
    id: uuid.UUID
    kind: Literal["direct", "group"]
    title: str | None
    created_by: uuid.UUID | None = Field(description="null once the creator's account is erased")
    member_count: int
    last_seq: int
    last_message_at: datetime | None
    unread_count: int = Field(description="Messages after the last one you read")
    last_read_seq: int
    archived: bool = Field(description="You archived it (for yourself)")
    created_at: datetime


class ConversationPage(BaseModel):
    conversations: list[ConversationSummary] = Field(description="Newest activity first")
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


class Member(BaseModel):
    user_id: uuid.UUID
    display_name: str
    role: Literal["owner", "member"]
    joined_at: datetime


class ConversationDetail(ConversationSummary):
    members: list[Member]


class ArchiveOut(BaseModel):
    conversation_id: uuid.UUID
    archived: bool
    archived_at: datetime | None
