"""Objects in an S3-compatible bucket through boto3; URLs are the bucket's presigned URLs.

boto3 is synchronous: every call runs in a worker thread. Uploads and downloads go through boto3's
managed transfer (multipart, streamed from and to disk)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from service.storage.base import ObjectTooLarge
from service.storage.config import StorageSettings


def _content_disposition(filename: str) -> str:
    from urllib.parse import quote

    return f"attachment; filename*=UTF-8''{quote(filename)}"


class S3Storage:
    name = "s3"

    def __init__(self, settings: StorageSettings) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = settings.bucket
        self.client: Any = boto3.client("s3", endpoint_url=settings.endpoint_url, region_name=settings.region,
                                        config=Config(signature_version="s3v4"))
        self._bucket_checked = False

    async def ready(self) -> None:
        if self._bucket_checked:
            return
        from botocore.exceptions import ClientError

        try:
            await asyncio.to_thread(self.client.head_bucket, Bucket=self.bucket)
        except ClientError:
            await asyncio.to_thread(self.client.create_bucket, Bucket=self.bucket)
        self._bucket_checked = True

    async def put(self, key: str, source: Path, content_type: str) -> None:
        await self.ready()
        await asyncio.to_thread(self.client.upload_file, str(source), self.bucket, key,
                                ExtraArgs={"ContentType": content_type})

    async def _size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    async def fetch(self, key: str, dest: Path, max_bytes: int) -> int:
        size = await self._size(key)
        if size is None:
            raise FileNotFoundError(key)
        if size > max_bytes:
            raise ObjectTooLarge(f"{size} bytes")
        await asyncio.to_thread(self.client.download_file, self.bucket, key, str(dest))
        return size

    async def exists(self, key: str) -> bool:
        return await self._size(key) is not None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=key)

    def download_url(self, key: str, filename: str, content_type: str, expires_s: int, base_url: str) -> str:
        url: str = self.client.generate_presigned_url(
            "get_object", ExpiresIn=expires_s,
            Params={"Bucket": self.bucket, "Key": key, "ResponseContentType": content_type,
                    "ResponseContentDisposition": _content_disposition(filename)})
        return url

    def upload_url(self, key: str, content_type: str, expires_s: int, base_url: str) -> str:
        url: str = self.client.generate_presigned_url(
            "put_object", ExpiresIn=expires_s, Params={"Bucket": self.bucket, "Key": key})
        return url
