"""Flows of everyday messaging: send, edit/delete, search, page, unread counts, archive, idempotency."""

from __future__ import annotations

import asyncio
from typing import Any

from msgops.probes.http.flowkit import OK, Flow, find, flow, ids


async def _unread(f: Flow, what: str, user: Any, conv: str) -> int | None:
    listing = await f.op(what, "list_conversations", user, expect=OK)
    entry = find(listing["conversations"], conv)
    return None if entry is None or entry.get("unread_count") is None else int(entry["unread_count"])


@flow("send_message")
async def send_message(f: Flow) -> str:
    a, b = await f.users("attendee", "attendee")
    conv = await f.direct(a, b)
    text = f"msgops flow hello {f.tag}"
    sent = await f.message(a, conv, text)
    page = await f.op("attendee2 reads the conversation", "list_messages", b, expect=OK, conversation_id=conv)
    mine = find(page["messages"], str(sent["id"]))
    f.verify("attendee2 sees the message with its text", mine is not None and mine["content"] == text, mine)
    unread = await _unread(f, "attendee2 lists conversations", b, conv)
    f.verify("attendee2's list shows the conversation with 1 unread", unread == 1, {"unread_count": unread})
    return "a direct message was stored, read by the other member and counted as unread"


@flow("edit_delete_message")
async def edit_delete_message(f: Flow) -> str:
    a, b = await f.users("attendee", "attendee")
    conv = await f.direct(a, b)
    sent = await f.message(a, conv)
    message = {"conversation_id": conv, "message_id": str(sent["id"])}
    edited = await f.op("attendee1 edits their message", "edit_message", a, expect=OK, content=f"edited {f.tag}",
                        **message)
    f.verify("the edit is stored and marked", edited.get("content") == f"edited {f.tag}"
             and edited.get("edited_at") is not None, {k: edited.get(k) for k in ("content", "edited_at")})
    await f.op("attendee2 cannot edit it", "edit_message", b, expect=403, content="hijack", **message)
    await f.op("attendee2 cannot delete it", "delete_message", b, expect=403, **message)
    await f.op("attendee1 deletes it", "delete_message", a, expect=OK, **message)
    after = await f.op("attendee2 reads it", "get_message", b, expect=OK, **message)
    f.verify("a placeholder stays, without content", after.get("is_deleted") is True and after.get("content") is None,
             {k: after.get(k) for k in ("is_deleted", "content")})
    return "the sender edited and deleted their message; the other member could do neither"


@flow("search_messages")
async def search_messages(f: Flow) -> str:
    a, b, outsider = await f.users("attendee", "attendee", "attendee")
    conv = await f.direct(a, b)
    word = f"needle{f.tag}"
    hit = await f.message(a, conv, f"please find the {word} in this haystack")
    await f.message(a, conv, "an unrelated message about lunch")
    elsewhere = await f.direct(a, outsider)
    await f.message(a, elsewhere, f"the same {word} in another conversation")
    found = await f.op("attendee2 searches the conversation", "search", b, expect=OK, conversation_id=conv,
                       query=word)
    results = found.get("results") or []
    f.verify("exactly the matching message is found", ids(results) == [str(hit["id"])], ids(results))
    f.verify("the match is highlighted", "<mark>" in str(results[0].get("highlight", "")),
             results[0].get("highlight"))
    await f.op("an outsider cannot search it", "search", outsider, expect=404, conversation_id=conv, query=word)
    return "full-text search found the one matching message of the conversation, highlighted, for members only"


@flow("pagination")
async def pagination(f: Flow) -> str:
    a, b = await f.users("attendee", "attendee")
    conv = await f.direct(a, b)
    needs = ("limit", "before", "after", "since_seq")
    # Two senders (each under the per-minute send limit), concurrently: seq numbers order them anyway.
    await asyncio.gather(*(f.message(a if i % 2 == 0 else b, conv, f"msgops page {f.tag} #{i + 1}")
                           for i in range(12)))
    pages: dict[str, dict[str, Any]] = {
        "the newest page of 5": {"limit": 5}, "the page before seq 8": {"limit": 5, "before": 8},
        "the page before seq 3": {"limit": 5, "before": 3}, "from the start, forwards": {"limit": 5, "after": 0},
        "resume after seq 10": {"since_seq": 10}}
    read = await asyncio.gather(*(f.op(what, "list_messages", a, expect=OK, needs=needs, conversation_id=conv,
                                       **params) for what, params in pages.items()))
    (newest, more1), (older, more2), (oldest, more3), (forward, _more), (resumed, more4) = [
        ([m.get("seq") for m in page["messages"]], bool(page.get("has_more"))) for page in read]
    f.verify("newest page is seq 8..12, more before it", newest == [8, 9, 10, 11, 12] and more1, newest)
    f.verify("then seq 3..7, more before it", older == [3, 4, 5, 6, 7] and more2, older)
    f.verify("then seq 1..2, nothing before", oldest == [1, 2] and not more3, oldest)
    f.verify("forward paging starts at seq 1", forward == [1, 2, 3, 4, 5], forward)
    f.verify("resuming returns seq 11..12 and nothing more", resumed == [11, 12] and not more4, resumed)
    whole = oldest + older + newest
    f.verify("all history loads, in order, without gaps or duplicates", whole == list(range(1, 13)), whole)
    return "12 messages paged backwards and forwards without gaps or duplicates"


@flow("unread_counts")
async def unread_counts(f: Flow) -> str:
    a, b = await f.users("attendee", "attendee")
    conv = await f.direct(a, b)
    sent = sorted(await asyncio.gather(*(f.message(a, conv, f"msgops unread {f.tag} #{i}") for i in range(3))),
                  key=lambda m: int(m["seq"]))

    async def mark(what: str, message: dict[str, Any]) -> dict[str, Any]:
        return await f.op(what, "mark_read", b, expect=OK, conversation_id=conv, message_id=str(message["id"]),
                          seq=message["seq"])

    f.verify("attendee2 has 3 unread", await _unread(f, "attendee2 lists conversations", b, conv) == 3)
    read = await mark("attendee2 reads up to the 2nd message", sent[1])
    f.verify("1 unread left", read.get("unread_count") == 1, read)
    f.verify("the list agrees: 1 unread", await _unread(f, "attendee2 lists conversations again", b, conv) == 1)
    back = await mark("marking an older message read", sent[0])
    f.verify("does not move the read position backwards", back.get("unread_count") == 1, back)
    done = await mark("attendee2 reads the last message", sent[2])
    f.verify("0 unread", done.get("unread_count") == 0, done)
    return "unread counts went 3 -> 1 -> 0 with read receipts, never backwards"


@flow("archive_conversation")
async def archive_conversation(f: Flow) -> str:
    a, b = await f.users("attendee", "attendee")
    conv = await f.direct(a, b)

    async def listed(who: Any, what: str, archived: bool = False) -> bool:
        page = await f.op(what, "list_conversations", who, expect=OK, needs=("archived",),
                          archived=str(archived).lower())
        return conv in ids(page["conversations"])

    body = await f.op("attendee1 archives it", "archive_conversation", a, expect=OK, conversation_id=conv,
                      archived=True)
    f.verify("marked archived", body.get("archived") is True, body)
    f.verify("gone from attendee1's inbox", not await listed(a, "attendee1 lists conversations"))
    f.verify("in attendee1's archive", await listed(a, "attendee1 lists archived", archived=True))
    f.verify("still in attendee2's inbox", await listed(b, "attendee2 lists conversations"))
    await f.op("attendee1 unarchives it", "archive_conversation", a, expect=OK, conversation_id=conv, archived=False)
    f.verify("back in attendee1's inbox", await listed(a, "attendee1 lists conversations again"))
    return "archiving hid the conversation for one member only, and unarchiving brought it back"


@flow("idempotent_send")
async def idempotent_send(f: Flow) -> str:
    a, b = await f.users("attendee", "attendee")
    conv = await f.direct(a, b)
    retry = {"conversation_id": conv, "needs": ("client_msg_id",)}
    first = await f.message(a, conv, "msgops retry", client_msg_id=f"msgops-{f.tag}-1")
    again = await f.op("the same send is retried", "send_message", a, expect=(200, 201), content="msgops retry",
                       client_msg_id=f"msgops-{f.tag}-1", **retry)
    f.verify("the retry returns the first message", again["id"] == first["id"], again["id"])
    racing = await asyncio.gather(*(f.call("send_message", a, content="msgops race",
                                           client_msg_id=f"msgops-{f.tag}-2", **retry) for _ in range(3)))
    for answer in racing:
        f.record("three concurrent retries of one send", a, answer.response, (200, 201), operation="send_message")
    statuses = sorted(answer.response.status_code for answer in racing)
    f.verify("one is stored (201), the others replay it (200)", statuses == [200, 200, 201], statuses)
    f.verify("all three return the same message", len({answer["id"] for answer in racing}) == 1)
    page = await f.op("attendee2 reads the conversation", "list_messages", b, expect=OK, conversation_id=conv,
                      limit=50)
    keys = [m.get("client_msg_id") for m in page["messages"]]
    f.verify("each client_msg_id is stored once", keys.count(f"msgops-{f.tag}-1") == 1
             and keys.count(f"msgops-{f.tag}-2") == 1, keys)
    return "retries with the same client_msg_id, sequential or concurrent, stored one message each"
