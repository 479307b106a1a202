"""Running Locust as a subprocess (never imported here: it monkey-patches the process with gevent).

`python -m msgops.load.locust_main -f loadtests/messaging.py --headless ...` (Locust's own command
line, see locust_main), output to a log file in the run directory. The locustfile writes `live.json`
every second, read here for the progress display, and `final.json` when the run has ended; a run
without `final.json` failed, and the log's tail says why.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from msgops.errors import UserError
from msgops.load.plan import PLAN_ENV

GRACE_S = 60.0  # beyond the planned run: start-up, stopping workers, writing results
FDS_PER_SOCKET = 3  # websockets' sync client: the socket plus a socketpair to wake its reader
FDS_SPARE = 256
POLL_S = 0.25  # how soon the end of Locust is noticed
TICK_S = 1.0   # progress and memory samples


def file_descriptors(listeners: int, processes: int) -> None:
    """Raise the open-files limit for the Locust processes to what their sockets need, or say why
    it cannot be: one process cannot hold more sockets than the hard limit allows."""
    per_process = math.ceil(listeners / max(1, processes))
    needed = per_process * FDS_PER_SOCKET + FDS_SPARE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed <= soft:
        return
    if hard != resource.RLIM_INFINITY and needed > hard:
        enough = math.ceil(listeners * FDS_PER_SOCKET / max(1, hard - FDS_SPARE))
        raise UserError(f"{listeners} WebSockets in {processes} Locust process(es) need about {needed} open files "
                        f"per process, above this machine's limit of {hard} (ulimit -Hn): use --processes {enough} "
                        "or more, or raise the limit")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))  # inherited by the Locust subprocess


@dataclass
class LocustOptions:
    locustfile: Path
    host: str
    users: int
    spawn_rate: float
    run_s: float
    processes: int = 1
    master: bool = False
    expect_workers: int = 0
    master_bind_port: int | None = None
    worker: bool = False
    master_host: str | None = None
    master_port: int | None = None
    html: Path | None = None
    extra: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "msgops.load.locust_main", "-f", str(self.locustfile), "--headless",
               "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "0"]
        if self.worker:
            cmd += ["--worker", "--master-host", self.master_host or "127.0.0.1"]
            if self.master_port:
                cmd += ["--master-port", str(self.master_port)]
            if self.processes > 1:
                cmd += ["--processes", str(self.processes)]
            return cmd + self.extra
        # A safety net only: the locustfile ends the run itself after the plan's phases.
        cmd += ["--host", self.host, "-u", str(self.users), "-r", f"{self.spawn_rate:g}",
                "--run-time", f"{int(self.run_s + GRACE_S)}s"]
        if self.master:
            cmd += ["--master", "--expect-workers", str(max(1, self.expect_workers))]
            if self.master_bind_port:
                cmd += ["--master-bind-port", str(self.master_bind_port)]
        elif self.processes > 1:
            cmd += ["--processes", str(self.processes)]
        if self.html:
            cmd += ["--html", str(self.html)]
        return cmd + self.extra


class LocustFailed(Exception):
    """Locust ended without results; the message carries the end of its log."""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def resolver_env(host: str) -> dict[str, str]:
    """gevent resolves names in a thread pool, a thread hand-off for every new connection; a target
    given by its IP address needs no lookup, so its connections resolve in place (GEVENT_RESOLVER=block)."""
    try:
        ipaddress.ip_address(urlsplit(host).hostname or "")
    except ValueError:
        return {}
    return {"GEVENT_RESOLVER": "block"}


def run(options: LocustOptions, run_dir: Path, plan_file: Path | None,
        on_tick: Callable[[dict[str, Any] | None], None] | None = None,
        timeout_s: float | None = None, env: dict[str, str] | None = None) -> dict[str, Any] | None:
    """Run Locust to the end; the final measurements (None for a worker, which has none).
    `env`: variables for the Locust processes besides this process's own."""
    log_path = run_dir / "locust.log"
    env = {**resolver_env(options.host), **os.environ, **(env or {})}
    if plan_file is not None:
        env[PLAN_ENV] = str(plan_file)
    env["PYTHONUNBUFFERED"] = "1"
    deadline = time.monotonic() + (timeout_s or options.run_s + 2 * GRACE_S)
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(options.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            next_tick = time.monotonic()
            while proc.poll() is None:
                now = time.monotonic()
                if now > deadline:
                    raise LocustFailed(f"Locust did not finish in time and was stopped; its log ({log_path}):\n"
                                       f"{_tail(log_path)}")
                if on_tick is not None and now >= next_tick:  # live.json changes once a second
                    on_tick(_read_json(run_dir / "live.json"))
                    next_tick = now + TICK_S
                time.sleep(POLL_S)
        finally:
            if proc.poll() is None:
                _stop(proc)
    if options.worker:
        return None
    final = _read_json(run_dir / "final.json")
    if final is None:
        raise LocustFailed(f"Locust exited with code {proc.returncode} without results; its log ({log_path}):\n"
                           f"{_tail(log_path)}")
    return final


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the Locust process group (its forked workers too), then SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
