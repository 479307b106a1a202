"""CPU sampling of every Python process started with this directory on PYTHONPATH (used by
`bench/send_throughput.py --profile`): SIGPROF every MSGOPS_CPU_SAMPLE_MS of CPU time consumed
(user + system), the Python stack at that moment counted, written at exit to
$MSGOPS_CPU_SAMPLE_DIR/cpu-<pid>.txt in the "collapsed" format (frames joined by ';', then a count).

Unlike a wall-clock sampler from outside (py-spy), a process that is runnable but not running
collects no samples: on a machine with more work than cores, the shares are shares of CPU. Time in
a system call or a C extension is charged to the Python line that called it."""

from __future__ import annotations

import atexit
import os
import signal
import sys
from collections import Counter

_DIR = os.environ.get("MSGOPS_CPU_SAMPLE_DIR")


def _install() -> None:
    counts: Counter[str] = Counter()
    pid = os.getpid()

    def sample(signum: int, frame: object) -> None:
        frames = []
        f = frame
        while f is not None:
            code = f.f_code  # type: ignore[attr-defined]
            frames.append(f"{code.co_qualname} ({code.co_filename}:{f.f_lineno})")  # type: ignore[attr-defined]
            f = f.f_back  # type: ignore[attr-defined]
        counts[";".join(reversed(frames))] += 1

    def write() -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)  # no sample may change the counts while they are written
        if counts and _DIR:
            with open(os.path.join(_DIR, f"cpu-{pid}.txt"), "w") as out:
                out.writelines(f"{stack} {n}\n" for stack, n in counts.items())

    interval = float(os.environ.get("MSGOPS_CPU_SAMPLE_MS", "2")) / 1000
    signal.signal(signal.SIGPROF, sample)
    signal.setitimer(signal.ITIMER_PROF, interval, interval)
    atexit.register(write)

    def on_term(signum: int, frame: object) -> None:  # uvicorn's workers may end by SIGTERM
        write()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, on_term)


if _DIR and sys.version_info >= (3, 11):
    _install()
