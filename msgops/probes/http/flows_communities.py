"""Flows of communities: create one and find it, join, post, leave."""

from __future__ import annotations

from msgops.probes.http.flowkit import OK, Flow, flow, ids


@flow("create_community")
async def create_community(f: Flow) -> str:
    owner, visitor = await f.users("attendee", "attendee")
    word = f"msgopsflow{f.tag}"
    created = await f.op("attendee1 creates a public community", "create_community", owner, expect=OK,
                         name=f"{word} community", description="made by an msgops flow", is_private=False)
    cid = str(created["id"])
    f.verify("attendee1 owns it and is its only member",
             created.get("my_role") == "owner" and created.get("member_count") == 1,
             {k: created.get(k) for k in ("my_role", "member_count")})
    await f.op("attendee2 opens it", "get_community", visitor, expect=OK, community_id=cid)
    found = await f.op("attendee2 searches for it", "list_communities", visitor, expect=OK, query=word)
    f.verify("the search finds it", cid in ids(found["communities"]), ids(found["communities"]))
    await f.op("attendee1 posts in it", "send_community_message", owner, expect=OK, community_id=cid,
               content=f"welcome {f.tag}")
    return "a public community was created, found by another user, and posted in"


@flow("join_leave_community")
async def join_leave_community(f: Flow) -> str:
    owner, member = await f.users("attendee", "attendee")
    created = await f.op("attendee1 creates a public community", "create_community", owner, expect=OK,
                         name=f"msgops join {f.tag}", description="", is_private=False)
    cid = str(created["id"])

    async def members(what: str) -> list[str]:
        return ids((await f.op(what, "list_community_members", owner, expect=OK, community_id=cid))["members"],
                   "user_id")

    await f.op("attendee2 joins", "join_community", member, expect=OK, community_id=cid)
    after_join = await f.op("attendee2 reads the community", "get_community", member, expect=OK, community_id=cid)
    f.verify("it counts 2 members", after_join.get("member_count") == 2, after_join.get("member_count"))
    listed = await members("attendee1 lists the members")
    f.verify("attendee2 is listed", str(member.id) in listed, listed)
    await f.op("attendee2 posts", "send_community_message", member, expect=OK, community_id=cid,
               content=f"hi {f.tag}")
    await f.op("attendee2 leaves", "leave_community", member, expect=OK, community_id=cid)
    listed = await members("attendee1 lists the members again")
    f.verify("attendee2 is gone", str(member.id) not in listed, listed)
    after_leave = await f.op("attendee1 reads the community", "get_community", owner, expect=OK, community_id=cid)
    f.verify("it counts 1 member again", after_leave.get("member_count") == 1, after_leave.get("member_count"))
    await f.op("attendee2 can no longer post", "send_community_message", member, expect=403, community_id=cid,
               content=f"still here? {f.tag}")
    return "a member joined (count 2), posted, left (count 1) and could no longer post"
