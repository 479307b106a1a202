"""Flows of everyday messaging: send, edit/delete, search, page, unread counts, archive, idempotency."""

from __future__ import annotations

import asyncio
from typing import Any

from msgops.probes.http.flowkit import Flow, find, flow, ids


@flow("send_message")
async def send_message(f: Flow) -> str:
    a, b = await f.users("attendee", "attendee")
    conv = await f.direct(a, b)
    text = f"msgops flow hello {f.tag}"
    sent = await f.message(a, conv, text)
    page = await f.step("attendee2 reads the conversation", b, "GET", f"/conversations/{conv}/messages",
                        expect=200)
    mine = find(page["messages"], str(sent["id"]))
    f.verify("attendee2 sees the message with its text", mine is not None and mine["content"] == text, mine)
    listing = await f.step("attendee2 lists conversations", b, "GET", "/conversations", expect=200)
    entry = find(listing["conversations"], conv)
    f.verify("attendee2's list shows the conversation with 1 unread", entry is not None
             and entry["unread_count"] == 1, entry and {"unread_count": entry["unread_count"]})
    return "a direct message was stored, read by the other member and counted as unread"


@flow("edit_delete_message")
async def edit_delete_message(f: Flow) -> str:
    a, b = await f.users("attendee", "attendee")
    conv = await f.direct(a, b)
    sent = await f.message(a, conv)
    mid = sent["id"]
    edited = await f.step("attendee1 edits their message", a, "PATCH", f"/messages/{mid}",
                          json={"content": f"edited {f.tag}"}, expect=200)
    f.verify("the edit is stored and marked", edited["content"] == f"edited {f.tag}"
             and edited["edited_at"] is not None, {k: edited.get(k) for k in ("content", "edited_at")})
    await f.step("attendee2 cannot edit it", b, "PATCH", f"/messages/{mid}", json={"content": "hijack"},
                 expect=403)
    await f.step("attendee2 cannot delete it", b, "DELETE", f"/messages/{mid}", expect=403)
    await f.step("attendee1 deletes it", a, "DELETE", f"/messages/{mid}", expect=204)
    after = await f.step("attendee2 reads it", b, "GET", f"/messages/{mid}", expect=200)
    f.verify("a placeholder stays, without content", after["is_deleted"] is True and after["content"] is None,
             {k: after.get(k) for k in ("is_deleted", "content")})
    return "the sender edited and deleted their message; the other member could do neither"


@flow("search_messages")
async def search_messages(f: Flow) -> str:
    a, b, outsider = await f.users("attendee", "attendee", "attendee")
    conv = await f.direct(a, b)
    word = f"needle{f.tag}"
    hit = await f.message(a, conv, f"please find the {word} in this haystack")
    await f.message(a, conv, "an unrelated message about lunch")
    found = await f.step("attendee2 searches the conversation", b, "GET",
                         f"/conversations/{conv}/messages/search", params={"q": word}, expect=200)
    results = found.get("results", [])
    f.verify("exactly the matching message is found", ids(results) == [str(hit["id"])], ids(results))
    f.verify("the match is highlighted", "<mark>" in str(results[0].get("highlight", "")),
             results[0].get("highlight"))
    await f.step("an outsider cannot search it", outsider, "GET", f"/conversations/{conv}/messages/search",
                 params={"q": word}, expect=404)
    return "full-text search found the one matching message, highlighted, for members only"


@flow("pagination")
async def pagination(f: Flow) -> str:
    a, b = await f.users("attendee", "attendee")
    conv = await f.direct(a, b)
    # Two senders (each under the per-minute send limit), concurrently: seq numbers order them anyway.
    await asyncio.gather(*(f.message(a if i % 2 == 0 else b, conv, f"msgops page {f.tag} #{i + 1}")
                           for i in range(12)))
    path = f"/conversations/{conv}/messages"
    pages = {"the newest page of 5": {"limit": 5}, "the page before seq 8": {"limit": 5, "before": 8},
             "the page before seq 3": {"limit": 5, "before": 3}, "from the start, forwards": {"limit": 5, "after": 0},
             "resume after seq 10": {"since_seq": 10}}
    read = await asyncio.gather(*(f.step(what, a, "GET", path, params=params, expect=200)
                                  for what, params in pages.items()))
    (newest, more1), (older, more2), (oldest, more3), (forward, _more), (resumed, more4) = [
        ([m["seq"] for m in page["messages"]], bool(page["has_more"])) for page in read]
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

    async def unread(what: str) -> int | None:
        listing = await f.step(what, b, "GET", "/conversations", expect=200)
        entry = find(listing["conversations"], conv)
        return None if entry is None else int(entry["unread_count"])

    f.verify("attendee2 has 3 unread", await unread("attendee2 lists conversations") == 3)
    read = await f.step("attendee2 reads up to the 2nd message", b, "PATCH", f"/messages/{sent[1]['id']}/read",
                        expect=200)
    f.verify("1 unread left", read["unread_count"] == 1, read)
    f.verify("the list agrees: 1 unread", await unread("attendee2 lists conversations again") == 1)
    back = await f.step("marking an older message read", b, "PATCH", f"/messages/{sent[0]['id']}/read",
                        expect=200)
    f.verify("does not move the read position backwards", back["unread_count"] == 1, back)
    done = await f.step("attendee2 reads the last message", b, "PATCH", f"/messages/{sent[2]['id']}/read",
                        expect=200)
    f.verify("0 unread", done["unread_count"] == 0, done)
    return "unread counts went 3 -> 1 -> 0 with read receipts, never backwards"


@flow("archive_conversation")
async def archive_conversation(f: Flow) -> str:
    a, b = await f.users("attendee", "attendee")
    conv = await f.direct(a, b)

    async def listed(who: Any, what: str, archived: bool = False) -> bool:
        page = await f.step(what, who, "GET", "/conversations", params={"archived": str(archived).lower()},
                            expect=200)
        return conv in ids(page["conversations"])

    body = await f.step("attendee1 archives it", a, "PATCH", f"/conversations/{conv}/archive",
                        json={"archived": True}, expect=200)
    f.verify("marked archived", body["archived"] is True, body)
    f.verify("gone from attendee1's inbox", not await listed(a, "attendee1 lists conversations"))
    f.verify("in attendee1's archive", await listed(a, "attendee1 lists archived", archived=True))
    f.verify("still in attendee2's inbox", await listed(b, "attendee2 lists conversations"))
    await f.step("attendee1 unarchives it", a, "PATCH", f"/conversations/{conv}/archive",
                 json={"archived": False}, expect=200)
    f.verify("back in attendee1's inbox", await listed(a, "attendee1 lists conversations again"))
    return "archiving hid the conversation for one member only, and unarchiving brought it back"


@flow("idempotent_send")
async def idempotent_send(f: Flow) -> str:
    a, b = await f.users("attendee", "attendee")
    conv = await f.direct(a, b)
    path = f"/conversations/{conv}/messages"
    first = await f.message(a, conv, "msgops retry", client_msg_id=f"msgops-{f.tag}-1")
    again = await f.step("the same send is retried", a, "POST", path,
                         json={"content": "msgops retry", "client_msg_id": f"msgops-{f.tag}-1"}, expect=(200, 201))
    f.verify("the retry returns the first message", again["id"] == first["id"], again["id"])
    racing = await asyncio.gather(*(f.send(a, "POST", path, json={"content": "msgops race",
                                                                  "client_msg_id": f"msgops-{f.tag}-2"})
                                    for _ in range(3)))
    for r in racing:
        f.record("three concurrent retries of one send", a, r, (200, 201))
    statuses = sorted(r.status_code for r in racing)
    f.verify("one is stored (201), the others replay it (200)", statuses == [200, 200, 201], statuses)
    f.verify("all three return the same message", len({r.json()["id"] for r in racing}) == 1)
    page = await f.step("attendee2 reads the conversation", b, "GET", path, params={"limit": 50}, expect=200)
    keys = [m.get("client_msg_id") for m in page["messages"]]
    f.verify("each client_msg_id is stored once", keys.count(f"msgops-{f.tag}-1") == 1
             and keys.count(f"msgops-{f.tag}-2") == 1, keys)
    return "retries with the same client_msg_id, sequential or concurrent, stored one message each"
