"""Flows of communities: create one and find it, join, post, leave."""

from __future__ import annotations

from msgops.probes.http.flowkit import Flow, flow, ids


@flow("create_community")
async def create_community(f: Flow) -> str:
    owner, visitor = await f.users("attendee", "attendee")
    word = f"msgopsflow{f.tag}"
    created = await f.step("attendee1 creates a public community", owner, "POST", "/communities",
                           json={"name": f"{word} community", "description": "made by an msgops flow",
                                 "is_private": False}, expect=201)
    cid = str(created["id"])
    f.verify("attendee1 owns it and is its only member",
             created.get("my_role") == "owner" and created.get("member_count") == 1,
             {k: created.get(k) for k in ("my_role", "member_count")})
    await f.step("attendee2 opens it", visitor, "GET", f"/communities/{cid}", expect=200)
    found = await f.step("attendee2 searches for it", visitor, "GET", "/communities", params={"q": word},
                         expect=200)
    f.verify("the search finds it", cid in ids(found), ids(found))
    await f.step("attendee1 posts in it", owner, "POST", f"/communities/{cid}/messages",
                 json={"content": f"welcome {f.tag}"}, expect=201)
    return "a public community was created, found by another user, and posted in"


@flow("join_leave_community")
async def join_leave_community(f: Flow) -> str:
    owner, member = await f.users("attendee", "attendee")
    created = await f.step("attendee1 creates a public community", owner, "POST", "/communities",
                           json={"name": f"msgops join {f.tag}", "description": "", "is_private": False},
                           expect=201)
    cid = str(created["id"])
    await f.step("attendee2 joins", member, "POST", f"/communities/{cid}/join", expect=(201, 200))
    after_join = await f.step("attendee2 reads the community", member, "GET", f"/communities/{cid}", expect=200)
    f.verify("it counts 2 members", after_join.get("member_count") == 2, after_join.get("member_count"))
    members = await f.step("attendee1 lists the members", owner, "GET", f"/communities/{cid}/members", expect=200)
    f.verify("attendee2 is listed", str(member.id) in ids(members, "user_id"), ids(members, "user_id"))
    await f.step("attendee2 posts", member, "POST", f"/communities/{cid}/messages",
                 json={"content": f"hi {f.tag}"}, expect=201)
    await f.step("attendee2 leaves", member, "POST", f"/communities/{cid}/leave", expect=(204, 200))
    members = await f.step("attendee1 lists the members again", owner, "GET", f"/communities/{cid}/members",
                           expect=200)
    f.verify("attendee2 is gone", str(member.id) not in ids(members, "user_id"), ids(members, "user_id"))
    after_leave = await f.step("attendee1 reads the community", owner, "GET", f"/communities/{cid}", expect=200)
    f.verify("it counts 1 member again", after_leave.get("member_count") == 1, after_leave.get("member_count"))
    await f.step("attendee2 can no longer post", member, "POST", f"/communities/{cid}/messages",
                 json={"content": f"still here? {f.tag}"}, expect=403)
    return "a member joined (count 2), posted, left (count 1) and could no longer post"
