"""http.flow: end-to-end flows run as probe users, each step recorded as evidence."""

from __future__ import annotations

from typing import Annotated

from msgops.probes import OneOf, probe
from msgops.probes.context import Context
from msgops.probes.http import flows_communities, flows_messaging, flows_robustness, flows_roles  # noqa: F401
from msgops.probes.http.flowkit import FLOWS, Flow, FlowFailed
from msgops.results import Outcome, failed, passed


@probe("http.flow",
       what="Runs one named end-to-end flow (send_message, attendee_dm_dealer_blocked, "
            "organizer_broadcast_quota, moderator_soft_delete, pagination, rollback_on_error, ...) as fresh "
            "probe users, checking every status and the state each step leaves.",
       why="Unit checks pass while the product fails between them: a flow is what a user does, and the "
           "release is about whether that works.",
       example="attendee_dm_dealer_blocked: the attendee's direct message to a dealer answers 201 instead "
               "of 403.",
       fix="Read the failing step in the evidence (request, expected and observed status, body) and fix "
           "that endpoint or policy.")
async def http_flow(ctx: Context, flow: Annotated[str, OneOf(FLOWS, "flow")]) -> Outcome:
    if flow not in FLOWS:
        raise ValueError(f"unknown flow {flow!r} (expected one of {', '.join(sorted(FLOWS))})")
    ctx.require_api()
    return await _run(ctx, flow)


async def _run(ctx: Context, name: str) -> Outcome:
    f = Flow(ctx)
    try:
        summary = await FLOWS[name](f)
    except FlowFailed as exc:
        return failed(f"{name}: {exc}", flow=name, steps=f.steps)
    return passed(f"{name}: {summary}", flow=name, steps=f.steps)
