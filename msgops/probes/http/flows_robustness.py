"""Flows about failure: errors are clean 4xx JSON answers, and a failed request leaves nothing behind."""

from __future__ import annotations

import uuid
from typing import Any

from msgops.probes.context import Skip
from msgops.probes.http.common import call, json_of, target_of, trim
from msgops.probes.http.flowkit import OK, Flow, flow, ids

# Text that means an error answer shows the service's insides.
_INTERNALS = ("Traceback", 'File "', "psycopg", "SQLSTATE", "syntax error at or near", "Exception:")


@flow("error_handling")
async def error_handling(f: Flow) -> str:
    user = await f.user()
    json_headers = {"Content-Type": "application/json"}
    # what, who, the operation whose route is hit (None: a route no API has), how it is called
    cases: list[tuple[str, Any, str | None, dict[str, Any]]] = [
        ("an unknown route", user, None, {}),
        ("a method the route does not have", user, "list_conversations", {"method": "DELETE"}),
        ("malformed JSON", user, "create_group", {"raw": b'{"kind": ', "headers": json_headers}),
        ("a missing required field", user, "create_group", {"body": {}}),
        ("an id that is not an id", user, "get_conversation", {"conversation_id": "not-a-uuid"}),
        ("an out-of-range query parameter", user, "list_conversations", {"limit": 0, "needs": ("limit",)}),
        ("a message over the length limit", user, "send_message",
         {"conversation_id": str(uuid.uuid4()), "content": "x" * 5001}),
        ("no token", None, "list_conversations", {}),
    ]
    missing: list[str] = []
    for what, who, name, values in cases:
        try:
            r = (await f.call(name, who, **values)).response if name else \
                await call(f.ctx, who, "GET", "/msgops-no-such-route")
        except Skip as skipped:
            missing.append(f"{what} ({skipped})")
            continue
        f.record(what, who, r, tuple(range(400, 500)), operation=name)
        body = json_of(r)
        f.verify(f"{what}: a 4xx answer", 400 <= r.status_code < 500, f"{target_of(r)} -> {r.status_code}")
        f.verify(f"{what}: a JSON body with `detail`", isinstance(body, dict) and "detail" in body,
                 trim(r.text, 120))
        leaked = [t for t in _INTERNALS if t in r.text]
        f.verify(f"{what}: no internals in the answer", not leaked, leaked)
    if missing:
        f.steps.append({"step": "not tried", "ok": True, "observed": missing})
    return f"{len(cases) - len(missing)} kinds of bad request got 4xx JSON answers with `detail` and no internals"


@flow("rollback_on_error")
async def rollback_on_error(f: Flow) -> str:
    a, b = await f.users("attendee", "attendee")
    title = f"msgops rollback {f.tag}"
    await f.op("attendee1 creates a group with one unknown member", "create_group", a,
               expect=(400, 403, 404, 409, 422), title=title, member_ids=[str(b.id), str(uuid.uuid4())])
    for who, label in ((a, "attendee1"), (b, "attendee2")):
        listing = await f.op(f"{label} lists conversations", "list_conversations", who, expect=OK)
        titles = [c.get("title") for c in listing["conversations"]]
        f.verify(f"no half-made group for {label}", title not in titles, titles)
    conv = await f.direct(a, b)
    first = await f.message(a, conv, f"msgops rollback {f.tag} #1")
    await f.op("a reply to a message of another conversation fails", "send_message", a,
               expect=(400, 404, 409, 422), needs=("parent_id",), conversation_id=conv, content="orphan reply",
               parent_id=str(uuid.uuid4()))
    second = await f.message(a, conv, f"msgops rollback {f.tag} #2")
    f.verify("the failed send consumed no sequence number", second["seq"] == first["seq"] + 1,
             {"first": first["seq"], "second": second["seq"]})
    page = await f.op("attendee2 reads the conversation", "list_messages", b, expect=OK, conversation_id=conv)
    f.verify("only the two good messages exist", ids(page["messages"]) == [str(first["id"]), str(second["id"])],
             ids(page["messages"]))
    return "failed writes (a group with an unknown member, an orphan reply) left no rows and no gaps"
