"""Where the local deployment lives: the data directory, its database and its JWT secret.

Resolution order everywhere: command-line flag > environment > the data directory.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from msgops.errors import UserError

DEFAULT_DATA_DIR = Path(".msgops")
_SECRET_FILE = "jwt_secret"
_SERVE_FILE = "serve.json"


def data_dir(path: Path | None = None) -> Path:
    return (path or Path(os.environ.get("MSGOPS_DATA_DIR", DEFAULT_DATA_DIR))).resolve()


def jwt_secret(directory: Path, create: bool) -> str:
    """MSGOPS_JWT_SECRET, else the development secret kept in the data directory (made once)."""
    from_env = os.environ.get("MSGOPS_JWT_SECRET")
    if from_env:
        return from_env
    path = directory / _SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    if not create:
        raise UserError(f"no JWT secret: set MSGOPS_JWT_SECRET, or run `msgops serve` once to create {path}")
    directory.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


def mask_url(url: str) -> str:
    """A database URL (or key=value conninfo) as postgresql://user@host:port/db, password masked."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:
        return "<unparseable database URL>"
    user, host, port, db = (str(parts.get(k) or "") for k in ("user", "host", "port", "dbname"))
    auth = f"{user}:****@" if parts.get("password") else (f"{user}@" if user else "")
    return f"postgresql://{auth}{host}{':' + port if port else ''}/{db}"


@dataclass(frozen=True)
class ServeInfo:
    """What a running `msgops serve` announces, so `msgops check` can find it."""

    api_url: str
    database_url: str
    pid: int

    def write(self, directory: Path) -> None:
        (directory / _SERVE_FILE).write_text(json.dumps(self.__dict__))

    @staticmethod
    def remove(directory: Path) -> None:
        (directory / _SERVE_FILE).unlink(missing_ok=True)

    @classmethod
    def read(cls, directory: Path) -> ServeInfo | None:
        path = directory / _SERVE_FILE
        if not path.exists():
            return None
        info = cls(**json.loads(path.read_text()))
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            return None
        return info
