"""Message text hygiene: no markup survives, the length limits hold after cleaning.

Content is plain text. nh3 removes every tag (and the bodies of script/style) and escapes what
remains, so a client that renders it as HTML shows text, never markup.
"""

from __future__ import annotations

import unicodedata

import nh3

MAX_MESSAGE_CHARS = 5000
MAX_COMMUNITY_NAME_CHARS = 100


class EmptyAfterSanitizing(ValueError):
    pass


def clean_text(text: str) -> str:
    """Strip markup and control characters; raise EmptyAfterSanitizing if nothing is left."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    cleaned = nh3.clean(text, tags=set(), attributes={}, strip_comments=True).strip()
    if not cleaned:
        raise EmptyAfterSanitizing("content is empty after removing markup")
    return cleaned
