"""Memory and time of the reference service while ten 10 MB uploads run at once.

    python bench/upload_memory.py            # 3 rounds
    python bench/upload_memory.py --rounds 5

It starts `msgops serve` on an embedded PostgreSQL in a temporary directory (one process, local
storage), then measures the service process's RSS (sampled every 10 ms) and each upload's time:

- `idle`:      RSS before any upload (the baseline);
- `small x10`: ten concurrent 1 KB uploads (the baseline of the upload path itself);
- `10MB x1`:   one 10 MB upload alone;
- `10MB x10`:  ten concurrent 10 MB uploads (the figure: peak RSS within +50 MB of idle; seed 001's
               "File Upload Time < 5s for 10MB files" for each upload).

Upload bodies are valid PDFs (content sniffing accepts them without decoding) just under the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msgops import local_service  # noqa: E402
from service.auth import mint_token  # noqa: E402

TEN_MB = 10 * 1024 * 1024 - 1024  # just under the default limit
CHUNK = 256 * 1024


async def body(size: int) -> AsyncIterator[bytes]:
    head = b"%PDF-1.4\n% msgops upload bench\n"
    yield head
    left = size - len(head)
    block = b"0" * CHUNK
    while left > 0:
        yield block[: min(CHUNK, left)]
        left -= CHUNK


class Sampler:
    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.running = False

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    async def run(self) -> None:
        self.running = True
        while self.running:
            self.peak = max(self.peak, self.rss())
            await asyncio.sleep(0.01)


async def uploads(client: httpx.AsyncClient, conv: str, token: str, count: int, size: int,
                  sampler: Sampler) -> tuple[list[float], int]:
    """`count` concurrent uploads of `size` bytes: their times (s) and the service's peak RSS."""

    async def one() -> float:
        t0 = time.perf_counter()
        r = await client.post(f"/conversations/{conv}/attachments", params={"filename": "bench.pdf"},
                              content=body(size), headers={"Authorization": f"Bearer {token}",
                                                           "Content-Length": str(size)})
        if r.status_code != 201:
            raise SystemExit(f"upload answered {r.status_code}: {r.text[:200]}")
        return time.perf_counter() - t0

    sampler.peak = sampler.rss()
    task = asyncio.create_task(sampler.run())
    times = await asyncio.gather(*(one() for _ in range(count)))
    sampler.running = False
    await task
    return list(times), sampler.peak


def mb(n: float) -> str:
    return f"{n / 1024 / 1024:7.1f} MB"


async def main(rounds: int) -> int:
    with tempfile.TemporaryDirectory(prefix="msgops-upload-bench-") as tmp:
        service = local_service.start(Path(tmp) / ".msgops")
        try:
            print(f"msgops serve at {service.api_url}; {os.cpu_count()} cores")
            token = mint_token(service.jwt_secret, uuid.uuid4())
            sampler = Sampler(service._process.pid)
            async with httpx.AsyncClient(base_url=service.api_url, timeout=120) as client:
                r = await client.post("/conversations", json={"kind": "group", "title": "bench", "member_ids": []},
                                      headers={"Authorization": f"Bearer {token}"})
                conv = r.json()["id"]
                await uploads(client, conv, token, 2, TEN_MB, sampler)  # warm up
                await asyncio.sleep(1)
                idle = sampler.rss()
                print(f"{'idle':>10}: rss {mb(idle)}")
                worst_delta, all_times = 0, []
                for n in range(rounds):
                    _, small_peak = await uploads(client, conv, token, 10, 1024, sampler)
                    one_times, one_peak = await uploads(client, conv, token, 1, TEN_MB, sampler)
                    times, peak = await uploads(client, conv, token, 10, TEN_MB, sampler)
                    all_times += times
                    worst_delta = max(worst_delta, peak - idle)
                    print(f"round {n + 1}: small x10 peak {mb(small_peak)} (+{mb(small_peak - idle).strip()}) | "
                          f"10MB x1 {one_times[0]:.2f} s, peak +{mb(one_peak - idle).strip()} | "
                          f"10MB x10 peak {mb(peak)} (+{mb(peak - idle).strip()}), "
                          f"times p50 {statistics.median(times):.2f} s max {max(times):.2f} s")
            all_times.sort()
            p95 = all_times[max(0, round(0.95 * len(all_times)) - 1)]
            print(f"10MB x10 over {rounds} rounds: p95 upload {p95:.2f} s (seed: < 5 s), "
                  f"worst peak RSS +{mb(worst_delta).strip()} over idle (target: <= +50 MB)")
        finally:
            service.stop()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    sys.exit(asyncio.run(main(parser.parse_args().rounds)))
