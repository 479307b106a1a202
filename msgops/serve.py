"""`msgops serve`: the reference service on the embedded PostgreSQL (or DATABASE_URL)."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console

from msgops import target
from msgops.embedded import EmbeddedPostgres
from msgops.errors import UserError
from msgops.supervise import EmbeddedSupervisor

log = logging.getLogger("msgops.serve")


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
    _hold_serve_lock(data_dir)
    embedded = EmbeddedPostgres(data_dir)
    return Database(embedded.start(), embedded)


def _supervise(db: Database, console: Console) -> EmbeddedSupervisor | None:
    """Restart the embedded server this process started if it dies; say so on the console and in the log."""
    if db.embedded is None or not db.embedded.started_here:
        return None

    def report(message: str) -> None:
        log.warning(message)
        console.print(f"  [yellow]{message}[/]")

    supervisor = EmbeddedSupervisor(db.embedded, report)
    supervisor.start()
    return supervisor


def _fresh_dir(path: Path) -> Path:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


_serve_lock: object = None  # held for the life of the process


def _hold_serve_lock(data_dir: Path) -> None:
    """One `msgops serve` per embedded server: a second would not share realtime with the first."""
    import fcntl

    global _serve_lock
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / "serve.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise UserError(f"another msgops serve is serving {data_dir}; stop it, use one serve with --workers N, "
                        "or run every instance on one DATABASE_URL") from None
    _serve_lock = handle


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


def _stop_on_sigterm() -> None:
    """SIGTERM (systemd, docker stop, kill) stops like Ctrl-C: uvicorn drains, then re-raises the signal
    it caught; with this handler that is a KeyboardInterrupt, so the embedded PostgreSQL is stopped too
    instead of being left running by a process killed mid-way."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def run(host: str, port: int, database_url: str | None, data_dir: Path, workers: int, console: Console) -> None:
    import uvicorn

    from service.settings import Settings

    _ensure_port_free(host, port)
    _stop_on_sigterm()
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
        os.environ.update({"DATABASE_URL": db.url, "MSGOPS_JWT_SECRET": secret, "MSGOPS_WORKERS": str(workers),
                           "MSGOPS_DATA_DIR": str(data_dir)})
        # Realtime fans out in memory only when no other process can serve this database: the embedded
        # server this serve holds alone, with one worker. Anywhere else the auto bus is LISTEN/NOTIFY.
        os.environ["MSGOPS_DATABASE_PRIVATE"] = "1" if db.embedded is not None and workers == 1 else "0"
        if workers > 1:  # /metrics adds up every worker's values (prometheus-client multiprocess mode)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_fresh_dir(data_dir / "metrics"))
        target.ServeInfo(api_url, db.url, os.getpid()).write(data_dir)
        from service import serving
        from service.server import DrainingServer

        settings = Settings.from_env()
        supervisor = _supervise(db, console)
        # access_log off: the service's own middleware logs requests; uvicorn's would build each
        # record's arguments only for a logger that is disabled.
        common: dict[str, Any] = {"host": host, "port": port, "timeout_graceful_shutdown": 10,
                                  "timeout_keep_alive": settings.keepalive_timeout_s, "access_log": False}
        # uvicorn re-raises Ctrl-C (and SIGTERM, see _stop_on_sigterm) after its graceful shutdown;
        # stopping was the request.
        try:
            with contextlib.suppress(KeyboardInterrupt):
                if workers > 1:
                    # each worker reads its connection limits from the environment
                    uvicorn.run("service.app:app_from_env", factory=True, workers=workers,
                                http=serving.GuardedHttpProtocol, ws=serving.GuardedWebSocketProtocol,
                                ws_per_message_deflate=False, ws_max_size=serving.WS_MAX_SIZE,
                                log_level="warning", server_header=False, **common)
                else:
                    from service.app import create_app

                    app = create_app(settings)
                    DrainingServer(serving.config(app, settings, **common), app.state.msgops).run()
        finally:
            if supervisor is not None:
                supervisor.stop()
            target.ServeInfo.remove(data_dir)
    finally:
        db.release()
        console.print("msgops service stopped")
