"""Flows about failure: errors are clean 4xx JSON answers, and a failed request leaves nothing behind."""

from __future__ import annotations

import uuid
from typing import Any

from msgops.probes.http.common import json_of, target_of, trim
from msgops.probes.http.flowkit import Flow, flow, ids

# Text that means an error answer shows the service's insides.
_INTERNALS = ("Traceback", 'File "', "psycopg", "SQLSTATE", "syntax error at or near", "Exception:")


@flow("error_handling")
async def error_handling(f: Flow) -> str:
    user = await f.user()
    json_headers = {"Content-Type": "application/json"}
    cases: list[tuple[str, Any, str, str, dict[str, Any]]] = [
        ("an unknown route", user, "GET", "/msgops-no-such-route", {}),
        ("a method the route does not have", user, "DELETE", "/conversations", {}),
        ("malformed JSON", user, "POST", "/conversations", {"content": b'{"kind": ', "headers": json_headers}),
        ("a missing required field", user, "POST", "/conversations", {"json": {"kind": "group"}}),
        ("an id that is not an id", user, "GET", "/conversations/not-a-uuid", {}),
        ("an out-of-range query parameter", user, "GET", "/conversations", {"params": {"limit": 0}}),
        ("a message over the length limit", user, "POST", f"/conversations/{uuid.uuid4()}/messages",
         {"json": {"content": "x" * 5001}}),
        ("no token", None, "GET", "/conversations", {}),
    ]
    for what, who, method, path, kwargs in cases:
        r = await f.send(who, method, path, **kwargs)
        f.record(what, who, r, tuple(range(400, 500)))
        body = json_of(r)
        f.verify(f"{what}: a 4xx answer", 400 <= r.status_code < 500, f"{target_of(r)} -> {r.status_code}")
        f.verify(f"{what}: a JSON body with `detail`", isinstance(body, dict) and "detail" in body,
                 trim(r.text, 120))
        leaked = [t for t in _INTERNALS if t in r.text]
        f.verify(f"{what}: no internals in the answer", not leaked, leaked)
    return f"{len(cases)} kinds of bad request got 4xx JSON answers with `detail` and no internals"


@flow("rollback_on_error")
async def rollback_on_error(f: Flow) -> str:
    a, b = await f.users("attendee", "attendee")
    title = f"msgops rollback {f.tag}"
    await f.step("attendee1 creates a group with one unknown member", a, "POST", "/conversations",
                 json={"kind": "group", "title": title, "member_ids": [str(b.id), str(uuid.uuid4())]},
                 expect=(400, 403, 404, 409, 422))
    for who, label in ((a, "attendee1"), (b, "attendee2")):
        listing = await f.step(f"{label} lists conversations", who, "GET", "/conversations", expect=200)
        titles = [c.get("title") for c in listing["conversations"]]
        f.verify(f"no half-made group for {label}", title not in titles, titles)
    conv = await f.direct(a, b)
    first = await f.message(a, conv, f"msgops rollback {f.tag} #1")
    await f.step("a reply to a message of another conversation fails", a, "POST", f"/conversations/{conv}/messages",
                 json={"content": "orphan reply", "parent_id": str(uuid.uuid4())}, expect=(400, 404, 409, 422))
    second = await f.message(a, conv, f"msgops rollback {f.tag} #2")
    f.verify("the failed send consumed no sequence number", second["seq"] == first["seq"] + 1,
             {"first": first["seq"], "second": second["seq"]})
    page = await f.step("attendee2 reads the conversation", b, "GET", f"/conversations/{conv}/messages", expect=200)
    f.verify("only the two good messages exist", ids(page["messages"]) == [str(first["id"]), str(second["id"])],
             ids(page["messages"]))
    return "failed writes (a group with an unknown member, an orphan reply) left no rows and no gaps"
