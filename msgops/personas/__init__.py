"""Personas: the test users probes act as, from any identity provider (msgops.yaml `personas:`).

Five sources of tokens — an HS256 shared secret, a private key (RS256/ES256, with a `kid`), a
`token_command`, pre-issued tokens, Supabase Auth password sign-in — and, in the same section, how users
come to exist (`create`, `grant_role`) and how they are erased (`delete`). Modules: `model` (the
configuration), `tokens` (the sources), `provider` (users for probes, set-up and clean-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msgops.config import Target
    from msgops.personas.provider import NO_PERSONAS, Personas
    from msgops.personas.tokens import PersonaError

__all__ = ["NO_PERSONAS", "PersonaError", "Personas", "describe", "verify"]


def __getattr__(name: str) -> Any:
    """The provider on first use: the load generator's processes need only `model` and `tokens`."""
    if name in ("NO_PERSONAS", "Personas"):
        from msgops.personas import provider

        return getattr(provider, name)
    if name == "PersonaError":
        from msgops.personas import tokens

        return tokens.PersonaError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def describe(target: Target) -> str | None:
    """How this run gets test users, for the preflight; None when it has no way. UserError on a mistake."""
    from msgops.personas.provider import Personas

    personas = Personas.of(target)
    return personas.describe() if personas else None


async def verify(target: Target) -> str | None:
    """Before a run: one persona's token (None when there is no way to get test users), so a source that
    runs something (a command, a sign-in) stops the run with exit 3 on a mistake instead of erroring
    every check."""
    from msgops.personas.provider import Personas

    personas = Personas.of(target)
    return await personas.trial() if personas is not None else None
