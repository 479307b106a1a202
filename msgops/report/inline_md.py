"""The seed checklists' inline Markdown (`code`, **bold**, *emphasis*, [links](url)) for HTML and for Markdown.

Deliberately tiny and safe: everything is escaped first, and only these few inline forms become markup.
Links become their text followed by the address as plain text: a report never links out.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_CODE = re.compile(r"(`+)(.+?)\1", re.S)
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_EMPH = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # only such a `<` can open raw HTML in Markdown
_MENTION = re.compile(r"(?<![\w.])@(?=\w)")  # on GitHub, @name notifies a person or a team


def _spans(text: str) -> list[tuple[bool, str]]:
    """(is_code, text) pieces: code spans are taken literally, as Markdown does."""
    pieces: list[tuple[bool, str]] = []
    last = 0
    for match in _CODE.finditer(text):
        pieces.append((False, text[last:match.start()]))
        pieces.append((True, match.group(2)))
        last = match.end()
    pieces.append((False, text[last:]))
    return [p for p in pieces if p[1]]


def _inline_html(escaped: str) -> str:
    out = _LINK.sub(lambda m: f'{m.group(1)} <span class="url">({m.group(2)})</span>', escaped)
    out = _BOLD.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", out)
    return _EMPH.sub(lambda m: f"<em>{m.group(1)}</em>", out)


def to_html(text: str | None) -> Markup:
    """Escaped HTML with the inline Markdown rendered; anything else stays literal text."""
    if not text:
        return Markup("")
    parts = []
    for is_code, piece in _spans(str(text)):
        safe = str(escape(piece))
        parts.append(f"<code>{safe}</code>" if is_code else _inline_html(safe))
    return Markup("".join(parts))


def to_plain(text: str | None) -> str:
    """The text without Markdown markers (terminal, annotations)."""
    if not text:
        return ""
    parts = []
    for is_code, piece in _spans(str(text)):
        if is_code:
            parts.append(piece)
            continue
        piece = _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", piece)
        piece = _BOLD.sub(lambda m: m.group(1) or m.group(2), piece)
        parts.append(_EMPH.sub(lambda m: m.group(1), piece))
    return "".join(parts)


def md_code(text: object) -> str:
    """`text` as one Markdown code span, whatever backticks it holds; nothing inside is escaped."""
    value = " ".join(str(text).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def md_text(text: object, table: bool = False) -> str:
    """Markdown text for a pull-request comment, on one line: code spans stay verbatim; outside them
    only what Markdown or GitHub would misread is escaped (a `<` that would open raw HTML, `|` inside a
    table, and `@name`, which would notify someone)."""
    value = " ".join(str(text or "").split())
    parts = []
    for is_code, piece in _spans(value):
        if is_code:
            parts.append(md_code(piece.replace("|", "\\|") if table else piece))
            continue
        piece = _MENTION.sub("@&#8203;", _TAG_START.sub("&lt;", piece))
        parts.append(piece.replace("|", "\\|") if table else piece)
    return "".join(parts)
