"""The service's resident memory during a run (metric `memory_mb`), when it can be observed.

In order: the target's own Prometheus `process_resident_memory_bytes` at /metrics; the process of a
local `msgops serve` announcing this URL in its data directory; the process listening on the
target's port when the target is on this machine. Worker processes (uvicorn --workers) count with
their parent. A remote target without the Prometheus metric: not measured (None), never guessed.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import psutil

from msgops import target as local

_RSS = re.compile(r"^process_resident_memory_bytes(?:\{[^}]*\})?\s+([0-9.eE+]+)", re.MULTILINE)
REFRESH = 10  # samples between two look-ups of the service's worker processes
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


def _tree(pid: int) -> list[psutil.Process]:
    """The process and its descendants (psutil reads every process on the machine to find them)."""
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def _rss_mb(procs: list[psutil.Process]) -> float:
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def http_client(api_url: str, timeout: float) -> httpx.Client:
    """A client for the target; one of a plain-HTTP target skips loading the CA bundle (tens of ms of
    CPU for a TLS context it never uses)."""
    return httpx.Client(timeout=timeout, verify=not api_url.lower().startswith("http://"))


def _listening_pid(port: int) -> int | None:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return int(conn.pid)
    except (psutil.Error, OSError):
        return None
    return None


class MemoryProbe:
    """Samples the service's memory; `peak_mb` is the largest sample."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.peak_mb: float | None = None
        self.source: str | None = None
        self._pid: int | None = None
        self._procs: list[psutil.Process] = []
        self._samples = 0
        self._metrics = False
        self._http = http_client(self.api_url, timeout=2)
        self._locate()

    def _locate(self) -> None:
        if self._from_metrics() is not None:
            self._metrics, self.source = True, "/metrics process_resident_memory_bytes"
            return
        serving = local.ServeInfo.read(local.data_dir())
        if serving is not None and serving.api_url.rstrip("/").lower() == self.api_url.lower():
            self._pid, self.source = serving.pid, f"msgops serve pid {serving.pid}"
            return
        parts = urlsplit(self.api_url)
        if parts.hostname in _LOOPBACK and parts.port:
            pid = _listening_pid(parts.port)
            if pid is not None:
                self._pid, self.source = pid, f"pid {pid} listening on port {parts.port}"

    def _from_metrics(self) -> float | None:
        try:
            r = self._http.get(self.api_url + "/metrics")
        except httpx.HTTPError:
            return None
        match = _RSS.search(r.text) if r.status_code == 200 else None
        return float(match.group(1)) / 2**20 if match else None

    def sample(self) -> None:
        value = self._from_metrics() if self._metrics else self._local_rss()
        if value is not None:
            self.peak_mb = round(value if self.peak_mb is None else max(self.peak_mb, value), 1)

    def _local_rss(self) -> float | None:
        """The local service's RSS with its workers; the process tree is looked up again every
        REFRESH samples only (finding children scans every process on the machine)."""
        if self._pid is None:
            return None
        if self._samples % REFRESH == 0 or not self._procs:
            try:
                self._procs = _tree(self._pid)
            except psutil.Error:
                return None
        self._samples += 1
        return _rss_mb(self._procs) if self._procs[0].is_running() else None

    def close(self) -> None:
        self._http.close()
