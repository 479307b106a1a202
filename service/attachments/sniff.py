"""The type of a file from its first bytes, against an allow-list. The client's Content-Type and
file extension are never consulted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["image", "audio", "file"]
HEAD_BYTES = 64


@dataclass(frozen=True)
class FileType:
    mime: str
    kind: Kind
    extension: str


PNG = FileType("image/png", "image", ".png")
JPEG = FileType("image/jpeg", "image", ".jpg")
GIF = FileType("image/gif", "image", ".gif")
WEBP = FileType("image/webp", "image", ".webp")
OGG = FileType("audio/ogg", "audio", ".ogg")
MP3 = FileType("audio/mpeg", "audio", ".mp3")
WAV = FileType("audio/wav", "audio", ".wav")
M4A = FileType("audio/mp4", "audio", ".m4a")
PDF = FileType("application/pdf", "file", ".pdf")

ALLOWED: tuple[FileType, ...] = (PNG, JPEG, GIF, WEBP, OGG, MP3, WAV, M4A, PDF)

_M4A_BRANDS = (b"M4A ", b"M4B ", b"mp42", b"isom", b"iso2", b"dash")


def sniff(head: bytes) -> FileType | None:
    """The allowed type whose signature `head` (the file's first bytes) carries, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if head.startswith(b"OggS"):
        return OGG
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
                                   and head[1] & 0x06 != 0):
        return MP3
    if head[4:8] == b"ftyp" and head[8:12] in _M4A_BRANDS:
        return M4A
    if head.startswith(b"%PDF-"):
        return PDF
    return None
