"""Where attachment bytes live: a `Storage` backend chosen by configuration.

`local` (the embedded default) keeps objects under the data directory and serves them through the
service's own signed URLs; `s3` keeps them in any S3-compatible bucket (AWS, MinIO, R2, moto) and
hands out the bucket's presigned URLs.
"""

from __future__ import annotations

from service.storage.base import ObjectTooLarge, Storage
from service.storage.config import StorageSettings

__all__ = ["ObjectTooLarge", "Storage", "StorageSettings", "open_storage"]

_opened: dict[StorageSettings, Storage] = {}


def open_storage(settings: StorageSettings) -> Storage:
    """The backend for `settings`, made once per process."""
    storage = _opened.get(settings)
    if storage is None:
        if settings.backend == "s3":
            from service.storage.s3 import S3Storage

            storage = S3Storage(settings)
        else:
            from service.storage.local import LocalStorage

            storage = LocalStorage(settings)
        _opened[settings] = storage
    return storage
