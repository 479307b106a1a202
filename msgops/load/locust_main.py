"""The Locust process: `python -m msgops.load.locust_main <Locust's arguments>` is `python -m locust`
started on about 0.15 s less CPU. msgops runs many short Locust processes (each run, each worker), so
their start-up is a visible share of what a load test costs the machine it runs on:

- The installed packages' entry points are read once. gevent looks for plugins by entry point at
  each of its 25 monkey-patching events, which Locust runs as it is imported, and the standard
  library reads every installed distribution's metadata on each look (about 90 ms with 150 packages
  installed). Nothing installs a package while a load test runs, so one read serves them all.
- Locust's web UI is not imported when the run is headless, as msgops's always are: Locust imports
  it (Flask and its kin, about 65 ms) whether or not it serves it.
"""

from __future__ import annotations

import runpy
import sys
import types
from importlib import metadata
from typing import Any


def read_entry_points_once() -> None:
    every: Any = metadata.entry_points()  # all of them, in the type this Python returns for no arguments

    def entry_points(**params: Any) -> Any:
        return every.select(**params) if params else every

    metadata.entry_points = entry_points


class _NoWebUI:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("this Locust process runs headless: its web UI was not loaded")


def headless_without_web_ui() -> None:
    """Stand in for the module Locust imports its web UI from (`locust.env` takes `WebUI` from it)."""
    stand_in = types.ModuleType("locust.web", "Locust's web UI, not loaded: the run is headless.")
    stand_in.WebUI = _NoWebUI  # type: ignore[attr-defined]
    sys.modules["locust.web"] = stand_in


if __name__ == "__main__":
    read_entry_points_once()
    if "--headless" in sys.argv:
        headless_without_web_ui()
    runpy.run_module("locust", run_name="__main__", alter_sys=True)
