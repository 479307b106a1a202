"""Attachment limits and storage choice, from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from service.storage.config import StorageSettings

DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # seed 001: "File Size Limit 10MB"


@dataclass(frozen=True)
class AttachmentSettings:
    enabled: bool = True
    max_bytes: int = DEFAULT_MAX_BYTES
    max_image_side: int = 8192  # pixels, either dimension
    max_image_pixels: int = 40_000_000  # width x height (a 40 MP image decodes to 160 MB of RGBA)
    max_audio_s: int = 600
    url_ttl_s: int = 300  # signed download and upload URLs
    unattached_grace_s: int = 86400  # uploads never put on a message are removed after this
    thumbnail_side: int = 320
    storage: StorageSettings = field(default_factory=StorageSettings)

    @classmethod
    def from_env(cls) -> AttachmentSettings:
        env = os.environ
        data_dir = env.get("MSGOPS_DATA_DIR", ".msgops")
        return cls(
            enabled=env.get("MSGOPS_ATTACHMENTS", "on").lower() not in ("0", "off", "false"),
            max_bytes=int(env.get("MSGOPS_ATTACHMENT_MAX_BYTES", str(DEFAULT_MAX_BYTES))),
            max_image_side=int(env.get("MSGOPS_ATTACHMENT_MAX_IMAGE_SIDE", "8192")),
            max_image_pixels=int(env.get("MSGOPS_ATTACHMENT_MAX_IMAGE_PIXELS", "40000000")),
            max_audio_s=int(env.get("MSGOPS_ATTACHMENT_MAX_AUDIO_S", "600")),
            url_ttl_s=int(env.get("MSGOPS_ATTACHMENT_URL_TTL", "300")),
            unattached_grace_s=int(env.get("MSGOPS_ATTACHMENT_GRACE_S", "86400")),
            storage=StorageSettings.from_env(data_dir),
        )
