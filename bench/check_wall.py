"""Wall time of a full `msgops check` against the local reference service.

    python bench/check_wall.py              # 7 runs of every checklist, plus the baselines
    python bench/check_wall.py --runs 15

It starts `msgops serve` on an embedded PostgreSQL in a temporary directory (one service process,
as `msgops gate` starts it), warms it with one run, then times, as a user would see them
(process start to exit, each a fresh `msgops check` process):

- `full`:   every checklist, all 239 automated items (the figure the target is about: < 5 s);
- `start`:  `msgops check --only` one database item, the baseline of start-up, imports, checklist
            loading and one probe;
- `serial`: every checklist with `--concurrency 1` (one run only: the same work, nothing overlapped).

Every run must end GO (exit 0), or INCOMPLETE only because no load run was recorded for the
load thresholds (the bench measures the checks, not `msgops load`); anything else is reported and
the script exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msgops import local_service  # noqa: E402

# The console script, as users run it (its imports differ from `python -m msgops.cli`).
_SCRIPT = Path(sys.executable).parent / "msgops"
MSGOPS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "msgops.cli"]
ONE_ITEM = "000-messaging-production/db.rls.enabled"


def _only_load_unmeasured(document: dict) -> bool:
    """INCOMPLETE only because the load thresholds have no load run to read."""
    kinds = {r["id"]: r["kind"] for r in document["results"]}
    blockers = document["verdict"]["blockers"]
    return bool(blockers) and all(b["status"] == "not_run" and kinds.get(b["id"]) == "load.threshold"
                                  for b in blockers)


def timed(args: list[str], cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, the run's own duration from the JSON, 0 or the exit code of a bad run) of one check."""
    out = cwd / "run.json"
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    done = subprocess.run([*MSGOPS, "check", "-q", "--json", str(out), *args], cwd=cwd,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    document = json.loads(out.read_text()) if out.exists() else None
    code = done.returncode
    if code == 2 and document is not None and _only_load_unmeasured(document):
        code = 0
    if code != 0:
        print(f"  exit {done.returncode}: {done.stdout.strip()} {done.stderr.strip()[-300:]}")
    run_ms = document["run"]["duration_ms"] if document else float("nan")
    if document:
        global LAST_RESULTS
        LAST_RESULTS = document.get("results", [])
    return wall, run_ms / 1000, code


LAST_RESULTS: list[dict] = []  # the results of the latest run, for --slowest


def summary(name: str, rows: list[tuple[float, float, int]]) -> str:
    walls = sorted(w for w, _, _ in rows)
    runs = sorted(r for _, r, _ in rows)
    return (f"{name:<7} runs {len(rows):>2}  wall median {statistics.median(walls):.2f} s  min {walls[0]:.2f}  "
            f"max {walls[-1]:.2f}   in-run median {statistics.median(runs):.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed runs of the full check")
    parser.add_argument("--slowest", type=int, default=0, help="also list the N slowest checks of the last full run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="msgops-check-bench-"))
    service = local_service.start(work / ".msgops")  # `msgops check` in `work` finds it there
    (work / "msgops.yaml").write_text(f"repo: {ROOT}\n")  # the git checks read this checkout
    try:
        print(f"msgops serve at {service.api_url}, data in {work}; {os.cpu_count()} cores")
        timed([], work)  # warm-up: first connections, first plans
        full = [timed([], work) for _ in range(args.runs)]
        slowest = sorted(LAST_RESULTS, key=lambda r: -r.get("duration_ms", 0))[:args.slowest]
        start = [timed(["--only", ONE_ITEM], work) for _ in range(3)]
        serial = [timed(["--concurrency", "1"], work)]
        print(summary("full", full))
        print(summary("start", start))
        print(summary("serial", serial))
        if slowest:
            print(f"slowest checks of the last full run (of {len(LAST_RESULTS)}):")
            for r in slowest:
                print(f"  {r.get('duration_ms', 0) / 1000:6.2f} s  {r.get('id')}  {r.get('kind', '')}")
        failed = [r for r in full + start + serial if r[2] != 0]
        return 1 if failed else 0
    finally:
        service.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
