"""Wall time of the two RLS matrices on the reference schema, on one connection and split over several.

    python bench/rls_matrix_split.py            # 3 rounds
    python bench/rls_matrix_split.py --rounds 5 --ways 2

On an embedded PostgreSQL migrated with the reference service's schema, each round times, in a fresh
context each (a fresh pool, as one `msgops check` has), `db.rls_matrix` scenario `full_matrix` and
`db.rls_model`, first with every cell on one connection (the baseline), then spread over
msgops.probes.db.split.WAYS connections. Both must give the same verdict and the same number of attempts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msgops.config import Target  # noqa: E402
from msgops.embedded import EmbeddedPostgres  # noqa: E402
from msgops.probes import Context, get  # noqa: E402
from msgops.probes.db import split  # noqa: E402
from service.migrate import migrate  # noqa: E402

CASES = (("db.rls_matrix full_matrix", "db.rls_matrix", {"scenario": "full_matrix"}),
         ("db.rls_model", "db.rls_model", {}))


async def timed(url: str, kind: str, params: dict[str, str], ways: int) -> tuple[float, str, int]:
    split.WAYS = ways
    probe = get(kind)
    assert probe is not None
    ctx = Context(Target(database_url=url))
    try:
        async with ctx.db() as conn:  # the pool's first connection, as a warm check run has it
            await conn.execute("select 1")
        started = time.perf_counter()
        outcome = await probe.fn(ctx, **params)
        return time.perf_counter() - started, outcome.status, int(outcome.evidence.get("attempts", 0))
    finally:
        await ctx.close()


async def run(url: str, rounds: int, ways: int) -> int:
    bad = 0
    for label, kind, params in CASES:
        rows: dict[int, list[float]] = {1: [], ways: []}
        seen: set[tuple[str, int]] = set()
        for _ in range(rounds):
            for n in (1, ways):
                seconds, status, attempts = await timed(url, kind, params, n)
                rows[n].append(seconds)
                seen.add((status, attempts))
        one, many = statistics.median(rows[1]), statistics.median(rows[ways])
        print(f"{label:<26} 1 connection: median {one:.2f} s (min {min(rows[1]):.2f})   "
              f"{ways} connections: median {many:.2f} s (min {min(rows[ways]):.2f})   x{one / many:.1f}   "
              f"outcomes {sorted(seen)}")
        bad += len(seen) != 1
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ways", type=int, default=split.WAYS, help="connections of the split runs")
    args = parser.parse_args()
    ways = args.ways
    with tempfile.TemporaryDirectory(prefix="msgops-rls-split-") as tmp:
        server = EmbeddedPostgres(Path(tmp), settings={"fsync": "off", "synchronous_commit": "off"})
        server.start()
        try:
            url = server.admin_url("postgres")
            migrate(url)
            print(f"reference schema on embedded PostgreSQL; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
            return asyncio.run(run(url, args.rounds, ways))
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
