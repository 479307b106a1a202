"""What users know from pytest, ruff, goss and k6 holds for every msgops command: --help teaches
with examples, -q/-v exist, environment variables are shown, usage errors exit 3."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from msgops.cli import app

runner = CliRunner()


def _commands() -> list[tuple[str, ...]]:
    root = typer.main.get_command(app)
    found: list[tuple[str, ...]] = []

    def walk(group: object, path: tuple[str, ...]) -> None:
        if hasattr(group, "commands"):  # a group (typer ships its own copy of click)
            for name, sub in group.commands.items():
                walk(sub, (*path, name))
        else:
            found.append(path)

    walk(root, ())
    return found


COMMANDS = _commands()


def test_every_command_is_listed() -> None:
    names = {" ".join(c) for c in COMMANDS}
    assert {"check", "gate", "load", "report", "serve", "token", "init", "signoff", "db migrate",
            "checklists list"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_help_teaches_with_examples_and_offers_quiet_and_verbose(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"msgops {' '.join(command)} --help has no examples"
    assert "--quiet" in result.output and "-q" in result.output
    assert "--verbose" in result.output and "-v" in result.output


@pytest.mark.parametrize(("command", "variable"), [
    (("check",), "MSGOPS_TARGET"), (("check",), "MSGOPS_API_URL"), (("check",), "MSGOPS_FAIL_ON"),
    (("gate",), "MSGOPS_OUTPUT_FORMAT"), (("load",), "MSGOPS_API_URL"), (("serve",), "DATABASE_URL"),
])
def test_help_shows_the_environment_variable_of_a_flag(command: tuple[str, ...], variable: str) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert variable in result.output
