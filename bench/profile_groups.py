"""Where a Python service's CPU goes, by kind of work: CPU samples of its processes (taken by
bench/cpu_sampler/sitecustomize.py), grouped.

Each sample is a stack. It is charged to the innermost frame that belongs to a named group (the
driver, the web framework, validation, ...); a sample whose frames are all the interpreter's own
(asyncio, the standard library) is charged to the group of the nearest caller, and a stack with no
named frame at all is the event loop's. So time asyncio spends on psycopg's behalf counts as the
driver's, and time uvicorn spends parsing HTTP counts as the server's.

    env = {**os.environ, **sampling_env(out_dir)}   # start the service with this environment
    ...                                              # the load; stop the service
    print_table({"this": grouped(list(out_dir.glob("cpu-*.txt")))})
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

# (group, pattern on a frame's file path); the first pattern that matches names the group.
GROUPS: list[tuple[str, re.Pattern[str]]] = [
    (STARTUP := "start-up (imports)", re.compile(r"<frozen importlib")),
    ("logging", re.compile(r"/logging/|service/logs\.py")),
    ("metrics", re.compile(r"prometheus_client|service/metrics\.py")),
    ("driver (psycopg, pool)", re.compile(r"psycopg")),
    ("validation / JSON", re.compile(r"pydantic|orjson|/json/|fastapi/encoders")),
    ("JWT", re.compile(r"/jwt/|service/auth\.py")),
    ("routing / middleware", re.compile(r"starlette|fastapi|service/(middleware|request_id|limits|send_path"
                                        r"|http_errors|responses)\.py")),
    ("server (uvicorn, httptools)", re.compile(r"uvicorn|httptools|service/serving\.py")),
    ("our code (service)", re.compile(r"(^|/)service/")),
]
LOOP = "event loop (asyncio, uvloop)"
SITE_PACKAGES = str(Path(re.__file__).parent)  # the standard library's folder, shortened in listings
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def group_of(frames: list[str]) -> str:
    """The group of one stack, frames from the outermost to the innermost."""
    for frame in reversed(frames):
        m = _FRAME.match(frame)
        where = m["file"] if m else frame
        for name, pattern in GROUPS:
            if pattern.search(where):
                return name
    return LOOP


def grouped(files: list[Path]) -> Counter[str]:
    """Samples per group over py-spy's raw ("collapsed") output files."""
    counts: Counter[str] = Counter()
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if stack and n.isdigit():
                counts[group_of([f for f in stack.split(";") if not f.startswith(("process ", "thread "))])] += int(n)
    return counts


def sampling_env(out_dir: Path) -> dict[str, str]:
    """The environment that makes Python processes sample their CPU into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return {"MSGOPS_CPU_SAMPLE_DIR": str(out_dir), "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parent / "cpu_sampler"), *filter(None, [os.environ.get("PYTHONPATH")])])}


def hottest(files: list[Path], n: int = 15) -> list[tuple[str, float]]:
    """The n lines most often on top of the stack after start-up (self time), with their share."""
    counts: Counter[str] = Counter()
    for path in files:
        if path.exists():
            for line in path.read_text().splitlines():
                stack, _, k = line.rpartition(" ")
                if stack and k.isdigit() and "<frozen importlib" not in stack:
                    counts[stack.rsplit(";", 1)[-1].replace(SITE_PACKAGES, "")] += int(k)
    total = sum(counts.values()) or 1
    return [(frame, 100 * k / total) for frame, k in counts.most_common(n)]


def print_table(profiles: dict[str, Counter[str]], per_unit_ms: dict[str, float] | None = None) -> None:
    """One column per profile: each group's share of the samples after start-up and, given the CPU
    milliseconds per unit of work (a send) of each profile, that share in milliseconds per unit."""
    names = [name for name, _ in GROUPS if name != STARTUP] + [LOOP]
    labels = list(profiles)
    running = {label: sum(n for g, n in profiles[label].items() if g != STARTUP) or 1 for label in labels}
    width = 20 if per_unit_ms else 11
    print(f"{'after start-up':32}" + "".join(f"{label:>{width}}" for label in labels))
    for name in names:
        cells = []
        for label in labels:
            share = profiles[label][name] / running[label]
            cell = f"{100 * share:.1f}%"
            if per_unit_ms and label in per_unit_ms:
                cell += f" {share * per_unit_ms[label]:.3f} ms"
            cells.append(f"{cell:>{width}}")
        print(f"{name:32}" + "".join(cells))
    if per_unit_ms:
        print(f"{'total CPU ms per send':32}" + "".join(f"{per_unit_ms.get(label, 0):>{width - 3}.3f} ms"
                                                        for label in labels))
    print(f"{'samples (in start-up)':32}"
          + "".join(f"{f'{running[label]} ({profiles[label][STARTUP]})':>{width}}" for label in labels))
