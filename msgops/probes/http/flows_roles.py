"""Flows of the role-based plan: who may message whom, broadcast quotas and audiences, moderation."""

from __future__ import annotations

from msgops.probes.http.flowkit import Flow, find, flow, ids


@flow("attendee_dm_mvp_dealer")
async def attendee_dm_mvp_dealer(f: Flow) -> str:
    attendee, mvp = await f.users("attendee", "mvp_dealer")
    conv = await f.direct(attendee, mvp)
    sent = await f.message(attendee, conv, f"hello MVP dealer {f.tag}")
    page = await f.step("the MVP dealer reads it", mvp, "GET", f"/conversations/{conv}/messages", expect=200)
    f.verify("the MVP dealer sees the message", str(sent["id"]) in ids(page["messages"]), ids(page["messages"]))
    await f.message(mvp, conv, f"hello attendee {f.tag}")
    return "an attendee messaged an MVP dealer, who read it and replied"


@flow("attendee_dm_dealer_blocked")
async def attendee_dm_dealer_blocked(f: Flow) -> str:
    attendee, dealer = await f.users("attendee", "dealer")
    await f.step("attendee1 starts a direct conversation with dealer1", attendee, "POST", "/conversations",
                 json={"kind": "direct", "user_id": str(dealer.id)}, expect=403)
    await f.step("dealer1 starts a direct conversation with attendee1", dealer, "POST", "/conversations",
                 json={"kind": "direct", "user_id": str(attendee.id)}, expect=403)
    await f.step("attendee1 pulls dealer1 into a group instead", attendee, "POST", "/conversations",
                 json={"kind": "group", "title": f"msgops {f.tag}", "member_ids": [str(dealer.id)]}, expect=403)
    for who, label in ((attendee, "attendee1"), (dealer, "dealer1")):
        listing = await f.step(f"{label} lists conversations", who, "GET", "/conversations", expect=200)
        f.verify(f"{label} has no conversation from the refused attempts", listing["conversations"] == [],
                 ids(listing["conversations"]))
    return "attendee -> dealer and dealer -> attendee were refused (403), directly and through a group"


@flow("organizer_broadcast_quota")
async def organizer_broadcast_quota(f: Flow) -> str:
    organizer, attendee = await f.users("organizer", "attendee")
    sent = []
    for n in (1, 2):
        body = await f.step(f"pre-show broadcast #{n}", organizer, "POST", "/broadcasts",
                            json={"audience": "attendees", "phase": "pre_show", "content": f"msgops {f.tag} #{n}"},
                            expect=201)
        sent.append(str(body["id"]))
    await f.step("pre-show broadcast #3", organizer, "POST", "/broadcasts",
                 json={"audience": "attendees", "phase": "pre_show", "content": f"msgops {f.tag} #3"}, expect=429)
    f.verify("the refusal says when to retry", "retry_after" in f.steps[-1], f.steps[-1].get("retry_after"))
    inbox = await f.step("an attendee reads broadcasts", attendee, "GET", "/broadcasts",
                         params={"phase": "pre_show", "limit": 200}, expect=200)
    f.verify("the attendee received both", set(sent) <= set(ids(inbox)), sent)
    return "an organizer sent 2 pre-show broadcasts; the 3rd was refused with 429 and Retry-After"


@flow("mvp_broadcast_audience")
async def mvp_broadcast_audience(f: Flow) -> str:
    mvp, attendee, dealer = await f.users("mvp_dealer", "attendee", "dealer")
    body = await f.step("the MVP dealer broadcasts to attendees", mvp, "POST", "/broadcasts",
                        json={"audience": "attendees", "phase": "pre_show", "content": f"msgops {f.tag}"},
                        expect=201)
    await f.step("the MVP dealer broadcasts to dealers", mvp, "POST", "/broadcasts",
                 json={"audience": "dealers", "phase": "pre_show", "content": f"msgops {f.tag}"}, expect=403)
    to_attendee = await f.step("an attendee reads broadcasts", attendee, "GET", "/broadcasts",
                               params={"limit": 200}, expect=200)
    f.verify("the attendee received it", str(body["id"]) in ids(to_attendee))
    to_dealer = await f.step("a dealer reads broadcasts", dealer, "GET", "/broadcasts", params={"limit": 200},
                             expect=200)
    f.verify("the dealer did not", str(body["id"]) not in ids(to_dealer))
    return "an MVP dealer reached attendees (201) and was refused for dealers (403)"


@flow("moderator_soft_delete")
async def moderator_soft_delete(f: Flow) -> str:
    a, b, moderator = await f.users("attendee", "attendee", "moderator")
    conv = await f.direct(a, b)
    sent = await f.message(b, conv, f"msgops offensive {f.tag}")
    mid = str(sent["id"])
    done = await f.step("the moderator deletes it", moderator, "POST", f"/moderation/messages/{mid}/delete",
                        expect=200)
    f.verify("the moderator's delete took effect", done.get("deleted") is True, done)
    after = await f.step("attendee1 reads the message", a, "GET", f"/messages/{mid}", expect=200)
    f.verify("a placeholder stays, its content gone", after["is_deleted"] is True and after["content"] is None,
             {k: after.get(k) for k in ("is_deleted", "content")})
    page = await f.step("attendee1 reads the conversation", a, "GET", f"/conversations/{conv}/messages", expect=200)
    placeholder = find(page["messages"], mid)
    f.verify("the placeholder keeps its place in the history",
             placeholder is not None and placeholder["seq"] == sent["seq"], placeholder)
    await f.step("the moderator still cannot read the conversation", moderator, "GET", f"/conversations/{conv}",
                 expect=404)
    return "a moderator soft-deleted a message they cannot read; members see a content-free placeholder"


@flow("report_message")
async def report_message(f: Flow) -> str:
    a, b, outsider, moderator = await f.users("attendee", "attendee", "attendee", "moderator")
    conv = await f.direct(a, b)
    mid = str((await f.message(b, conv, f"msgops reportable {f.tag}"))["id"])
    report = await f.step("attendee1 reports it", a, "POST", f"/messages/{mid}/report",
                          json={"reason": f"msgops probe {f.tag}"}, expect=201)
    f.verify("the report is pending", report.get("report_status") == "pending", report)
    await f.step("reporting it again", a, "POST", f"/messages/{mid}/report", json={"reason": "again"}, expect=409)
    await f.step("an outsider cannot report it", outsider, "POST", f"/messages/{mid}/report",
                 json={"reason": "msgops probe"}, expect=404)
    await f.step("attendee1 cannot read the moderation queue", a, "GET", "/moderation/reports", expect=403)
    queue = await f.step("the moderator reads the queue", moderator, "GET", "/moderation/reports",
                         params={"limit": 500}, expect=200)
    if len(queue) < 500:  # a full page may not reach a report made a moment ago
        f.verify("the report is in the queue", str(report["id"]) in ids(queue, "report_id"))
    await f.step("the moderator deletes the message", moderator, "POST", f"/moderation/messages/{mid}/delete",
                 expect=200)
    after = await f.step("the moderator reads the queue again", moderator, "GET", "/moderation/reports",
                         params={"limit": 500}, expect=200)
    f.verify("the report is resolved (out of the queue)", str(report["id"]) not in ids(after, "report_id"))
    return "a member reported a message once (409 on repeat); a moderator saw it and resolved it by deleting"
