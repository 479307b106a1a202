"""`msgops serve`: the reference service on the embedded PostgreSQL (or DATABASE_URL)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import psycopg
from rich.console import Console

from msgops import target
from msgops.embedded import EmbeddedPostgres
from msgops.errors import UserError


@dataclass
class Database:
    url: str
    embedded: EmbeddedPostgres | None

    def release(self) -> None:
        """Stop the embedded server if this process started it."""
        if self.embedded is not None and self.embedded.started_here:
            self.embedded.stop()


def open_database(database_url: str | None, data_dir: Path) -> Database:
    """DATABASE_URL (flag or env) if given; otherwise the embedded server in the data directory."""
    url = database_url or os.environ.get("DATABASE_URL")
    if url:
        try:
            with psycopg.connect(url, connect_timeout=10):
                pass
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"cannot connect to {target.mask_url(url)}: {first}; check DATABASE_URL") from None
        return Database(url, None)
    embedded = EmbeddedPostgres(data_dir)
    return Database(embedded.start(), embedded)


def migrate(url: str) -> list[str]:
    from service.migrate import migrate as apply

    try:
        return apply(url)
    except psycopg.Error as exc:
        raise UserError(f"migration failed: {str(exc).strip().splitlines()[0]}") from None


def _ensure_port_free(host: str, port: int) -> None:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port") from None


def run(host: str, port: int, database_url: str | None, data_dir: Path, workers: int, console: Console) -> None:
    import uvicorn

    from service.settings import Settings

    _ensure_port_free(host, port)
    data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(database_url, data_dir)
    try:
        applied = migrate(db.url)
        secret = target.jwt_secret(data_dir, create=True)
        api_url = f"http://{host}:{port}"
        where = f"embedded PostgreSQL in {db.embedded.pgdata}" if db.embedded else target.mask_url(db.url)
        console.print(f"[bold green]msgops service[/] on [bold]{api_url}[/]  (docs: {api_url}/docs)")
        console.print(f"  database: {where}" + (f"; applied {len(applied)} migration(s)" if applied else ""))
        console.print("  token:    msgops token --sub $(python -c 'import uuid;print(uuid.uuid4())')")
        console.print("  stop:     Ctrl-C")
        os.environ.update({"DATABASE_URL": db.url, "MSGOPS_JWT_SECRET": secret, "MSGOPS_WORKERS": str(workers)})
        if workers > 1:
            # Several processes share one database; realtime fans out through LISTEN/NOTIFY.
            os.environ.setdefault("MSGOPS_BUS", "postgres")
        target.ServeInfo(api_url, db.url, os.getpid()).write(data_dir)
        from service.server import WS_MAX_SIZE, DrainingServer

        # access_log off: the service's own middleware logs requests; uvicorn's would build each
        # record's arguments only for a logger that is disabled.
        common = {"host": host, "port": port, "log_level": "warning", "access_log": False, "ws": "websockets-sansio",
                  "ws_per_message_deflate": False, "ws_max_size": WS_MAX_SIZE, "timeout_graceful_shutdown": 10,
                  "server_header": False}
        try:
            if workers > 1:
                uvicorn.run("service.app:app_from_env", factory=True, workers=workers, **common)  # type: ignore[arg-type]
            else:
                from service.app import create_app

                app = create_app(Settings.from_env())
                # uvicorn re-raises Ctrl-C after its graceful shutdown; stopping was the request.
                with contextlib.suppress(KeyboardInterrupt):
                    DrainingServer(uvicorn.Config(app, **common), app.state.msgops).run()  # type: ignore[arg-type]
        finally:
            target.ServeInfo.remove(data_dir)
    finally:
        db.release()
        console.print("msgops service stopped")
