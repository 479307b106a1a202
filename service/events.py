"""What the REST side tells the realtime side, after a transaction commits.

Routes call `publish(state, kind, **fields)` once their transaction has committed. Payloads are
small references (ids and seq), never message bodies: the realtime hub reads what it delivers
from the database, so a dropped or coalesced notification can never deliver stale content.

Kinds and fields:
  message_created            conversation_id, seq
  message_updated            conversation_id, message_id, seq   (edit, delete, reaction)
  message_read               conversation_id, user_id, seq
  membership_changed         conversation_id, user_id           (added or removed)
  community_message_created  community_id, seq
  community_message_updated  community_id, message_id, seq
  community_membership_changed community_id, user_id
"""

from __future__ import annotations

import uuid
from typing import Any

from service.state import AppState


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


async def publish(state: AppState, kind: str, **fields: Any) -> None:
    if state.bus is None:
        return
    await state.bus.publish({"kind": kind, **{k: _plain(v) for k, v in fields.items()}})
