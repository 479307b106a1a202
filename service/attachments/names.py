"""Filenames as users give them, made safe to store and to send back in Content-Disposition."""

from __future__ import annotations

import re
import unicodedata

_UNSAFE = re.compile(r"[^\w.\- ()]+")
_MAX = 120


def sanitize_filename(name: str, extension: str) -> str:
    """The base name only, without control or path characters, with the extension of the sniffed
    type (a PNG called `x.exe` becomes `x.png`)."""
    name = unicodedata.normalize("NFKC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    stem = _UNSAFE.sub("_", stem).strip(" ._") or "file"
    return stem[: _MAX - len(extension)] + extension
