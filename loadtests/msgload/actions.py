"""The requests of the messaging workload, shared by closed-model users and the open-model loop.

Every request carries a stable `name` (the route template) so that statistics group by endpoint.
A send stamps its content with the intended send time; receivers measure delivery against it.
"""

from __future__ import annotations

import random
import time
from typing import Any

from locust.contrib.fasthttp import FastHttpSession

from msgload.runstate import RUN, WORDS, content
from msgops.load.accounting import TAIL_MARGIN_S

SEND_PATH = "/conversations/{id}/messages"
INTENDED = "msgops_intended"  # request context: the open model's intended start (epoch seconds)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def send_message(client: FastHttpSession, identity_index: int, n: int, intended: float | None = None) -> None:
    """POST one message with a client_msg_id; record it as sent when the API accepted it (201)."""
    plan = RUN.require_plan()
    ident = RUN.identity(identity_index)
    conversation = plan.conversation_id(ident.conversation)
    recorder = RUN.recorder
    started = time.time()
    seq = recorder.send_started(ident.conversation, started)
    key = RUN.message_key(ident.conversation, seq)
    stamp = intended if intended is not None else started
    context: dict[str, Any] = {INTENDED: intended} if intended is not None else {}
    accepted = False
    try:  # a send killed at the end of the run ends too (not accepted)
        response = client.post(f"/conversations/{conversation}/messages", name=SEND_PATH, headers=_auth(ident.token),
                               json={"content": content(key, stamp, n), "client_msg_id": f"{plan.run_id}.{key}"},
                               context=context)
        accepted = response.status_code == 201 and RUN.counted()
    finally:
        recorder.send_finished(ident.conversation, seq, accepted, key, started, time.time(),
                               plan.delivery_timeout_s + TAIL_MARGIN_S)


def send_broadcast(client: FastHttpSession, organizer_index: int, n: int, intended: float | None = None) -> None:
    plan = RUN.require_plan()
    ident = RUN.identity(organizer_index)
    context: dict[str, Any] = {INTENDED: intended} if intended is not None else {}
    client.post("/broadcasts", name="/broadcasts", headers=_auth(ident.token), context=context,
                json={"audience": "attendees", "phase": "during_show",
                      "content": f"msgops load broadcast {plan.run_id} {n}"})


def read(client: FastHttpSession, identity_index: int) -> None:
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
    if action == "conversations" or conversation is None:
        client.get("/conversations?limit=20", name="/conversations", headers=headers)
    elif action == "history":
        client.get(f"/conversations/{conversation}/messages?limit=50", name="/conversations/{id}/messages",
                   headers=headers)
    elif action == "search":
        client.get(f"/conversations/{conversation}/messages/search?q={random.choice(WORDS)}",
                   name="/conversations/{id}/messages/search", headers=headers)
    elif ident.community >= 0:
        client.get(f"/communities/{plan.community_id(ident.community)}/messages?limit=50",
                   name="/communities/{id}/messages", headers=headers)


UPLOAD_PATH = "/conversations/{id}/attachments"
UPLOAD_BYTES = 10 * 1024 * 1024 - 1024  # seed 001: "File Upload Time < 5s for 10MB files", under the 10 MB limit
_UPLOAD_BODY: bytes | None = None


def _upload_body() -> bytes:
    """One body shared by every upload of this process: a PDF by its content, just under 10 MB."""
    global _UPLOAD_BODY
    if _UPLOAD_BODY is None:
        head = b"%PDF-1.4\n% msgops load upload\n"
        _UPLOAD_BODY = head + b"0" * (UPLOAD_BYTES - len(head))
    return _UPLOAD_BODY


def upload(client: FastHttpSession, identity_index: int) -> None:
    """Upload one ~10 MB file into the identity's conversation (one request, the body streamed)."""
    plan = RUN.require_plan()
    ident = RUN.identity(identity_index)
    conversation = plan.conversation_id(ident.conversation)
    client.post(f"/conversations/{conversation}/attachments?filename=load.pdf", name=UPLOAD_PATH,
                headers={**_auth(ident.token), "Content-Type": "application/octet-stream"}, data=_upload_body())
