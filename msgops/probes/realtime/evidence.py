"""Every realtime result says which protocol it was tested over, so a reader knows what passed or failed:
`protocol: websocket (reference)` or `protocol: socketio (namespace /messaging)`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from msgops.probes import ProbeFn, probe
from msgops.probes.context import Context
from msgops.probes.realtime import adapters
from msgops.results import Outcome


def realtime_probe(kind: str, **doc: Any) -> Callable[[ProbeFn], ProbeFn]:
    """`msgops.probes.probe` for a realtime kind: the outcome's evidence starts with the protocol."""

    def register(fn: ProbeFn) -> ProbeFn:
        @functools.wraps(fn)
        async def tested(ctx: Context, **params: Any) -> Outcome:
            outcome = await fn(ctx, **params)
            outcome.evidence = {"protocol": adapters.protocol(ctx), **outcome.evidence}
            return outcome

        probe(kind, **doc)(tested)
        return fn

    return register
