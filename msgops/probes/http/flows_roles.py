"""Flows of the role-based plan: who may message whom, broadcast quotas and audiences, moderation."""

from __future__ import annotations

from msgops.probes.http.flowkit import OK, Flow, find, flow, ids


@flow("attendee_dm_mvp_dealer")
async def attendee_dm_mvp_dealer(f: Flow) -> str:
    attendee, mvp = await f.users("attendee", "mvp_dealer")
    conv = await f.direct(attendee, mvp)
    sent = await f.message(attendee, conv, f"hello MVP dealer {f.tag}")
    page = await f.op("the MVP dealer reads it", "list_messages", mvp, expect=OK, conversation_id=conv)
    f.verify("the MVP dealer sees the message", str(sent["id"]) in ids(page["messages"]), ids(page["messages"]))
    await f.message(mvp, conv, f"hello attendee {f.tag}")
    return "an attendee messaged an MVP dealer, who read it and replied"


@flow("attendee_dm_dealer_blocked")
async def attendee_dm_dealer_blocked(f: Flow) -> str:
    attendee, dealer = await f.users("attendee", "dealer")
    await f.op("attendee1 starts a direct conversation with dealer1", "create_direct", attendee, expect=403,
               user_id=str(dealer.id))
    await f.op("dealer1 starts a direct conversation with attendee1", "create_direct", dealer, expect=403,
               user_id=str(attendee.id))
    await f.op("attendee1 pulls dealer1 into a group instead", "create_group", attendee, expect=403,
               title=f"msgops {f.tag}", member_ids=[str(dealer.id)])
    for who, label in ((attendee, "attendee1"), (dealer, "dealer1")):
        listing = await f.op(f"{label} lists conversations", "list_conversations", who, expect=OK)
        f.verify(f"{label} has no conversation from the refused attempts", listing["conversations"] == [],
                 ids(listing["conversations"]))
    return "attendee -> dealer and dealer -> attendee were refused (403), directly and through a group"


@flow("organizer_broadcast_quota")
async def organizer_broadcast_quota(f: Flow) -> str:
    organizer, attendee = await f.users("organizer", "attendee")
    sent = []
    for n in (1, 2):
        body = await f.op(f"pre-show broadcast #{n}", "broadcast", organizer, expect=OK, audience="attendees",
                          phase="pre_show", content=f"msgops {f.tag} #{n}")
        sent.append(str(body["id"]))
    await f.op("pre-show broadcast #3", "broadcast", organizer, expect=429, audience="attendees", phase="pre_show",
               content=f"msgops {f.tag} #3")
    f.verify("the refusal says when to retry", "retry_after" in f.steps[-1], f.steps[-1].get("retry_after"))
    inbox = await f.op("an attendee reads broadcasts", "list_broadcasts", attendee, expect=OK, phase="pre_show",
                       limit=200)
    f.verify("the attendee received both", set(sent) <= set(ids(inbox["broadcasts"])), sent)
    return "an organizer sent 2 pre-show broadcasts; the 3rd was refused with 429 and Retry-After"


@flow("mvp_broadcast_audience")
async def mvp_broadcast_audience(f: Flow) -> str:
    mvp, attendee, dealer = await f.users("mvp_dealer", "attendee", "dealer")
    body = await f.op("the MVP dealer broadcasts to attendees", "broadcast", mvp, expect=OK, audience="attendees",
                      phase="pre_show", content=f"msgops {f.tag}")
    await f.op("the MVP dealer broadcasts to dealers", "broadcast", mvp, expect=403, audience="dealers",
               phase="pre_show", content=f"msgops {f.tag}")
    to_attendee = await f.op("an attendee reads broadcasts", "list_broadcasts", attendee, expect=OK, limit=200)
    f.verify("the attendee received it", str(body["id"]) in ids(to_attendee["broadcasts"]))
    to_dealer = await f.op("a dealer reads broadcasts", "list_broadcasts", dealer, expect=OK, limit=200)
    f.verify("the dealer did not", str(body["id"]) not in ids(to_dealer["broadcasts"]))
    return "an MVP dealer reached attendees (201) and was refused for dealers (403)"


@flow("moderator_soft_delete")
async def moderator_soft_delete(f: Flow) -> str:
    a, b, moderator = await f.users("attendee", "attendee", "moderator")
    conv = await f.direct(a, b)
    sent = await f.message(b, conv, f"msgops offensive {f.tag}")
    mid = str(sent["id"])
    message = {"conversation_id": conv, "message_id": mid}
    done = await f.op("the moderator deletes it", "moderator_delete_message", moderator, expect=OK, **message)
    f.verify("the moderator's delete took effect", done.get("deleted") is True, done)
    after = await f.op("attendee1 reads the message", "get_message", a, expect=OK, **message)
    f.verify("a placeholder stays, its content gone", after.get("is_deleted") is True and after.get("content") is None,
             {k: after.get(k) for k in ("is_deleted", "content")})
    page = await f.op("attendee1 reads the conversation", "list_messages", a, expect=OK, conversation_id=conv)
    placeholder = find(page["messages"], mid)
    f.verify("the placeholder keeps its place in the history",
             placeholder is not None and placeholder.get("seq") == sent["seq"], placeholder)
    await f.op("the moderator still cannot read the conversation", "get_conversation", moderator, expect=404,
               conversation_id=conv)
    return "a moderator soft-deleted a message they cannot read; members see a content-free placeholder"


@flow("report_message")
async def report_message(f: Flow) -> str:
    a, b, outsider, moderator = await f.users("attendee", "attendee", "attendee", "moderator")
    conv = await f.direct(a, b)
    sent = await f.message(b, conv, f"msgops reportable {f.tag}")
    message = {"conversation_id": conv, "message_id": str(sent["id"])}
    report = await f.op("attendee1 reports it", "report", a, expect=OK, reason=f"msgops probe {f.tag}", **message)
    f.verify("the report is pending", report.get("report_status") == "pending", report.get("body"))
    await f.op("reporting it again", "report", a, expect=409, reason="again", **message)
    await f.op("an outsider cannot report it", "report", outsider, expect=404, reason="msgops probe", **message)
    await f.op("attendee1 cannot read the moderation queue", "list_reports", a, expect=403)
    queue = await f.op("the moderator reads the queue", "list_reports", moderator, expect=OK, limit=500)
    if len(queue["reports"]) < 500:  # a full page may not reach a report made a moment ago
        f.verify("the report is in the queue", str(report["id"]) in ids(queue["reports"], "report_id"))
    await f.op("the moderator deletes the message", "moderator_delete_message", moderator, expect=OK, **message)
    after = await f.op("the moderator reads the queue again", "list_reports", moderator, expect=OK, limit=500)
    f.verify("the report is resolved (out of the queue)", str(report["id"]) not in ids(after["reports"], "report_id"))
    return "a member reported a message once (409 on repeat); a moderator saw it and resolved it by deleting"
