"""The storage interface every backend implements."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class ObjectTooLarge(Exception):
    """The stored object is larger than the caller allowed."""


class Storage(Protocol):
    name: str

    async def ready(self) -> None:
        """Make sure the backend can take objects (a bucket or directory exists)."""

    async def put(self, key: str, source: Path, content_type: str) -> None:
        """Store the file at `source` under `key` (streamed from disk, replacing any object there)."""

    async def fetch(self, key: str, dest: Path, max_bytes: int) -> int:
        """Copy the object to `dest` and return its size; FileNotFoundError if there is none,
        ObjectTooLarge (nothing copied) if it is larger than `max_bytes`."""

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""

    def download_url(self, key: str, filename: str, content_type: str, expires_s: int, base_url: str) -> str:
        """A URL anyone holding it can GET the object with, until `expires_s` seconds from now."""

    def upload_url(self, key: str, content_type: str, expires_s: int, base_url: str) -> str:
        """A URL the client PUTs the object's bytes to (direct-to-storage upload)."""
