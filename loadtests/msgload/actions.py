"""The requests of the messaging workload, shared by closed-model users and the open-model loop.

Each is an operation of the target's API map, prepared once per process from the plan
(msgops.load.operations): method, filled path, JSON body. Every request carries a stable `name` (the
method and the route template) so that statistics group by endpoint. A send stamps its content with
the intended send time; receivers measure delivery against it.
"""

from __future__ import annotations

import random
import time
from typing import Any

from msgload.http import Client
from msgload.runstate import RUN, WORDS, content
from msgops.load.accounting import TAIL_MARGIN_S
from msgops.load.measure import open_model_start
from msgops.load.operations import Prepared

INTENDED = "msgops_intended"  # request context: the open model's intended start (epoch seconds)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _op(action: str) -> Prepared:
    return RUN.operations()[action]


def send_message(client: Client, identity_index: int, n: int, intended: float | None = None) -> None:
    """POST one message with a client_msg_id; record it as sent when the API accepted it (201)."""
    plan = RUN.require_plan()
    ident = RUN.identity(identity_index)
    conversation = plan.conversation_id(ident.conversation)
    recorder = RUN.recorder
    op = _op("send")
    started = time.time()
    seq = recorder.send_started(ident.conversation, started)
    key = RUN.message_key(ident.conversation, seq)
    stamp = open_model_start(intended, started) if intended is not None else started  # timed like the send
    context: dict[str, Any] = {INTENDED: intended} if intended is not None else {}
    accepted = False
    try:  # a send killed at the end of the run ends too (not accepted)
        values = {"conversation_id": conversation, "content": content(key, stamp, n),
                  "client_msg_id": f"{plan.run_id}.{key}"}
        response = client.request(op.method, op.url(values), name=op.name, headers=_auth(ident.token),
                                  json=op.json(values), context=context)
        accepted = op.accepted(response.status_code) and RUN.counted()
    finally:
        recorder.send_finished(ident.conversation, seq, accepted, key, started, time.time(),
                               plan.delivery_timeout_s + TAIL_MARGIN_S)


def send_broadcast(client: Client, organizer_index: int, n: int, intended: float | None = None) -> None:
    plan = RUN.require_plan()
    ident = RUN.identity(organizer_index)
    context: dict[str, Any] = {INTENDED: intended} if intended is not None else {}
    op = _op("broadcast")
    values = {"audience": "attendees", "phase": "during_show", "content": f"msgops load broadcast {plan.run_id} {n}"}
    client.request(op.method, op.url(values), name=op.name, headers=_auth(ident.token), context=context,
                   json=op.json(values))


def read(client: Client, identity_index: int) -> None:
    """One reader action, chosen by the profile's reader_mix."""
    plan = RUN.require_plan()
    ident = RUN.identity(identity_index)
    headers = _auth(ident.token)
    mix = plan.reader_mix
    actions = [a for a in ("conversations", "history", "search", "communities") if mix.get(a)]
    if not actions:
        return
    action = random.choices(actions, weights=[mix[a] for a in actions])[0]
    conversation = plan.conversation_id(ident.conversation) if ident.conversation >= 0 else None
    values: dict[str, Any]
    if action == "conversations" or conversation is None:
        action, values = "conversations", {"limit": 20}
    elif action == "history":
        values = {"conversation_id": conversation, "limit": 50}
    elif action == "search":
        values = {"conversation_id": conversation, "query": random.choice(WORDS)}
    elif ident.community >= 0:
        values = {"community_id": plan.community_id(ident.community), "limit": 50}
    else:
        return
    op = _op(action)
    client.request(op.method, op.url(values), name=op.name, headers=headers, json=op.json(values))


UPLOAD_BYTES = 10 * 1024 * 1024 - 1024  # seed 001: "File Upload Time < 5s for 10MB files", under the 10 MB limit
_UPLOAD_BODY: bytes | None = None


def _upload_body() -> bytes:
    """One body shared by every upload of this process: a PDF by its content, just under 10 MB."""
    global _UPLOAD_BODY
    if _UPLOAD_BODY is None:
        head = b"%PDF-1.4\n% msgops load upload\n"
        _UPLOAD_BODY = head + b"0" * (UPLOAD_BYTES - len(head))
    return _UPLOAD_BODY


def upload(client: Client, identity_index: int) -> None:
    """Upload one ~10 MB file into the identity's conversation (one request, the body streamed)."""
    plan = RUN.require_plan()
    ident = RUN.identity(identity_index)
    conversation = plan.conversation_id(ident.conversation)
    op = _op("upload")
    values = {"conversation_id": conversation, "filename": "load.pdf", "content_type": "application/octet-stream"}
    client.request(op.method, op.url(values), name=op.name, data=_upload_body(),
                   headers={**_auth(ident.token), "Content-Type": "application/octet-stream",
                            **op.header_values(values)})
