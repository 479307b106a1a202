"""Validation and processing of one uploaded file on disk: its sniffed type, image dimensions,
EXIF removed (by re-encoding), a thumbnail for images, the duration of audio. Synchronous and
CPU-bound: callers run it in a worker thread."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.attachments.config import AttachmentSettings
from service.attachments.sniff import ALLOWED, GIF, HEAD_BYTES, FileType, sniff

# A decoded image takes width x height x 4 bytes whatever its file size: decode at most two at once
# (per process), so ten concurrent photo uploads cost two decodes of memory, not ten.
_DECODES = threading.BoundedSemaphore(2)


class Rejected(Exception):
    """The file is refused: `status` is the HTTP answer, the message says why and what is allowed."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Processed:
    type: FileType
    size: int
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    thumbnail: Path | None = None


def allowed_types() -> list[str]:
    return [t.mime for t in ALLOWED]


def process(path: Path, settings: AttachmentSettings) -> Processed:
    """Check the file at `path` and rewrite it in place where needed (images lose their metadata)."""
    size = path.stat().st_size
    if size > settings.max_bytes:
        raise Rejected(413, f"file is {size} bytes; the limit is {settings.max_bytes}")
    if size == 0:
        raise Rejected(422, "file is empty")
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    kind = sniff(head)
    if kind is None:
        raise Rejected(415, "file type not allowed (judged by its content); allowed: " + ", ".join(allowed_types()))
    if kind.kind == "image":
        return _image(path, kind, settings)
    if kind.kind == "audio":
        return _audio(path, kind, settings)
    return Processed(kind, size)


def _image(path: Path, kind: FileType, settings: AttachmentSettings) -> Processed:
    from PIL import Image, UnidentifiedImageError

    side = settings.max_image_side
    try:
        with Image.open(path) as im:
            width, height = im.size
            if max(width, height) > side:
                raise Rejected(422, f"image is {width}x{height} pixels; the limit is {side} on either side")
            if width * height > settings.max_image_pixels:
                raise Rejected(422, f"image is {width}x{height} = {width * height} pixels; the limit is "
                                    f"{settings.max_image_pixels}")
            return _decode_and_clean(path, kind, settings, im)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise Rejected(415, f"not a valid {kind.mime} image: {exc}") from None


def _decode_and_clean(path: Path, kind: FileType, settings: AttachmentSettings, im: Any) -> Processed:
    """Decode (two at a time), re-encode without metadata, and write a JPEG thumbnail."""
    from PIL import ImageOps

    width, height = im.size
    with _DECODES:
        im.load()
        thumbnail = im.copy()
        if kind != GIF:  # re-encoding drops EXIF (GPS, camera) and every other metadata chunk
            clean = ImageOps.exif_transpose(im)
            width, height = clean.size
            tmp = path.with_name(path.name + ".clean")
            options = {"quality": 90} if kind.mime in ("image/jpeg", "image/webp") else {}
            clean.save(tmp, format=im.format, **options)
            os.replace(tmp, path)
            thumbnail = clean
        thumbnail.thumbnail((settings.thumbnail_side, settings.thumbnail_side))
        if thumbnail.mode not in ("RGB", "L"):
            thumbnail = thumbnail.convert("RGB")
        thumb_path = path.with_name(path.name + ".thumb.jpg")
        thumbnail.save(thumb_path, format="JPEG", quality=80)
    return Processed(kind, path.stat().st_size, width, height, thumbnail=thumb_path)


def _audio(path: Path, kind: FileType, settings: AttachmentSettings) -> Processed:
    import mutagen

    try:
        info = mutagen.File(path)
        length = float(info.info.length) if info is not None else 0.0
    except Exception as exc:  # mutagen raises many types for corrupt files
        raise Rejected(415, f"not a valid {kind.mime} audio file: {type(exc).__name__}") from None
    if info is None or length <= 0:
        raise Rejected(415, f"not a valid {kind.mime} audio file: no duration")
    if length > settings.max_audio_s:
        raise Rejected(422, f"audio is {length:.0f} s long; the limit is {settings.max_audio_s} s")
    return Processed(kind, path.stat().st_size, duration_ms=round(length * 1000))
