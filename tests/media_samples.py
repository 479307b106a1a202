"""Small real files for attachment tests: images with EXIF, WAV audio, an executable."""

from __future__ import annotations

import io
import wave

from PIL import Image

GPS_TAG = 0x8825


def jpeg_with_exif(width: int = 640, height: int = 480) -> bytes:
    img = Image.new("RGB", (width, height), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "msgops-camera"  # Make
    exif[GPS_TAG] = {1: "N", 2: (52.0, 22.0, 0.0)}
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def png(width: int = 64, height: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 128, 255, 255)).save(out, "PNG")
    return out.getvalue()


def wav(seconds: float = 1.5, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()


def executable() -> bytes:
    """The start of a Windows PE executable: what a renamed `.exe` looks like."""
    return b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00" * 64


def exif_of(data: bytes) -> dict[int, object]:
    with Image.open(io.BytesIO(data)) as im:
        return dict(im.getexif())
