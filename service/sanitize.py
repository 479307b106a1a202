"""The one sanitizing path for text other users see: names, titles, descriptions, message content,
report reasons, display names (from `PATCH /me` and from token claims).

Content is plain text. `clean_text`:
- normalizes to NFC and drops control characters (NUL included) except newline and tab;
- drops the bidirectional embedding, override and isolate controls (U+202A..U+202E, U+2066..U+2069),
  which make text display in an order other than the one it was written in ("Trojan Source");
- removes every tag (and the bodies of script/style) and escapes what remains with nh3, so a client
  that renders it as HTML shows text, never markup;
- neutralizes `javascript:` and `vbscript:` link schemes (also when spelled with spaces or mixed
  case), so a client that turns URLs in text into links never makes a script link.

`cleaned(limit)` is the validator of such a field: the limit holds after cleaning too.
"""

from __future__ import annotations

import re
import unicodedata

import nh3
from pydantic import AfterValidator

MAX_MESSAGE_CHARS = 5000
MAX_COMMUNITY_NAME_CHARS = 100
MAX_DISPLAY_NAME_CHARS = 100

# Control characters (Unicode category Cc is exactly U+0000..U+001F and U+007F..U+009F) other than
# newline and tab, and the bidirectional controls: one character class, one pass in C.
_DROPPED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Text without these comes out of nh3 as it went in: markup starts with "<", entities with "&"; nh3
# escapes ">" and U+00A0, turns CR into LF and drops a leading byte-order mark.
_HTML_SIGNIFICANT = re.compile("[&<>\r\xa0\ufeff]")
_SCRIPT_SCHEME = re.compile(r"(?i)\b(" + "|".join(r"\s*".join(word) for word in ("javascript", "vbscript"))
                            + r")\s*:")
NEUTRALIZED_SCHEME_SUFFIX = "-blocked:"


class EmptyAfterSanitizing(ValueError):
    pass


def _drop_controls(text: str) -> str:
    return _DROPPED.sub("", text)


def clean_text(text: str) -> str:
    """Plain, markup-free text; raise EmptyAfterSanitizing if nothing is left."""
    text = _drop_controls(unicodedata.normalize("NFC", text))
    text = _SCRIPT_SCHEME.sub(lambda m: re.sub(r"\s", "", m.group(1)) + NEUTRALIZED_SCHEME_SUFFIX, text)
    if _HTML_SIGNIFICANT.search(text):
        text = nh3.clean(text, tags=set(), attributes={}, strip_comments=True)
    cleaned = text.strip()
    if not cleaned:
        raise EmptyAfterSanitizing("content is empty after removing markup")
    return cleaned


def clean_within(text: str, limit: int, *, optional: bool = False) -> str:
    """`clean_text`, then the limit again (escaping can lengthen text). `optional`: empty is fine.

    A NUL in text a client sends is refused rather than dropped: no client sends one by accident."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        cleaned = clean_text(text)
    except EmptyAfterSanitizing:
        if not optional:
            raise
        return ""
    if len(cleaned) > limit:
        raise ValueError(f"at most {limit} characters after removing and escaping markup")
    return cleaned


def cleaned(limit: int, *, optional: bool = False) -> AfterValidator:
    """The validator of a str field cleaned by `clean_text`: `Annotated[str, Field(...), cleaned(limit)]`."""
    return AfterValidator(lambda value: clean_within(value, limit, optional=optional))


def display_name(value: object) -> str:
    """A display name from an untrusted source (a token claim): cleaned, cut to the limit, '' if unusable."""
    if not isinstance(value, str):
        return ""
    try:
        return clean_text(value)[:MAX_DISPLAY_NAME_CHARS]
    except EmptyAfterSanitizing:
        return ""
