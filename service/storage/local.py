"""Objects as files under a directory; URLs served by the service itself, signed with HMAC."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from pathlib import Path
from urllib.parse import quote

from service.storage.base import ObjectTooLarge
from service.storage.config import StorageSettings
from service.storage.signing import Grant, expires_in, sign

BLOB_PATH = "/attachments/blob/"  # the service's route for local objects (service/routes/attachments.py)


class LocalStorage:
    name = "local"

    def __init__(self, settings: StorageSettings) -> None:
        self.root = Path(settings.root).resolve()
        # Without a configured key, links are valid for this process only.
        self.secret = settings.signing_key or secrets.token_urlsafe(32)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise ValueError(f"storage key {key!r} escapes the storage directory")
        return path

    async def ready(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    async def put(self, key: str, source: Path, content_type: str) -> None:
        await asyncio.to_thread(self._put, key, source)

    def _put(self, key: str, source: Path) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)

    async def fetch(self, key: str, dest: Path, max_bytes: int) -> int:
        src = self.path(key)
        size = src.stat().st_size  # FileNotFoundError when missing
        if size > max_bytes:
            raise ObjectTooLarge(f"{size} bytes")
        await asyncio.to_thread(shutil.copyfile, src, dest)
        return size

    async def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    async def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def download_url(self, key: str, filename: str, content_type: str, expires_s: int, base_url: str) -> str:
        token = sign(self.secret, Grant(key, "get", expires_in(expires_s), filename, content_type))
        return f"{base_url.rstrip('/')}{BLOB_PATH}{quote(token)}"

    def upload_url(self, key: str, content_type: str, expires_s: int, base_url: str) -> str:
        token = sign(self.secret, Grant(key, "put", expires_in(expires_s), "", content_type))
        return f"{base_url.rstrip('/')}{BLOB_PATH}{quote(token)}"
