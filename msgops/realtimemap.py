"""The realtime map: how this target's realtime protocol is reached (msgops.yaml `realtime:`), for the
realtime probes and for `msgops load`'s listeners.

    realtime:
      protocol: socketio            # reference (default: a WebSocket at <api>/realtime) | socketio
      url: https://api.example.com  # default: the API URL
      path: /socket.io              # Socket.IO's HTTP path
      namespace: /messaging
      auth: {token: "{token}"}      # the connect payload; {token} is the persona's token
      events:                       # msgops's (SPEC-MSG-001) event names -> the target's
        join_conversation: joinRoom
        message_received: newMessage
      fields: {conversation_id: roomId}  # payload field names at any depth, msgops's name -> the target's
      acks: true                    # replies (joined, message_sent, errors) come as acknowledgements
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from msgops.errors import UserError

EVENT_NAMES = frozenset({
    "join_conversation", "leave_conversation", "send_message", "mark_read", "typing_start", "typing_stop",
    "heartbeat", "refresh_token", "joined", "left", "message_sent", "message_received", "message_updated",
    "message_deleted", "message_read", "user_typing", "user_online", "user_offline", "heartbeat_ack",
    "token_refreshed", "error", "authenticated",
})


class RealtimeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal["reference", "socketio"] = "reference"
    url: str | None = None
    path: str = "/realtime"
    namespace: str = "/messaging"
    auth: dict[str, Any] = Field(default_factory=lambda: {"token": "{token}"})
    events: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, str] = Field(default_factory=dict)  # renamed at any depth of a payload
    acks: bool = False  # replies come as Socket.IO acknowledgements (not only as events)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name not in EVENT_NAMES:
                raise ValueError(f"unknown event {name!r} (msgops's names: {', '.join(sorted(EVENT_NAMES))})")
        return value

    @field_validator("namespace", "path")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must start with /")
        return value

    def target_event(self, name: str) -> str:
        return self.events.get(name, name)

    def msgops_event(self, name: str) -> str:
        return next((ours for ours, theirs in self.events.items() if theirs == name), name)


def parse(raw: Mapping[str, Any] | None) -> RealtimeSettings:
    data = dict(raw or {})
    if data.get("protocol") == "socketio" and "path" not in data:
        data["path"] = "/socket.io"
    try:
        return RealtimeSettings.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting (protocol, url, path, namespace, auth, events, fields, acks)"
        raise UserError(f"msgops.yaml realtime.{loc}: {message}; fix msgops.yaml") from None
