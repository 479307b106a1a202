"""Options that choose the target, shared by the commands that run against one (`check`, `gate`, `load`).

A module of its own so that a command needs only these, not the other commands' modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

TargetFile = Annotated[Path | None, typer.Option(
    "--target", "-t", envvar="MSGOPS_TARGET", show_envvar=True, show_default=False,
    help="Target file \\[default: msgops.yaml here or in a parent folder; else the environment; else a local "
         "`msgops serve`].")]
ApiUrl = Annotated[str | None, typer.Option(
    "--api-url", show_default=False, help="API base URL \\[env var: MSGOPS_API_URL].")]
