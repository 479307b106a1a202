"""Checks are validated against the probe registry; teams load their own checklists beside the
built-ins; the JSON Schema of checklist files is generated from the same models and shipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from msgops import probes
from msgops.checklist import (
    ChecklistError,
    is_builtin,
    load_checklist,
    load_checklists,
    load_selection,
    split_selection,
    validate_check,
)
from msgops.checklist.schema import SCHEMA_PATH, checklist_schema, schema_text
from msgops.cli_checklists import checklists_app
from msgops.paths import checklists_dir
from msgops.probes import Context, Names, OneOf
from msgops.probes.db import lints
from msgops.results import Outcome, passed

BUILTINS = sorted(p.stem for p in checklists_dir().glob("*.yaml"))
ROOMS: dict[str, str] = {}  # a sub-registry, as @scenario and @flow keep theirs


def write(path: Path, body: str, *, checklist_id: str = "team-chat") -> Path:
    path.write_text(f"version: 1\nid: {checklist_id}\ntitle: Team chat\nitems:\n{body}", encoding="utf-8")
    return path


def item(item_id: str, check: str, severity: str = "high") -> str:
    lines = "".join(f"      {line}\n" for line in check.strip().splitlines())
    return f"  - id: {item_id}\n    text: {item_id}\n    severity: {severity}\n    check:\n{lines}"


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ChecklistError) as info:
        load_checklist(path)
    return info.value.problems


# --- each problem: one line naming the file, the line, what is wrong and what is allowed ----------------


def test_unknown_kind_suggests_the_close_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", item("db.rooms", "kind: db.rls_enable\ntables: [rooms]"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:9: item 'db.rooms': unknown probe kind 'db.rls_enable' (did you mean "
                              "db.rls_enabled or "), problem


def test_unknown_param_lists_the_expected_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", item("db.rooms", "kind: db.rls_enabled\ntables: [rooms]\nforce: true"))
    assert problems_of(path) == [
        f"{path}:11: item 'db.rooms': check 'db.rls_enabled' has unknown param 'force' (expected: tables, forced)"
    ]


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ("kind: http.flow\nflow: send_mesage", "unknown flow 'send_mesage' (expected one of archive_conversation,"),
        ("kind: db.rls_matrix\nscenario: nobody", "unknown scenario 'nobody' (expected one of"),
        ("kind: db.lint\nlint: no_such_lint", "unknown lint 'no_such_lint' (expected one of auth_rls_initplan,"),
        ("kind: realtime.event\nevent: ping", "unknown event 'ping' (expected one of heartbeat,"),
        ("kind: load.threshold\nmetric: http.p95_ms\nop: '=='\nvalue: 200",
         "param 'op': unknown value '==' (expected '<', '<=', '>' or '>=')"),
        ("kind: http.auth_required\ncases: [missing, forged]",
         "param 'cases' (entry 2): unknown value 'forged' (expected 'missing', 'expired',"),
    ],
)
def test_bad_value_lists_the_allowed_ones(tmp_path: Path, check: str, expected: str) -> None:
    path = write(tmp_path / "c.yaml", item("x.y", check))
    [problem] = problems_of(path)
    last = len(path.read_text().splitlines())
    assert problem.startswith(f"{path}:") and expected in problem, problem
    assert int(problem.split(":")[1]) in range(10, last + 1)  # the line of the bad value


def test_missing_required_param_points_at_the_kind(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", item("db.cols", "kind: db.columns_exist\ntable: rooms"))
    assert problems_of(path) == [
        f"{path}:9: item 'db.cols': check 'db.columns_exist' is missing required param 'columns'"
    ]


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ("kind: db.tables_partition_advice\ntable: messages\nrows: '1000'", "param 'rows': input should be a valid"),
        ("kind: db.rls_enabled\ntables: [rooms]\nforced: 1", "param 'forced': input should be a valid boolean"),
        ("kind: db.tables_exist\ntables: []", "param 'tables': list should have at least 1 item"),
        ("kind: db.tables_exist\ntables: [rooms, '  ']", "param 'tables' (entry 2) must not be blank"),
        ("kind: http.status_codes\ncodes: [200, 99]", "param 'codes' (entry 2): input should be greater than"),
        ("kind: realtime.delivery\nbudget_ms: 0", "param 'budget_ms': input should be greater than 0"),
    ],
)
def test_values_are_checked_strictly_as_written(tmp_path: Path, check: str, expected: str) -> None:
    [problem] = problems_of(write(tmp_path / "c.yaml", item("x.y", check)))
    assert expected in problem, problem


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    body = (
        item("a.kind", "kind: http.flo\nflow: send_message")  # lines 5-10
        + item("b.param", "kind: db.tables_exist\ntables: [rooms]\ntabels: [x]", severity="urgent")  # 11-17
        + item("c.value", "kind: db.rls_matrix\nscenario: nobody")  # 18-23
        + item("a.kind", "kind: db.pool")  # 24-28: a duplicate id
    )
    path = write(tmp_path / "c.yaml", body)
    problems = problems_of(path)
    assert [p.split(": ", 1)[0] for p in problems] == [f"{path}:{n}" for n in (9, 13, 17, 23, 24)]
    assert "unknown probe kind 'http.flo'" in problems[0]
    assert "unknown severity 'urgent'" in problems[1]
    assert "unknown param 'tabels'" in problems[2]
    assert "unknown scenario 'nobody'" in problems[3]
    assert "duplicate id (first at line 5)" in problems[4]


def test_cli_prints_every_problem_and_exits_3(tmp_path: Path) -> None:
    body = item("a", "kind: http.flo") + item("b", "kind: db.pool\nmax_connections: -1")
    path = write(tmp_path / "c.yaml", body)
    result = CliRunner().invoke(checklists_app, ["list", "-p", str(path)])
    assert result.exit_code == 3
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and "unknown probe kind 'http.flo'" in lines[0] and "'max_connections'" in lines[1]
    assert "Traceback" not in result.output


# --- a team's own checklists ---------------------------------------------------------------------------


def test_custom_checklist_needs_no_seed_or_line(tmp_path: Path) -> None:
    path = write(tmp_path / "team.yaml", item("db.rooms", "kind: db.rls_enabled\ntables: [rooms]"))
    checklist = load_checklist(path)
    assert checklist.seed is None and checklist.items[0].line is None
    assert not is_builtin(path)
    assert checklist.item("db.rooms").full_id == "team-chat/db.rooms"


def test_builtin_checklists_must_cite_their_seed(tmp_path: Path) -> None:
    path = write(tmp_path / "team.yaml", item("db.rooms", "kind: db.rls_enabled\ntables: [rooms]"))
    problems = [p.split(": ", 1)[1] for p in problems_of_builtin(path)]
    assert problems == [
        "missing required field 'seed' (a built-in checklist names its seed file)",
        "item 'db.rooms': missing required field 'line' (a built-in checklist cites its seed's line)",
    ]
    assert all(is_builtin(p) for p in checklists_dir().glob("*.yaml"))


def problems_of_builtin(path: Path) -> list[str]:
    with pytest.raises(ChecklistError) as info:
        load_checklist(path, builtin=True)
    return info.value.problems


def test_a_folder_of_checklists_with_an_id_clash_names_both_files(tmp_path: Path) -> None:
    body = item("db.rooms", "kind: db.rls_enabled\ntables: [rooms]")
    write(tmp_path / "a.yaml", body)
    write(tmp_path / "b.yaml", body)
    write(tmp_path / "c.yaml", body, checklist_id="other")
    with pytest.raises(ChecklistError) as info:
        load_checklists(tmp_path)
    [problem] = info.value.problems
    assert str(tmp_path / "b.yaml") in problem and str(tmp_path / "a.yaml") in problem
    assert "checklist id 'team-chat' is also used by" in problem


def test_a_custom_checklist_cannot_reuse_a_builtin_id(tmp_path: Path) -> None:
    path = write(tmp_path / "mine.yaml", item("x", "kind: db.pool"), checklist_id=BUILTINS[0])
    with pytest.raises(ChecklistError, match=f"checklist id '{BUILTINS[0]}' is also used by .*{BUILTINS[0]}.yaml"):
        load_selection(None, [path])


def test_load_selection_combines_builtins_and_paths(tmp_path: Path) -> None:
    write(tmp_path / "team.yaml", item("db.rooms", "kind: db.rls_enabled\ntables: [rooms]"))
    everything = load_selection(None, [tmp_path])
    assert [c.id for c in everything] == [*BUILTINS, "team-chat"]
    assert [c.id for c in load_selection([], [tmp_path / "team.yaml"])] == ["team-chat"]
    assert [c.id for c in load_selection([BUILTINS[2], BUILTINS[0]])] == [BUILTINS[2], BUILTINS[0]]
    assert [c.id for c in load_selection(None)] == BUILTINS
    # the same file named twice (a built-in id and its path) is loaded once
    assert [c.id for c in load_selection([BUILTINS[0]], [checklists_dir() / f"{BUILTINS[0]}.yaml"])] == BUILTINS[:1]
    with pytest.raises(ChecklistError, match="unknown built-in checklist 'nope'"):
        load_selection(["nope"])
    with pytest.raises(ChecklistError, match="no checklists selected"):
        load_selection([], [])


def test_split_selection_tells_ids_from_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "team.yaml", item("x", "kind: db.pool"))
    (tmp_path / "more").mkdir()
    ids, paths = split_selection([BUILTINS[0], "team.yaml", "more", "./other/x.yml"])
    assert ids == [BUILTINS[0]]
    assert paths == [Path("team.yaml"), Path("more"), Path("other/x.yml")]
    with pytest.raises(ChecklistError, match=f"no built-in checklist '000-messaging' .*did you mean {BUILTINS[0]}"):
        split_selection(["000-messaging"])
    with pytest.raises(ChecklistError, match="cannot read checklist"):
        load_selection([], split_selection(["./other/x.yml"])[1])


# --- one registry: new kinds, sub-registry entries and lint files need no list edited -------------------


@pytest.fixture
def custom_kind() -> Iterator[dict[str, str]]:
    """A probe kind registered the way a probe module does, whose allowed values live in a dict."""
    ROOMS.clear()
    ROOMS["lobby"] = "the public room"

    @probes.probe("db.room_policy", what="w", why="y", example="e", fix="f")
    async def room_policy(ctx: Context, room: Annotated[str, OneOf(ROOMS, "room")], tables: Names,
                          mode: Literal["strict", "lax"] = "strict") -> Outcome:
        return passed(room)

    try:
        yield ROOMS
    finally:
        del probes.registry()["db.room_policy"]


def test_a_new_kind_is_validated_from_its_signature(custom_kind: dict[str, str]) -> None:
    validate_check("db.room_policy", {"room": "lobby", "tables": ["rooms"]})
    with pytest.raises(ValueError, match=r"unknown room 'attic' .*expected one of lobby"):
        validate_check("db.room_policy", {"room": "attic", "tables": ["rooms"]})
    custom_kind["attic"] = "registered later"  # the registry is read when a value is validated
    validate_check("db.room_policy", {"room": "attic", "tables": ["rooms"], "mode": "lax"})
    schema = probes.registry()["db.room_policy"].params.model_json_schema()
    assert schema["required"] == ["room", "tables"] and schema["properties"]["room"]["enum"] == ["attic", "lobby"]
    assert "db.room_policy" in checklist_schema()["$defs"]["Check"]["discriminator"]["mapping"]


def test_an_explicit_params_model_overrides_the_signature() -> None:
    class Budget(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        seconds: float

    @probes.probe("load.budget", what="w", why="y", example="e", fix="f", params=Budget)
    async def budget(ctx: Context, **params: float) -> Outcome:
        return passed("ok")

    try:
        validate_check("load.budget", {"seconds": 2})
        with pytest.raises(ValueError, match="unknown param 'minutes'"):
            validate_check("load.budget", {"seconds": 2, "minutes": 1})
    finally:
        del probes.registry()["load.budget"]


def test_a_new_lint_file_is_a_valid_lint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for existing in lints.LINTS_DIR.glob("*.sql"):
        (tmp_path / existing.name).write_text(existing.read_text())
    with pytest.raises(ValueError, match="unknown lint 'publication_missing_table'"):
        validate_check("db.lint", {"lint": "publication_missing_table"})
    (tmp_path / "publication_missing_table.sql").write_text("select 1 where false")
    monkeypatch.setattr(lints, "LINTS_DIR", tmp_path)
    validate_check("db.lint", {"lint": "publication_missing_table"})


# --- the JSON Schema ------------------------------------------------------------------------------------


def test_shipped_schema_is_in_sync_with_the_registry() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "the shipped checklist schema is stale: regenerate it with "
        "`msgops checklists schema > msgops/schemas/checklist.schema.json`"
    )


def test_builtin_checklists_are_valid_under_the_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = sorted(checklists_dir().glob("*.yaml"))
    assert len(files) == 5
    for path in files:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
        assert errors == [], f"{path.name}: {errors[:3]}"


@pytest.mark.parametrize(
    "check",
    [
        {"kind": "db.rls_enable", "tables": ["rooms"]},
        {"kind": "db.rls_enabled", "tables": ["rooms"], "force": True},
        {"kind": "db.rls_matrix", "scenario": "nobody"},
        {"kind": "db.columns_exist", "table": "rooms"},
        {"kind": "http.status_codes", "codes": ["200"]},
    ],
)
def test_the_schema_rejects_what_the_loader_rejects(check: dict[str, object]) -> None:
    document = {"version": 1, "id": "team-chat", "title": "T",
                "items": [{"id": "x", "text": "x", "severity": "high", "check": check}]}
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    assert not validator.is_valid(document)
    kind, params = check["kind"], {k: v for k, v in check.items() if k != "kind"}
    with pytest.raises(ValueError):
        validate_check(str(kind), params)
    ok = {**document, "items": [{"id": "x", "text": "x", "severity": "high", "manual": True, "confirm": "yes"}]}
    assert validator.is_valid(ok)


# --- the CLI ---------------------------------------------------------------------------------------------


def test_schema_command_prints_the_shipped_schema() -> None:
    result = CliRunner().invoke(checklists_app, ["schema"])
    assert result.exit_code == 0
    assert result.output == SCHEMA_PATH.read_text(encoding="utf-8")


def test_show_item_explains_its_check() -> None:
    result = CliRunner().invoke(
        checklists_app, ["show", "000-messaging-production/db.rls.enabled"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    doc = probes.registry()["db.rls_enabled"].doc
    for label, text in (("what", doc.what), ("why", doc.why), ("example", doc.example), ("fix", doc.fix)):
        rows = [line.strip("│ ") for line in result.output.splitlines()]
        assert any(row.startswith(label) and text[:40] in row for row in rows), label
    assert "tables (required): list of text, at least 1" in result.output
    assert "forced (default false): true or false" in result.output


def test_show_kind_and_kinds(tmp_path: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(checklists_app, ["show", "db.rls_matrix"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0 and "scenario (required): one of" in shown.output and "full_matrix" in shown.output
    typo = runner.invoke(checklists_app, ["show", "db.rls_matrx"])
    assert typo.exit_code == 3 and "did you mean db.rls_matrix" in typo.output
    listed = runner.invoke(checklists_app, ["kinds"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and all(kind in listed.output for kind in probes.registry())
    path = write(tmp_path / "team.yaml", item("db.rooms", "kind: db.rls_enabled\ntables: [rooms]"))
    custom = runner.invoke(checklists_app, ["show", "team-chat/db.rooms", "-p", str(path)], env={"COLUMNS": "200"})
    assert custom.exit_code == 0 and "db.rls_enabled(tables=[rooms])" in custom.output and "line" not in custom.output


@pytest.mark.parametrize("command", ["list", "show", "kinds", "schema", "coverage"])
def test_every_subcommand_has_help_with_examples(command: str) -> None:
    result = CliRunner().invoke(checklists_app, [command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "Examples:" in result.output and f"msgops checklists {command}" in result.output.replace("  ", " ")
