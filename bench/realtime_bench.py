"""Realtime benchmark: idle sockets per process, and end-to-end delivery latency under load.

    python bench/realtime_bench.py                       # both parts, defaults below
    python bench/realtime_bench.py --sockets 10000 --skip-latency
    python bench/realtime_bench.py --rate 1000 --duration 15 --skip-idle
    python bench/realtime_bench.py --skip-idle --profile --pg-statements 15   # where the CPU goes

It starts an embedded PostgreSQL (or uses DATABASE_URL), a fresh database, and the service as a
separate `msgops serve` process (the service's own protocol classes and connection guards; its RSS
is measured apart from this client's), then:

1. Idle sockets: opens N authenticated WebSockets (each a distinct user) and reports the service
   process's RSS growth per connection. Target: 10,000 sockets under 512 MB.
2. Delivery latency: an open-model sender posts messages through the REST API at a fixed rate
   into group conversations of three (sender + two recipients connected over WebSockets). Latency
   is measured from the message's *intended* send time to `message_received` at each recipient,
   so a sender that falls behind shows up as latency, not as a lower rate. Target: p99 < 250 ms at
   1,000 messages/s. The rate ramps up over --warmup seconds, unmeasured; the p99 of each second
   of the measured window is printed too, so a backlog that builds or drains shows.

   `--send-via ws` sends `send_message` frames instead; `--send-via sql` has the bench insert each
   row and NOTIFY it on the PostgreSQL bus itself, which measures the realtime side alone (the
   service spends CPU only on delivery).

The client side uses a minimal keep-alive HTTP/1.1 client (httpx would cost the 2-core machine more
CPU than the service) and the `websockets` client. It prints figures and what limited them: the
time to store each message and the time from stored to delivered are reported separately.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
import psycopg
from hdrh.histogram import HdrHistogram
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_groups  # noqa: E402
import send_throughput  # noqa: E402
from send_throughput import SECRET  # noqa: E402

from msgops.embedded import EmbeddedPostgres  # noqa: E402
from service.auth import mint_token  # noqa: E402
from service.migrate import migrate  # noqa: E402

MB = 1024 * 1024


# Infrastructure ------------------------------------------------------------------------------------

@contextlib.contextmanager
def database(args: argparse.Namespace) -> Iterator[tuple[str, int | None]]:
    """A fresh, migrated database on DATABASE_URL's server or an embedded PostgreSQL, and the
    embedded server's postmaster pid (its CPU is measured; an external server's is not)."""
    tmp: Path | None = None
    server: EmbeddedPostgres | None = None
    if os.environ.get("DATABASE_URL"):
        admin = os.environ["DATABASE_URL"]
    else:
        tmp = Path(tempfile.mkdtemp(prefix="msgops-bench-"))
        settings = {"max_connections": "300"}
        if args.pg_statements:
            settings.update({"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"})
        if args.unsafe_fast_db:
            settings.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        server = EmbeddedPostgres(tmp, settings=settings)
        server.start()
        admin = server.admin_url("postgres")
    name = f"msgops_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = psycopg.conninfo.make_conninfo(admin, dbname=name)
    migrate(url)
    postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0]) if server else None
    try:
        yield url, postmaster
    finally:
        with contextlib.suppress(Exception), psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)



@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def stop(self) -> Counter[str] | None:
        """Stop it; with --profile, its CPU samples by group (written as it exits)."""
        send_throughput.stop(self.proc)
        files = list((self.data_dir / "cpu").glob("cpu-*.txt"))
        profile = profile_groups.grouped(files) if files else None
        shutil.rmtree(self.data_dir, ignore_errors=True)
        return profile


def start_service(url: str, workers: int, pool_max: int, bus: str = "auto", profile: bool = False) -> Service:
    """`msgops serve`: the service's own protocol classes and connection guards, as deployed (one
    address opens every socket here, so the per-client connection cap is off). `profile`: its
    processes sample their CPU (bench/cpu_sampler)."""
    workdir = Path(tempfile.mkdtemp(prefix="msgops-rt-serve-"))
    proc, base = send_throughput.start_service(
        url, workers, workdir, pool_max=pool_max, profile=profile,
        env={"MSGOPS_BUS": bus, "MSGOPS_MAX_CONNECTIONS_PER_CLIENT": "0"})
    return Service(proc, int(base.rsplit(":", 1)[1]), workdir)


def token(user: uuid.UUID) -> str:
    return mint_token(SECRET, user, ttl=3 * 3600)


async def open_socket(port: int, user: uuid.UUID) -> ClientConnection:
    ws = await connect(f"ws://127.0.0.1:{port}/realtime", compression=None, open_timeout=60,
                       ping_interval=None, max_queue=None)
    await ws.send(orjson.dumps({"type": "auth", "token": token(user)}).decode())
    frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=60))
    if frame.get("type") != "authenticated":
        raise RuntimeError(f"authentication failed: {frame}")
    return ws


# Part 1: idle sockets -------------------------------------------------------------------------------

async def idle_sockets(svc: Service, n: int, concurrency: int) -> dict[str, Any]:
    warm = await open_socket(svc.port, uuid.uuid4())  # first-connection imports and pools
    await warm.close()
    await asyncio.sleep(1.0)
    base = svc.rss()
    cpu0 = svc.ps.cpu_times()
    sockets: list[ClientConnection] = []
    failures: list[str] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            try:
                sockets.append(await open_socket(svc.port, uuid.uuid4()))
            except Exception as exc:
                failures.append(type(exc).__name__ + ": " + str(exc)[:80])

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    opened_s = time.perf_counter() - started
    await asyncio.sleep(2.0)  # let presence/profile work settle
    after = svc.rss()
    # Still alive and answering: a sample sends a heartbeat.
    sample = sockets[:: max(1, len(sockets) // 100)]
    for ws in sample:
        await ws.send('{"type":"heartbeat"}')
    acks = 0
    for ws in sample:
        with contextlib.suppress(Exception):
            while True:
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                if frame.get("type") == "heartbeat_ack":
                    acks += 1
                    break
    cpu = svc.ps.cpu_times()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"requested": n, "open": len(sockets), "failures": failures[:3], "failed": len(failures),
            "open_seconds": opened_s, "rss_base": base, "rss_after": after,
            "per_conn": (after - base) / max(1, len(sockets)), "sample": len(sample), "acks": acks,
            "cpu_s": cpu.user + cpu.system - cpu0.user - cpu0.system}


# Part 2: delivery latency ---------------------------------------------------------------------------

class RawHttp:
    """Keep-alive HTTP/1.1 POSTs over a pool of raw connections: cheap on the client's CPU."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.size = size
        self.pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self.pool.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))

    async def post(self, path: str, bearer: str, body: bytes) -> int:
        reader, writer = await self.pool.get()
        try:
            writer.write(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer "
                         + bearer.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
        except Exception:
            writer.close()
            self.pool.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))
            raise
        self.pool.put_nowait((reader, writer))
        return status

    async def close(self) -> None:
        while not self.pool.empty():
            _, writer = self.pool.get_nowait()
            writer.close()


@dataclass
class LatencyRun:
    histogram: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, 60_000_000, 3))  # microseconds
    http: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, 60_000_000, 3))  # send -> 201
    after_store: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, 60_000_000, 3))  # 201 -> received
    stored_at: dict[int, float] = field(default_factory=dict)
    intended: dict[int, float] = field(default_factory=dict)
    deliveries: dict[int, int] = field(default_factory=dict)
    measure_from: int = 0
    measure_start: float = 0.0
    by_second: dict[int, list[float]] = field(default_factory=dict)  # second of the window -> latencies, ms
    sent: int = 0
    errors: int = 0
    late: int = 0
    max_lag: float = 0.0

    def stored(self, i: int) -> None:
        """The sender learned that message i is stored (201, message_sent, or its INSERT returned)."""
        now = time.perf_counter()
        self.stored_at[i] = now
        if i >= self.measure_from:
            self.http.record_value(max(1, int((now - self.intended[i]) * 1_000_000)))


def setup_conversations(url: str, count: int) -> list[tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]]:
    """`count` groups of three, written directly (setup is not what is measured)."""
    groups = [(uuid.uuid4(), uuid.uuid4(), [uuid.uuid4(), uuid.uuid4()]) for _ in range(count)]
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        people = [(u,) for _, s, rs in groups for u in (s, *rs)]
        cur.executemany("insert into public.profiles (id, display_name) values (%s, 'bench')", people)
        cur.executemany("insert into public.conversations (id, kind, title, created_by) values (%s, 'group', 'b', %s)",
                        [(c, s) for c, s, _ in groups])
        cur.executemany("insert into public.conversation_members (conversation_id, user_id, role) values (%s, %s, %s)",
                        [(c, u, "owner" if u == s else "member") for c, s, rs in groups for u in (s, *rs)])
    return groups


async def receive(ws: ClientConnection, run: LatencyRun) -> None:
    async for raw in ws:
        now = time.perf_counter()
        frame = orjson.loads(raw)
        if frame.get("type") != "message_received":
            continue
        i = int(frame["message"]["content"])
        run.deliveries[i] = run.deliveries.get(i, 0) + 1
        if i >= run.measure_from:
            run.histogram.record_value(max(1, int((now - run.intended[i]) * 1_000_000)))
            run.by_second.setdefault(int(run.intended[i] - run.measure_start), []).append(
                (now - run.intended[i]) * 1000)
            # The sender may read its 201 after the recipient got the message: then ~0.
            run.after_store.record_value(max(1, int((now - run.stored_at.get(i, now)) * 1_000_000)))


async def _acks(ws: ClientConnection, run: LatencyRun) -> None:
    """The sender's side when sending over the socket: message_sent acks time the store."""
    async for raw in ws:
        frame = orjson.loads(raw)
        if frame.get("type") == "message_sent":
            i = int(frame["ref"])
            run.stored(i)
        elif frame.get("type") == "error":
            run.errors += 1


_INSERT_AND_NOTIFY = """
    with m as (insert into public.messages (conversation_id, sender_id, content) values (%s, %s, %s)
               returning conversation_id, seq)
    select pg_notify('msgops_realtime', json_build_array(json_build_object(
             'kind', 'message_created', 'conversation_id', conversation_id, 'seq', seq, 'instance', 'bench'))::text)
      from m"""


async def _insert_and_notify(writers: asyncio.Queue[psycopg.AsyncConnection[Any]], run: LatencyRun, i: int,
                             conv: uuid.UUID, sender: uuid.UUID) -> None:
    """The realtime side alone: the bench writes the row and announces it on the PostgreSQL bus the
    way the API would, so the service spends CPU only on delivery."""
    conn = await writers.get()
    try:
        await conn.execute(_INSERT_AND_NOTIFY, (conv, sender, str(i)))
        run.stored(i)
    except Exception:
        run.errors += 1
    finally:
        writers.put_nowait(conn)


async def latency(svc: Service, url: str, postmaster: int | None, rate: float, duration: float,
                  warmup: float, groups_n: int, http_conns: int, via: str = "rest") -> dict[str, Any]:
    groups = setup_conversations(url, groups_n)
    run = LatencyRun()
    sockets: list[ClientConnection] = []
    for conv, _, recipients in groups:
        for user in recipients:
            ws = await open_socket(svc.port, user)
            await ws.send(orjson.dumps({"type": "join_conversation", "conversation_id": str(conv)}).decode())
            while orjson.loads(await ws.recv()).get("type") != "joined":
                pass
            sockets.append(ws)
    receivers = [asyncio.create_task(receive(ws, run)) for ws in sockets]
    http = RawHttp(svc.port, http_conns)
    await http.open()
    tokens = {s: token(s) for _, s, _ in groups}
    pending: set[asyncio.Task[None]] = set()
    senders: dict[uuid.UUID, ClientConnection] = {}
    if via == "ws":
        for _, sender, _ in groups:
            senders[sender] = await open_socket(svc.port, sender)
        receivers += [asyncio.create_task(_acks(ws, run)) for ws in senders.values()]

    writers: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
    if via == "sql":
        for _ in range(http_conns):
            writers.put_nowait(await psycopg.AsyncConnection.connect(url, autocommit=True))

    async def send(i: int, conv: uuid.UUID, sender: uuid.UUID) -> None:
        if via == "sql":
            await _insert_and_notify(writers, run, i, conv, sender)
            return
        if via == "ws":
            await senders[sender].send(orjson.dumps({"type": "send_message", "conversation_id": str(conv),
                                                     "content": str(i), "ref": str(i)}).decode())
            return
        try:
            status = await http.post(f"/conversations/{conv}/messages", tokens[sender],
                                     orjson.dumps({"content": str(i)}))
            if status != 201:
                run.errors += 1
            else:
                run.stored(i)
        except Exception:
            run.errors += 1

    # Warm-up: the rate ramps up from a tenth to the target, so that the service's start-up work
    # (connections to open, first calls to plan, callers to verify) is done before the measured window,
    # as a real service reaches a high rate; then `duration` seconds at the target rate.
    offsets: list[float] = []
    t = 0.0
    while t < warmup:
        offsets.append(t)
        t += 1 / (rate * (0.1 + 0.9 * t / warmup))
    run.measure_from = len(offsets)
    offsets += [t + k / rate for k in range(int(rate * duration))]
    total = len(offsets)
    meter: CpuMeter | None = None
    start = time.perf_counter() + 0.1
    run.measure_start = start + t
    for i in range(total):
        due = start + offsets[i]
        if i == run.measure_from:
            meter = CpuMeter(svc, postmaster)  # over the measured window only
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lag = time.perf_counter() - due
        if lag > 0.01:
            run.late += 1
        run.max_lag = max(run.max_lag, lag)
        conv, sender, _ = groups[i % len(groups)]
        run.intended[i] = due
        task = asyncio.create_task(send(i, conv, sender))
        pending.add(task)
        task.add_done_callback(pending.discard)
        run.sent += 1
    elapsed = time.perf_counter() - run.measure_start
    cpu = meter.shares() if meter is not None else ""
    if pending:
        await asyncio.wait(pending, timeout=30)
    deadline = time.monotonic() + 10
    expected = 2 * total
    while sum(run.deliveries.values()) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for task in receivers:
        task.cancel()
    await http.close()
    await asyncio.gather(*(ws.close() for ws in [*sockets, *senders.values()]), return_exceptions=True)
    while not writers.empty():
        await writers.get_nowait().close()
    received = sum(run.deliveries.values())
    lost = sum(1 for i in range(total) if run.deliveries.get(i, 0) < 2)
    duplicated = sum(1 for n in run.deliveries.values() if n > 2)
    h = run.histogram
    per_second = [_p99(run.by_second.get(k, [])) for k in range(int(duration))]
    return {"rate": rate, "achieved": (total - run.measure_from) / elapsed, "sent": total - run.measure_from,
            "per_second_p99": per_second, "errors": run.errors, "late": run.late,
            "max_lag_ms": run.max_lag * 1000, "expected": expected, "received": received, "lost": lost,
            "duplicated": duplicated, "p50": h.get_value_at_percentile(50) / 1000,
            "p95": h.get_value_at_percentile(95) / 1000, "p99": h.get_value_at_percentile(99) / 1000,
            "max": h.get_max_value() / 1000, "measured": h.get_total_count(), "cpu": cpu,
            "http_p50": run.http.get_value_at_percentile(50) / 1000,
            "http_p99": run.http.get_value_at_percentile(99) / 1000,
            "after_p50": run.after_store.get_value_at_percentile(50) / 1000,
            "after_p99": run.after_store.get_value_at_percentile(99) / 1000}


def _p99(values: list[float]) -> float:
    return sorted(values)[int(0.99 * (len(values) - 1))] if values else float("nan")


class CpuMeter:
    """CPU used by the service, PostgreSQL and this client over a window, as shares of one core.
    Processes that start during the window (new pool connections) count from zero."""

    def __init__(self, svc: Service, postmaster: int | None) -> None:
        self.svc = svc
        self.postmaster = postmaster
        self.before = self._sample()
        self.started = time.perf_counter()

    def _sample(self) -> dict[int, tuple[str, float]]:
        service = [self.svc.ps, *self.svc.ps.children(recursive=True)]
        groups = [(p, "service") for p in service] + [(psutil.Process(), "bench client")]
        if self.postmaster is not None:
            with contextlib.suppress(psutil.Error):
                pg = psutil.Process(self.postmaster)
                groups += [(p, "postgres") for p in (pg, *pg.children())]
        out: dict[int, tuple[str, float]] = {}
        for proc, group in groups:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                out[proc.pid] = (group, t.user + t.system)
        return out

    def shares(self) -> str:
        elapsed = time.perf_counter() - self.started
        used = {"service": 0.0, "postgres": 0.0, "bench client": 0.0}
        for pid, (group, total) in self._sample().items():
            used[group] += total - self.before.get(pid, (group, 0.0))[1]
        return ", ".join(f"{k} {v / elapsed * 100:.0f}%" for k, v in used.items())


# Main -----------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=10_000, help="idle sockets to open (part 1)")
    parser.add_argument("--connect-concurrency", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages per second (part 2)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds (part 2)")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="unmeasured seconds first, the rate ramping up to --rate (part 2)")
    parser.add_argument("--conversations", type=int, default=250, help="groups of three (part 2)")
    parser.add_argument("--http-connections", type=int, default=16, help="sender's keep-alive connections")
    parser.add_argument("--send-via", choices=("rest", "ws", "sql"), default="rest",
                        help="rest: POST /conversations/{id}/messages (the target); ws: send_message frames; "
                             "sql: the bench inserts and NOTIFYs itself (the realtime side alone, PostgreSQL bus)")
    parser.add_argument("--workers", type=int, default=1, help="service processes (2+: PostgreSQL bus)")
    parser.add_argument("--pool-max", type=int, default=20, help="database pool size per service process")
    parser.add_argument("--unsafe-fast-db", action="store_true",
                        help="embedded PostgreSQL with fsync and synchronous_commit off")
    parser.add_argument("--profile", action="store_true",
                        help="part 2: sample the service's CPU and print where it went, by group")
    parser.add_argument("--pg-statements", type=int, default=0, metavar="N",
                        help="part 2: print the N statements PostgreSQL spent most time in (pg_stat_statements, "
                             "loaded on the embedded server; DATABASE_URL's must preload it)")
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"machine: {cores} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB; python {sys.version.split()[0]}")

    with database(args) as (url, postmaster):
        if not args.skip_idle:
            svc = start_service(url, 1, args.pool_max)
            try:
                r = asyncio.run(idle_sockets(svc, args.sockets, args.connect_concurrency))
            finally:
                svc.stop()
            projected = r["rss_base"] + r["per_conn"] * 10_000
            print("\n1. Idle authenticated sockets, one service process")
            print(f"   opened {r['open']}/{r['requested']} in {r['open_seconds']:.1f}s "
                  f"({r['open'] / r['open_seconds']:.0f}/s), failed {r['failed']} {r['failures'] or ''}")
            print(f"   service CPU {r['cpu_s'] * 1000 / max(1, r['open']):.1f} ms per connection opened")
            print(f"   service RSS {r['rss_base'] / MB:.0f} MB -> {r['rss_after'] / MB:.0f} MB: "
                  f"{r['per_conn'] / 1024:.1f} KiB per connection")
            print(f"   projected for 10,000: {projected / MB:.0f} MB (target < 512 MB: "
                  f"{'met' if projected < 512 * MB else 'NOT met'}); heartbeats answered {r['acks']}/{r['sample']}")
            print("   limits: per-socket memory is the uvicorn protocol + websockets parser state, one asyncio "
                  "task, and a few small objects (no compression contexts, no writer task while idle); "
                  "opening speed is bounded by JWT verification and the first-connection profile insert.")
            gc.collect()
        if not args.skip_latency:
            svc = start_service(url, args.workers, args.pool_max,
                                bus="postgres" if args.send_via == "sql" else "auto", profile=args.profile)
            statements = bool(args.pg_statements) and statements_reset(url)
            try:
                r = asyncio.run(latency(svc, url, postmaster, args.rate, args.duration, args.warmup, args.conversations,
                                        args.http_connections, args.send_via))
                cpu = r["cpu"]
            finally:
                profile = svc.stop()
            how = {"rest": "REST send", "ws": "send_message frame",
                   "sql": "row inserted + NOTIFY by the bench"}[args.send_via]
            print(f"\n2. Delivery latency, {how} -> message_received at 2 recipients, "
                  f"{args.workers} service process(es)")
            print(f"   target {r['rate']:.0f} msg/s, achieved {r['achieved']:.0f} msg/s over "
                  f"{r['sent']} messages; late sends {r['late']} (max lag {r['max_lag_ms']:.0f} ms), "
                  f"HTTP errors {r['errors']}")
            print(f"   deliveries {r['received']}/{r['expected']}, lost {r['lost']}, duplicated {r['duplicated']}")
            print(f"   latency over {r['measured']} deliveries: p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms, "
                  f"p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms (target p99 < 250 ms: "
                  f"{'met' if r['p99'] < 250 and not r['lost'] else 'NOT met'})")
            print(f"   storing it (intended time -> 201 / message_sent / INSERT done): p50 {r['http_p50']:.1f} ms, "
                  f"p99 {r['http_p99']:.1f} ms; delivery after that: p50 {r['after_p50']:.1f} ms, "
                  f"p99 {r['after_p99']:.1f} ms")
            print("   p99 by second of the window (ms): " + " ".join(f"{v:.0f}" for v in r["per_second_p99"]))
            print(f"   CPU (share of one core): {cpu}")
            print(f"   limits: {_latency_limit(r)}")
            if statements:
                print(f"\n   PostgreSQL statements by total time (warm-up and window; nested ones counted inside "
                      f"their callers too):\n   {'calls':>7} {'total ms':>9} {'mean ms':>8}  statement")
                for calls, total, mean, query in statements_top(url, args.pg_statements):
                    print(f"   {calls:>7} {total:>9.0f} {mean:>8.3f}  {query}")
            if profile:
                print("\n   where the service's CPU went (all its processes):")
                profile_groups.print_table({"service": profile})


def statements_reset(url: str) -> bool:
    """Start pg_stat_statements afresh; False (and why) where the server does not have it loaded."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create extension if not exists pg_stat_statements")
            conn.execute("select pg_stat_statements_reset()")
    except psycopg.Error as exc:
        print(f"   --pg-statements: not available on this server ({str(exc).strip().splitlines()[0]}); "
              "it needs shared_preload_libraries = 'pg_stat_statements'")
        return False
    return True


def statements_top(url: str, n: int) -> list[tuple[int, float, float, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "select calls, total_exec_time, total_exec_time / greatest(calls, 1), "
            "left(regexp_replace(query, '\\s+', ' ', 'g'), 100) from pg_stat_statements "
            "where dbid = (select oid from pg_database where datname = current_database()) "
            "order by total_exec_time desc limit %s", (n,)).fetchall()
    return [(int(c), float(t), float(m), str(q)) for c, t, m, q in rows]


def _latency_limit(r: dict[str, Any]) -> str:
    if r["p99"] < 250 and not r["lost"]:
        return "none reached at this rate"
    if r["http_p99"] >= 0.8 * r["p99"]:
        return ("the send path: messages wait to be stored (API request + transaction + commit) far longer "
                "than they take to reach the sockets afterwards; the service process or PostgreSQL is out of "
                "CPU for writes at this rate (2 cores shared with this client)")
    return ("delivery after commit: the hub's read/fan-out or the sockets' writes fall behind; see the "
            "service's CPU share")


if __name__ == "__main__":
    main()
