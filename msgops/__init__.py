"""msgops: production checklists for messaging systems, made executable.

The Python API (see msgops.api; imported on first use, so `import msgops` stays cheap)::

    import msgops

    target = msgops.resolve_target()                       # flags > environment > msgops.yaml
    run = msgops.run_checks(target, msgops.Selection(tags=("rls",)))
    print(run.verdict.headline)                            # GO / NO-GO / GO with exceptions / INCOMPLETE
    run.write_json("msgops-out/results.json")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "resolve_target": "msgops.api", "Selection": "msgops.api", "plan": "msgops.api", "run_checks": "msgops.api",
    "run_checks_async": "msgops.api", "judge": "msgops.api", "CheckRun": "msgops.api", "Planned": "msgops.api",
    "load": "msgops.api", "Target": "msgops.config", "RunOptions": "msgops.engine", "Result": "msgops.results",
    "evaluate": "msgops.verdict", "GatePolicy": "msgops.verdict", "Verdict": "msgops.verdict",
    "UserError": "msgops.errors", "render_report": "msgops.cli_report",
}

if TYPE_CHECKING:
    from msgops.api import CheckRun, Planned, Selection, judge, load, plan, resolve_target, run_checks, run_checks_async
    from msgops.cli_report import render_report
    from msgops.config import Target
    from msgops.engine import RunOptions
    from msgops.errors import UserError
    from msgops.results import Result
    from msgops.verdict import GatePolicy, Verdict, evaluate


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'msgops' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["CheckRun", "GatePolicy", "Planned", "Result", "RunOptions", "Selection", "Target", "UserError", "Verdict",
           "__version__", "evaluate", "judge", "load", "plan", "render_report", "resolve_target", "run_checks",
           "run_checks_async"]
