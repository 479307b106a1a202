"""Storage configuration, from the environment."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_KEY_FILE = "attachments.key"


@dataclass(frozen=True)
class StorageSettings:
    backend: Literal["local", "s3"] = "local"
    root: str = ".msgops/attachments"  # local: objects live here
    signing_key: str = ""  # local: signs the service's own download/upload URLs
    bucket: str = "msgops-attachments"  # s3
    endpoint_url: str | None = None  # s3: MinIO, R2, moto... (None: AWS)
    region: str | None = None

    @classmethod
    def from_env(cls, data_dir: str) -> StorageSettings:
        env = os.environ
        backend = env.get("MSGOPS_STORAGE", "local").lower()
        if backend not in ("local", "s3"):
            raise ValueError(f"MSGOPS_STORAGE: unknown backend {backend!r}; use local or s3")
        return cls(
            backend=backend,  # type: ignore[arg-type]
            root=env.get("MSGOPS_STORAGE_DIR") or str(Path(data_dir) / "attachments"),
            signing_key=env.get("MSGOPS_STORAGE_SIGNING_KEY") or (signing_key(Path(data_dir))
                                                                  if backend == "local" else ""),
            bucket=env.get("MSGOPS_S3_BUCKET", "msgops-attachments"),
            endpoint_url=env.get("MSGOPS_S3_ENDPOINT_URL") or None,
            region=env.get("MSGOPS_S3_REGION") or env.get("AWS_REGION") or None,
        )


def signing_key(data_dir: Path) -> str:
    """The local backend's URL signing key, made once per data directory."""
    path = data_dir / _KEY_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    path.write_text(key)
    path.chmod(0o600)
    return key
