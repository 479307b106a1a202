"""The Locust process: `python -m msgops.load.locust_main <Locust's arguments>` is `python -m locust`,
with the installed packages' entry points read once.

Locust monkey-patches the process with gevent as it is imported, and gevent looks for plugins by
entry point at each of its 25 patching events; the standard library reads every installed
distribution's metadata on each look (about 75 ms of CPU per Locust process with 150 packages
installed). Nothing installs a package while a load test runs, so one read serves them all.
"""

from __future__ import annotations

import runpy
from importlib import metadata
from typing import Any


def read_entry_points_once() -> None:
    every: Any = metadata.entry_points()  # all of them, in the type this Python returns for no arguments

    def entry_points(**params: Any) -> Any:
        return every.select(**params) if params else every

    metadata.entry_points = entry_points


if __name__ == "__main__":
    read_entry_points_once()
    runpy.run_module("locust", run_name="__main__", alter_sys=True)
