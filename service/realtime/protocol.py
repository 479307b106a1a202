"""The WebSocket protocol: every frame in both directions as a Pydantic model.

Frames are JSON text objects with a `type`. Client frames may carry a `ref` (any short string) that
the server echoes on the reply or error it causes, so a client can match answers to requests.
docs/realtime.md shows one example of each frame.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

Ref = Annotated[str, Field(max_length=64)]
Token = Annotated[str, Field(min_length=1, max_length=8192)]
Seq = Annotated[int, Field(ge=0)]


class _ClientFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ref: Ref | None = None


class Auth(_ClientFrame):
    type: Literal["auth"]
    token: Token


class RefreshToken(_ClientFrame):
    type: Literal["refresh_token"]
    token: Token


class JoinConversation(_ClientFrame):
    type: Literal["join_conversation"]
    conversation_id: uuid.UUID
    since_seq: Seq | None = None  # resume: deliver everything after this seq first


class LeaveConversation(_ClientFrame):
    type: Literal["leave_conversation"]
    conversation_id: uuid.UUID


class JoinCommunity(_ClientFrame):
    type: Literal["join_community"]
    community_id: uuid.UUID
    since_seq: Seq | None = None


class LeaveCommunity(_ClientFrame):
    type: Literal["leave_community"]
    community_id: uuid.UUID


class MarkRead(_ClientFrame):
    type: Literal["mark_read"]
    conversation_id: uuid.UUID
    seq: Seq


class _RoomFrame(_ClientFrame):
    """Names exactly one room: a conversation or a community channel."""

    conversation_id: uuid.UUID | None = None
    community_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _one_room(self) -> _RoomFrame:
        if (self.conversation_id is None) == (self.community_id is None):
            raise ValueError("give exactly one of conversation_id or community_id")
        return self


class SendMessage(_RoomFrame):
    """To a conversation (optionally in a thread: parent_id) or to a community channel."""

    type: Literal["send_message"]
    content: Annotated[str, Field(min_length=1, max_length=5000)]
    client_msg_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    parent_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _threads_in_conversations(self) -> SendMessage:
        if self.parent_id is not None and self.community_id is not None:
            raise ValueError("community messages have no threads: leave out parent_id")
        return self


class TypingStart(_RoomFrame):
    type: Literal["typing_start"]


class TypingStop(_RoomFrame):
    type: Literal["typing_stop"]


class Heartbeat(_ClientFrame):
    type: Literal["heartbeat"]


ClientFrame = Annotated[
    Auth | RefreshToken | JoinConversation | LeaveConversation | JoinCommunity | LeaveCommunity
    | SendMessage | MarkRead | TypingStart | TypingStop | Heartbeat,
    Field(discriminator="type"),
]
CLIENT_TYPES = frozenset({
    "auth", "refresh_token", "join_conversation", "leave_conversation", "join_community", "leave_community",
    "send_message", "mark_read", "typing_start", "typing_stop", "heartbeat",
})
_client_adapter: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


# Server -> client ---------------------------------------------------------------------------------

class _ServerFrame(BaseModel):
    model_config = ConfigDict(frozen=True)

    def encode(self) -> str:
        """JSON text without the fields that do not apply (None)."""
        return self.model_dump_json(exclude_none=True)


class Authenticated(_ServerFrame):
    type: Literal["authenticated"] = "authenticated"
    user_id: uuid.UUID
    expires_at: int  # unix seconds; present a refreshed token before then
    ref: str | None = None


class TokenRefreshed(_ServerFrame):
    type: Literal["token_refreshed"] = "token_refreshed"
    expires_at: int
    ref: str | None = None


PresenceStatus = Literal["online", "away", "offline"]


class Joined(_ServerFrame):
    type: Literal["joined"] = "joined"
    conversation_id: uuid.UUID | None = None
    community_id: uuid.UUID | None = None
    last_seq: int                 # the room's newest seq when you joined
    since_seq: int | None = None  # echoed when resuming: messages after it follow, in order
    online: dict[str, Literal["online", "away"]] | None = None  # members present now (conversations)
    ref: str | None = None


class Left(_ServerFrame):
    type: Literal["left"] = "left"
    conversation_id: uuid.UUID | None = None
    community_id: uuid.UUID | None = None
    reason: Literal["left", "removed"]
    ref: str | None = None


class MessageBody(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: uuid.UUID
    sender_id: uuid.UUID | None  # None: the sender's account was erased
    seq: int
    content: str | None  # None once deleted
    is_deleted: bool = False
    parent_id: uuid.UUID | None = None
    client_msg_id: str | None = None  # only on frames to the sender's own sockets
    created_at: datetime
    edited_at: datetime | None = None


class MessageSent(_ServerFrame):
    type: Literal["message_sent"] = "message_sent"
    conversation_id: uuid.UUID | None = None
    community_id: uuid.UUID | None = None
    client_msg_id: str | None = None
    id: uuid.UUID
    seq: int
    created_at: datetime
    duplicate: bool = False  # true when client_msg_id matched an earlier send: nothing new was stored
    ref: str | None = None


class MessageReceived(_ServerFrame):
    type: Literal["message_received"] = "message_received"
    conversation_id: uuid.UUID | None = None
    community_id: uuid.UUID | None = None
    seq: int
    message: MessageBody


class MessageUpdated(_ServerFrame):
    type: Literal["message_updated"] = "message_updated"
    conversation_id: uuid.UUID | None = None
    community_id: uuid.UUID | None = None
    seq: int
    message: MessageBody


class MessageDeleted(_ServerFrame):
    type: Literal["message_deleted"] = "message_deleted"
    conversation_id: uuid.UUID | None = None
    community_id: uuid.UUID | None = None
    seq: int
    message_id: uuid.UUID


class MessageRead(_ServerFrame):
    type: Literal["message_read"] = "message_read"
    conversation_id: uuid.UUID
    user_id: uuid.UUID
    seq: int  # the reader has read everything up to and including this seq
    ref: str | None = None


class UserTyping(_ServerFrame):
    type: Literal["user_typing"] = "user_typing"
    conversation_id: uuid.UUID | None = None
    community_id: uuid.UUID | None = None
    user_id: uuid.UUID
    typing: bool  # false on typing_stop, on expiry (TTL) and when the typist leaves
    expires_in: float | None = None  # with typing=true: seconds until it lapses unless refreshed


class UserOnline(_ServerFrame):
    type: Literal["user_online"] = "user_online"
    user_id: uuid.UUID
    status: Literal["online", "away"]


class UserOffline(_ServerFrame):
    type: Literal["user_offline"] = "user_offline"
    user_id: uuid.UUID
    status: Literal["offline"] = "offline"


class HeartbeatAck(_ServerFrame):
    type: Literal["heartbeat_ack"] = "heartbeat_ack"
    server_time: float
    ref: str | None = None


ErrorCode = Literal[
    "malformed_frame", "frame_too_large", "unknown_event", "invalid_frame", "unauthenticated",
    "invalid_token", "not_found", "forbidden", "conflict", "rate_limited", "resume_gap_too_large",
    "unavailable", "internal",
]


class Error(_ServerFrame):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    ref: str | None = None
    request_type: str | None = None   # the `type` of the frame that caused it, when known
    client_msg_id: str | None = None  # for a refused send_message
    retry_after: int | None = None    # seconds, for rate_limited
    details: list[dict[str, Any]] | None = None  # field errors, for invalid_frame


# Close codes --------------------------------------------------------------------------------------

CLOSE_NORMAL = 1000           # from a client: signing out or quitting, so presence goes offline at once
CLOSE_GOING_AWAY = 1001       # server shutting down: reconnect (to another instance) and resume
CLOSE_TOKEN_EXPIRED = 4001    # the token expired and no refreshed token was presented
CLOSE_SLOW_CONSUMER = 4008    # the client fell more than `outbox_frames` frames behind
CLOSE_UNAUTHORIZED = 4401     # no, late or invalid authentication


class FrameError(Exception):
    """A client frame that cannot be used; carries the error frame to send back."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error


def parse_client_frame(text: str | bytes | None, max_bytes: int) -> ClientFrame:
    """Decode one client frame, or raise FrameError with the reason as an error frame."""
    if text is None or isinstance(text, bytes):
        raise FrameError(Error(code="malformed_frame", message="frames are JSON text, not binary"))
    if len(text) > max_bytes or len(text.encode()) > max_bytes:
        raise FrameError(Error(code="frame_too_large", message=f"frames are limited to {max_bytes} bytes"))
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError(Error(code="malformed_frame", message="frame is not valid JSON")) from None
    if not isinstance(data, dict):
        raise FrameError(Error(code="malformed_frame", message="frame must be a JSON object"))
    kind = data.get("type")
    ref = data.get("ref") if isinstance(data.get("ref"), str) and len(data["ref"]) <= 64 else None
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        raise FrameError(Error(code="unknown_event", message=f"unknown event type {str(kind)[:40]!r}",
                               ref=ref))
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as exc:
        details = [{"loc": [str(p) for p in e["loc"][1:]], "msg": e["msg"]} for e in exc.errors()][:10]
        raise FrameError(Error(code="invalid_frame", message=f"invalid {kind} frame", ref=ref,
                               request_type=str(kind), details=details)) from None
