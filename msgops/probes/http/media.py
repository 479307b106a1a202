"""Small files the attachment probes upload: built here with the standard library, no image stack."""

from __future__ import annotations

import base64
import io
import struct
import wave

# An 8x8 baseline JPEG.
_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1x"
    "eXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAAR"
    "CAAIAAgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEG"
    "E1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWG"
    "h4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEB"
    "AQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYk"
    "NOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0"
    "tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwBtFFFeMfMn/9k=")

EXIF_MARKER = b"msgops-exif-camera"


def jpeg_with_exif() -> bytes:
    """The JPEG with an EXIF block (APP1) whose Make tag is EXIF_MARKER: what a phone photo carries."""
    value = EXIF_MARKER + b"\x00"
    # TIFF little-endian header, one IFD with one ASCII entry (Make), its value after the IFD.
    ifd_offset = 8
    value_offset = ifd_offset + 2 + 12 + 4
    tiff = (b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", 1)
            + struct.pack("<HHII", 0x010F, 2, len(value), value_offset) + struct.pack("<I", 0) + value)
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return _JPEG[:2] + app1 + _JPEG[2:]


def has_exif(data: bytes) -> bool:
    return b"Exif\x00\x00" in data or EXIF_MARKER in data


def png() -> bytes:
    """A 1x1 PNG."""
    return base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
                            "AAAABJRU5ErkJggg==")


def wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()


def pdf(size: int) -> bytes:
    """A file of exactly `size` bytes that content sniffing takes for a PDF."""
    head = b"%PDF-1.4\n% msgops size probe\n"
    return head + b"0" * max(0, size - len(head))


def executable() -> bytes:
    """The start of a Windows PE executable, as a renamed `.exe` carries it."""
    return b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00" * 64
