"""The reference service for `msgops gate`: `msgops serve` in its own process on a loopback port.

Its own process, not a thread of the gate: the service and the checks must not share one
interpreter (and one GIL), or the checks would measure their own load. Stopped with SIGINT, like
Ctrl-C, so the embedded PostgreSQL it started stops too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from msgops import target
from msgops.embedded import free_port
from msgops.errors import UserError


@dataclass
class LocalService:
    api_url: str
    database_url: str
    jwt_secret: str
    log: Path
    _process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)



def start(data_dir: Path, database_url: str | None = None, timeout_s: float = 90) -> LocalService:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = data_dir / "gate-service.log"
    env = dict(os.environ, MSGOPS_JOBS="off", MSGOPS_LOG_FILE=str(data_dir / "service.log"))
    env.pop("MSGOPS_API_URL", None)
    command = [sys.executable, "-m", "msgops.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    if database_url:
        command += ["--database-url", database_url]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    api_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            last = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise UserError(f"the reference service did not start: {last[0]} (full log: {log})")
        try:
            if httpx.get(api_url + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        process.kill()
        raise UserError(f"the reference service did not answer /health within {timeout_s:g}s (log: {log})")
    info = target.ServeInfo.read(data_dir)
    if info is None:
        process.send_signal(signal.SIGINT)
        raise UserError(f"the reference service started but did not announce itself in {data_dir}")
    return LocalService(api_url, info.database_url, target.jwt_secret(data_dir, create=False), log, process)
