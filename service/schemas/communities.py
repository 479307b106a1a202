"""Request and response models of the communities API (communities, members, community messages)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from service.sanitize import MAX_COMMUNITY_NAME_CHARS, MAX_MESSAGE_CHARS, cleaned
from service.schemas.messages import ClientMsgId

CommunityRole = Literal["owner", "admin", "moderator", "member"]
AssignableRole = Literal["admin", "moderator", "member"]  # nobody becomes owner through the API


MessageContent = Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS), cleaned(MAX_MESSAGE_CHARS)]
CommunityName = Annotated[str, Field(min_length=1, max_length=MAX_COMMUNITY_NAME_CHARS),
                          cleaned(MAX_COMMUNITY_NAME_CHARS)]
Description = Annotated[str, Field(max_length=1000), cleaned(1000, optional=True)]


class CommunityCreate(BaseModel):
    name: CommunityName
    description: Description = ""
    is_private: bool = False


class CommunityUpdate(BaseModel):
    name: CommunityName | None = None
    description: Description | None = None
    is_private: bool | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> CommunityUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one of name, description, is_private")
        nulls = sorted(f for f in self.model_fields_set if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"cannot be null: {', '.join(nulls)}")
        return self


class Community(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    is_private: bool
    created_by: uuid.UUID | None = Field(description="null once the creator's account is erased")
    member_count: int
    created_at: datetime
    updated_at: datetime
    my_role: CommunityRole | None = Field(None, description="the caller's role here; null when not a member")


class Member(BaseModel):
    community_id: uuid.UUID
    user_id: uuid.UUID
    display_name: str
    role: CommunityRole
    joined_at: datetime


class MemberAdd(BaseModel):
    user_id: uuid.UUID
    role: AssignableRole = "member"


class MemberRoleUpdate(BaseModel):
    role: AssignableRole


class CommunityMessageCreate(BaseModel):
    content: MessageContent
    client_msg_id: ClientMsgId | None = Field(
        None, description="a client-chosen id, unique per sender: a retry returns the stored message (200)")


class CommunityMessageUpdate(BaseModel):
    content: MessageContent


class CommunityMessage(BaseModel):
    id: uuid.UUID
    community_id: uuid.UUID
    sender_id: uuid.UUID | None  # None: the sender's account was erased
    seq: int
    client_msg_id: str | None
    content: str | None = Field(description="null once the message is deleted")
    is_deleted: bool
    deleted_by: uuid.UUID | None
    edited_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CommunityMessagePage(BaseModel):
    messages: list[CommunityMessage] = Field(description="ascending by seq")
    has_more: bool = Field(description="more messages exist beyond this page in the direction asked")
