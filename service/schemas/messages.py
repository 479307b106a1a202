"""Request and response models of the message endpoints (and of service.messaging)."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.sanitize import MAX_MESSAGE_CHARS

MAX_CLIENT_MSG_ID_CHARS = 100
MAX_EMOJI_CHARS = 32
MAX_QUERY_CHARS = 200


def no_control_chars(value: str) -> str:
    """PostgreSQL text cannot hold NUL, and identifiers with control characters are never intended."""
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def plain_symbol(value: str) -> str:
    """Reactions are shown as-is: no markup characters, no whitespace."""
    if any(ch in "<>&\"'`" or ch.isspace() for ch in value):
        raise ValueError("must not contain whitespace or any of < > & \" ' `")
    return value


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


ClientMsgId = Annotated[str, Field(min_length=1, max_length=MAX_CLIENT_MSG_ID_CHARS),
                        AfterValidator(no_control_chars)]
Emoji = Annotated[str, Field(min_length=1, max_length=MAX_EMOJI_CHARS), AfterValidator(no_control_chars),
                  AfterValidator(plain_symbol)]
SearchQuery = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS),
                        AfterValidator(no_control_chars), AfterValidator(not_blank)]
# Raw content: markup is removed later by service.messaging (cleaning twice would escape twice).
RawContent = Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SendMessageIn(_In):
    content: RawContent
    client_msg_id: ClientMsgId | None = Field(
        default=None, description="Your id for this message; a retry with the same id returns the first one")
    parent_id: uuid.UUID | None = Field(default=None, description="Reply in the thread of this message")


class EditMessageIn(_In):
    content: RawContent


class ReactionIn(_In):
    emoji: Emoji


class MessageOut(BaseModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    sender_id: uuid.UUID | None  # None: the sender's account was erased
    seq: int = Field(description="Position in the conversation: 1, 2, 3, ... without gaps")
    client_msg_id: str | None
    parent_id: uuid.UUID | None
    content: str | None = Field(description="Plain text (markup removed and escaped); null when deleted")
    is_deleted: bool
    edited_at: datetime | None
    created_at: datetime
    reactions: dict[str, int] = Field(default_factory=dict, description="emoji -> number of users")
    reply_count: int = 0


class MessagePage(BaseModel):
    messages: list[MessageOut] = Field(description="Ascending by seq")
    has_more: bool = Field(description="More messages exist beyond this page in the direction paged")


class SearchHit(MessageOut):
    highlight: str = Field(description="The matching passage with <mark>...</mark> around the terms")
    rank: float


class SearchResults(BaseModel):
    query: str
    results: list[SearchHit]


class ReadOut(BaseModel):
    conversation_id: uuid.UUID
    last_read_seq: int
    unread_count: int
