"""The Locust master's memory during a long WebSocket load run: aggregated reports vs per-message records.

Runs a WebSocket profile shaped like seed-004-websockets (listeners in groups of 10, open-model sends,
every delivery timed) against `msgops serve` (rate limits off), with `--processes 2` so the master
only merges what its two workers report. The same run twice:

  aggregated  what msgops load does: workers send histograms and ranges of sequence numbers
  records     MSGOPS_LOAD_RAW_RECORDS=1: every send, socket and delivery also travels to the master as
              a record and is kept there (what msgops load did before it aggregated on the workers)

Printed for each: the master's RSS when the send window opens, halfway, at its end and at most, its
growth per minute over the window's second half (after warm-up), its CPU seconds, the busiest
Locust process's and the machine's CPU, and the run's delivery results (which must agree).

    python bench/load_master_memory.py [--sockets 1000] [--rate 100] [--duration 180]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

SECRET = "load-master-memory-bench-secret-0123456789"
PROFILE = """
name: master-memory
description: {sockets} WebSockets in groups of 10, {rate} messages/s for {duration} s.
requires: {{rate_limits: off}}
provision: {{via: api, users: {sockets}, group_size: 10}}
spawn_rate: 200
settle: 3s
duration: {duration}s
delivery_timeout: 5s
users: {{listener: {sockets}}}
open: {{messages: {rate}, max_inflight: 500}}
thresholds: ['delivery.loss_rate <= 0']
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, MSGOPS_JWT_SECRET=SECRET, MSGOPS_RATE_LIMITS="off", MSGOPS_LOG_LEVEL="WARNING",
               MSGOPS_JOBS="off")
    log = open(workdir / "service.log", "wb")  # noqa: SIM115 - lives as long as the service
    proc = subprocess.Popen([sys.executable, "-m", "msgops.cli", "serve", "--port", str(port), "--quiet",
                             "--data-dir", str(workdir / "data")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=workdir, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"the service did not start; see {workdir / 'service.log'}")


class MasterMemory:
    """RSS of the Locust master (the Locust process `msgops load` started) once a second."""

    def __init__(self, pid: int) -> None:
        self.parent = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []  # (monotonic s, MB)
        self.cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _master(self) -> psutil.Process | None:
        try:
            return next((c for c in self.parent.children() if "locust" in " ".join(c.cmdline())), None)
        except psutil.Error:
            return None

    def _loop(self) -> None:
        master = None
        while not self._stop.wait(1.0):
            master = master or self._master()
            if master is None:
                continue
            try:
                self.samples.append((time.monotonic(), master.memory_info().rss / 2**20))
                times = master.cpu_times()
                self.cpu_s = times.user + times.system
            except psutil.Error:
                master = None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(base: str, workdir: Path, label: str, args: argparse.Namespace, raw: bool) -> dict[str, Any]:
    profile = workdir / f"{label}.yaml"
    profile.write_text(PROFILE.format(sockets=args.sockets, rate=args.rate, duration=args.duration))
    out = workdir / f"{label}.json"
    env = dict(os.environ, MSGOPS_JWT_SECRET=SECRET, MSGOPS_DATA_DIR=str(workdir / "data"))
    env.pop("MSGOPS_LOAD_RAW_RECORDS", None)
    if raw:
        env["MSGOPS_LOAD_RAW_RECORDS"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "msgops.cli", "load", "--api-url", base, "--profile", str(profile),
                             "--processes", "2", "--json", str(out), "--quiet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=workdir)
    memory = MasterMemory(proc.pid)
    output, _ = proc.communicate()
    memory.stop()
    if not out.exists():
        raise SystemExit(f"msgops load ({label}) failed:\n{output.decode(errors='replace')[-1500:]}")
    results = json.loads(out.read_text())
    samples = memory.samples
    if len(samples) < 10:
        raise SystemExit(f"too few samples of the master's memory ({len(samples)})")
    # The send window: from the master's start plus the phases the results report.
    t0 = samples[0][0]
    phases = results["phases"]
    start, end = t0 + phases["send_start_s"], t0 + phases["send_start_s"] + phases["send_for_s"]

    def at(t: float) -> float:
        return min(samples, key=lambda s: abs(s[0] - t))[1]

    middle = (start + end) / 2
    m, gen = results["metrics"], results["generator"]
    return {"label": label, "start": at(start), "middle": at(middle), "end": at(end),
            "max": max(mb for _, mb in samples), "growth": (at(end) - at(middle)) / max(1e-9, (end - middle) / 60),
            "cpu": memory.cpu_s, "expected": m.get("delivery.expected"), "lost": m.get("delivery.lost"),
            "p95": m.get("delivery.p95_ms"), "sent": m.get("messages.accepted"),
            "gen_cpu": gen.get("cpu_percent_max") or 0, "machine_cpu": gen.get("machine_cpu_percent_max") or 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=1000, help="listening WebSockets, in groups of 10")
    parser.add_argument("--rate", type=int, default=100, help="messages per second (open model)")
    parser.add_argument("--duration", type=int, default=180, help="seconds of sending per run")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="msgops-master-memory-"))
    service, base = start_service(workdir)
    rows = []
    try:
        print(f"{args.sockets} sockets, {args.rate} messages/s (x10 deliveries), {args.duration} s, "
              f"2 Locust workers; {os.cpu_count()} cores", flush=True)
        for label, raw in (("aggregated", False), ("records", True)):
            rows.append(run(base, workdir, label, args, raw))
            print(f"  {label} done", flush=True)
    finally:
        os.killpg(service.pid, signal.SIGINT)
        try:
            service.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"{'master RSS MB':14}{'window start':>13}{'middle':>9}{'end':>9}{'max':>9}{'MB/min':>9}{'CPU s':>8}"
          f"{'sent':>9}{'expected':>10}{'lost':>6}{'p95 ms':>9}{'gen CPU%':>10}{'machine%':>10}")
    for r in rows:
        print(f"{r['label']:14}{r['start']:>13.1f}{r['middle']:>9.1f}{r['end']:>9.1f}{r['max']:>9.1f}"
              f"{r['growth']:>9.2f}{r['cpu']:>8.1f}{r['sent'] or 0:>9.0f}{r['expected'] or 0:>10.0f}"
              f"{r['lost'] or 0:>6.0f}{r['p95'] or 0:>9.1f}{r['gen_cpu']:>10.0f}{r['machine_cpu']:>10.0f}")
    print("MB/min: the master's growth over the second half of the send window")


if __name__ == "__main__":
    main()
