"""Probes observe one kind of thing each. A registry maps probe kinds to async functions.

A probe is `async def probe(ctx: Context, <params>) -> Outcome`. It raises `Skip` when the check does
not apply to the target (it has no communities, say), `NotRun` when msgops was not given what the
check needs (no database configured), and any other exception is an `error` result: a check that
could not evaluate never passes.

The probe's signature is the declaration of its parameters: a checklist's `check:` is validated
against a pydantic model derived from it (see msgops.probes.params), and the checklist JSON Schema
is generated from those models. `@probe(..., params=Model)` gives an explicit model instead.

Every probe kind also carries its rule doc — what it does, why it matters, an example of a
failure, and the fix — which `msgops checklists show` and the HTML report display.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property

from pydantic import BaseModel

from msgops.probes.context import CannotEvaluate, Context, NotRun, Skip
from msgops.probes.params import Name, Names, OneOf, derive_params_model
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
    explicit_params: type[BaseModel] | None = field(default=None, repr=False)

    @cached_property
    def params(self) -> type[BaseModel]:
        """The model a check's parameters must satisfy (derived from the signature unless given)."""
        return self.explicit_params or derive_params_model(self.kind, self.fn)


_REGISTRY: dict[str, Probe] = {}


def probe(kind: str, *, what: str, why: str, example: str, fix: str,
          waits_long: bool = False, params: type[BaseModel] | None = None) -> Callable[[ProbeFn], ProbeFn]:
    """Register `fn` as the implementation of `kind`, with its four-line rule doc.

    Its parameters are those of `fn` after the context, typed by their hints; `params` overrides
    that with an explicit pydantic model.
    """

    def register(fn: ProbeFn) -> ProbeFn:
        if kind in _REGISTRY:
            raise ValueError(f"probe kind {kind!r} registered twice")
        _REGISTRY[kind] = Probe(kind, fn, ProbeDoc(what, why, example, fix), waits_long, params)
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


__all__ = ["CannotEvaluate", "Context", "Name", "Names", "NotRun", "OneOf", "Outcome", "Probe", "ProbeDoc", "Skip",
           "get", "probe", "registry"]

