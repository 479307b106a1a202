"""A reference service started in-process for `msgops gate`: embedded PostgreSQL, a loopback port,
and everything stopped again afterwards."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from msgops import target
from msgops.errors import UserError
from msgops.serve import Database, migrate, open_database


@dataclass
class LocalService:
    api_url: str
    database_url: str
    jwt_secret: str
    _server: object
    _thread: threading.Thread
    _db: Database

    def stop(self) -> None:
        self._server.should_exit = True  # type: ignore[attr-defined]
        self._thread.join(timeout=20)
        self._db.release()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data_dir: Path, database_url: str | None = None) -> LocalService:
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(database_url, data_dir)
    try:
        migrate(db.url)
        secret = target.jwt_secret(data_dir, create=True)
        settings = Settings.from_env(database_url=db.url, jwt_secret=secret, log_level="INFO",
                                     log_file=str(data_dir / "service.log"), jobs_enabled=False)
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                               ws="websockets-sansio", ws_per_message_deflate=False,
                                               server_header=False, lifespan="on"))
        thread = threading.Thread(target=server.run, name="msgops-service", daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise UserError("the reference service did not start; run `msgops serve` to see why")
            time.sleep(0.05)
    except BaseException:
        db.release()
        raise
    return LocalService(f"http://127.0.0.1:{port}", db.url, secret, server, thread, db)
