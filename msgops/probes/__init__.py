"""Probes observe one kind of thing each. A registry maps probe kinds to async functions.

A probe is `async def probe(ctx: Context, **params) -> Outcome`. It raises `Skip` when the check does
not apply to the target (it has no communities, say), `NotRun` when msgops was not given what the
check needs (no database configured), and any other exception is an `error` result: a check that
could not evaluate never passes.

Every probe kind also carries its rule doc — what it does, why it matters, an example of a
failure, and the fix — which `msgops checklists show` and the HTML report display.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from msgops.probes.context import CannotEvaluate, Context, NotRun, Skip
from msgops.results import Outcome

ProbeFn = Callable[..., Awaitable[Outcome]]

_FAMILIES = ("db", "http", "realtime", "env", "load")


@dataclass(frozen=True)
class ProbeDoc:
    what: str
    why: str
    example: str
    fix: str


@dataclass(frozen=True)
class Probe:
    kind: str
    fn: ProbeFn
    doc: ProbeDoc
    waits_long: bool = False  # mostly waits (settle periods, timeouts, long matrices): the engine starts it early


_REGISTRY: dict[str, Probe] = {}


def probe(kind: str, *, what: str, why: str, example: str, fix: str,
          waits_long: bool = False) -> Callable[[ProbeFn], ProbeFn]:
    """Register `fn` as the implementation of `kind`, with its four-line rule doc."""

    def register(fn: ProbeFn) -> ProbeFn:
        if kind in _REGISTRY:
            raise ValueError(f"probe kind {kind!r} registered twice")
        _REGISTRY[kind] = Probe(kind, fn, ProbeDoc(what, why, example, fix), waits_long)
        return fn

    return register


def _load_all() -> None:
    for family in _FAMILIES:
        try:
            importlib.import_module(f"msgops.probes.{family}")
        except ModuleNotFoundError as exc:
            if exc.name != f"msgops.probes.{family}":
                raise


_loaded = False


def registry() -> dict[str, Probe]:
    # Every family is imported once, whichever probe module happened to be imported first.
    global _loaded
    if not _loaded:
        _loaded = True
        _load_all()
    return _REGISTRY


def get(kind: str) -> Probe | None:
    return registry().get(kind)


__all__ = ["CannotEvaluate", "Context", "NotRun", "Outcome", "Probe", "ProbeDoc", "Skip", "get", "probe", "registry"]

