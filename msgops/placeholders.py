"""`{name}` placeholders in the request templates of msgops.yaml (`api:` and `personas:`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

PATTERN = re.compile(r"\{([^{}]*)\}")


def strings(value: Any) -> list[str]:
    """Every string inside a JSON-like value (a template's body), at any depth."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def unknown(texts: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The placeholders used in `texts` that are not `allowed`, in order of appearance."""
    known = set(allowed)
    return [name for text in texts for name in PATTERN.findall(text) if name not in known]


def listed(names: Iterable[str]) -> str:
    return ", ".join("{" + n + "}" for n in sorted(names))
