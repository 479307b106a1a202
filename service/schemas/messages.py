"""Request and response models of the message endpoints (and of service.messaging)."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.sanitize import MAX_MESSAGE_CHARS

MAX_CLIENT_MSG_ID_CHARS = 100
MAX_EMOJI_CHARS = 32
MAX_EMOJI_PICTOGRAPHS = 7  # a family of four with joiners; a flag is two regional indicators
MAX_QUERY_CHARS = 200


_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, exactly


def no_control_chars(value: str) -> str:
    """PostgreSQL text cannot hold NUL, and identifiers with control characters are never intended."""
    if _CONTROL_CHARS.search(value):
        raise ValueError("must not contain control characters")
    return value


_EMOJI_JOINERS = frozenset("\u200d\ufe0f\ufe0e\u20e3")  # zero-width joiner, variation selectors, keycap
_KEYCAP_BASES = frozenset("0123456789#*")


def an_emoji(value: str) -> str:
    """A reaction is one emoji: pictographs (with skin tones, joiners, variation selectors, flags and
    keycaps), not words, markup or arbitrary symbols strung together."""
    pictographs = 0
    for i, ch in enumerate(value):
        cp = ord(ch)
        if unicodedata.category(ch) == "So" or 0x1F1E6 <= cp <= 0x1F1FF:
            pictographs += 1
        elif ch in _EMOJI_JOINERS or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F:
            continue  # modifiers and joiners inside one emoji
        elif ch in _KEYCAP_BASES and value[i + 1:i + 2] in ("\ufe0f", "\u20e3"):
            pictographs += 1
        else:
            raise ValueError("must be one emoji")
    if not 1 <= pictographs <= MAX_EMOJI_PICTOGRAPHS:
        raise ValueError("must be one emoji")
    return value


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


ClientMsgId = Annotated[str, Field(min_length=1, max_length=MAX_CLIENT_MSG_ID_CHARS),
                        AfterValidator(no_control_chars)]
Emoji = Annotated[str, Field(min_length=1, max_length=MAX_EMOJI_CHARS), AfterValidator(no_control_chars),
                  AfterValidator(an_emoji)]
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
