"""Personas: the test users probes act as, from any identity provider (msgops.yaml `personas:`).

Five sources of tokens — an HS256 shared secret, a private key (RS256/ES256, with a `kid`), a
`token_command`, pre-issued tokens, Supabase Auth password sign-in — and, in the same section, how users
come to exist (`create`, `grant_role`) and how they are erased (`delete`). Modules: `model` (the
configuration), `tokens` (the sources), `provider` (users for probes, set-up and clean-up).
"""

from __future__ import annotations

from msgops.config import Target
from msgops.personas.provider import NO_PERSONAS, Personas
from msgops.personas.tokens import PersonaError

__all__ = ["NO_PERSONAS", "PersonaError", "Personas", "describe", "verify"]


def describe(target: Target) -> str | None:
    """How this run gets test users, for the preflight; None when it has no way. UserError on a mistake."""
    personas = Personas.of(target)
    return personas.describe() if personas else None


async def verify(target: Target) -> str | None:
    """Before a run: one persona's token (None when there is no way to get test users), so a source that
    runs something (a command, a sign-in) stops the run with exit 3 on a mistake instead of erroring
    every check."""
    personas = Personas.of(target)
    return await personas.trial() if personas is not None else None
