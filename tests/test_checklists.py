"""The shipped checklists match their seeds, and malformed checklists fail with file:line messages."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msgops.checklist import Checklist, ChecklistError, load_checklist, load_checklists, probe_kinds
from msgops.cli_checklists import checklists_app
from msgops.paths import checklists_dir

SEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"
CHECKBOX = re.compile(r"^\s*(?:[-*]|\d+\.)\s+\[[ xX]\]\s+\S")
EXPECTED_CHECKBOXES = {
    "000-messaging-production": 170,
    "001-production-readiness": 52,
    "002-role-based-messaging": 6,
    "003-deployment": 30,
    "004-spec-msg-001": 76,
}


@pytest.fixture(scope="module")
def checklists() -> list[Checklist]:
    return load_checklists()


def _seed_lines(checklist: Checklist) -> list[str]:
    assert checklist.seed, f"{checklist.id} names no seed"
    path = SEEDS / checklist.seed
    if not path.is_file():
        pytest.skip(f"seed {path} not available")
    return path.read_text(encoding="utf-8").splitlines()


# --- the shipped checklists -------------------------------------------------------------------------


def test_all_five_load(checklists: list[Checklist]) -> None:
    assert [c.id for c in checklists] == sorted(EXPECTED_CHECKBOXES)
    for c in checklists:
        assert c.path is not None
        assert c.path.name == f"{c.id}.yaml"
        assert c.sha256 == hashlib.sha256(c.path.read_bytes()).hexdigest()
        assert c.items


def test_default_dir_is_checklists_dir(checklists: list[Checklist]) -> None:
    assert {c.path.parent for c in checklists if c.path} == {checklists_dir()}


@pytest.mark.skipif(not SEEDS.is_dir(), reason="seed checklists not available")
def test_every_seed_checkbox_is_an_item(checklists: list[Checklist]) -> None:
    for c in checklists:
        lines = _seed_lines(c)
        seed_boxes = {n for n, line in enumerate(lines, 1) if CHECKBOX.match(line)}
        item_boxes = [i.line for i in c.items if i.kind == "checkbox"]
        assert len(seed_boxes) == EXPECTED_CHECKBOXES[c.id], c.id
        assert len(item_boxes) == len(set(item_boxes)), f"{c.id}: a seed checkbox appears twice"
        assert set(item_boxes) == seed_boxes, f"{c.id}: missing {sorted(seed_boxes - set(item_boxes))}"
        for i in c.items:
            if i.kind == "requirement":
                assert not CHECKBOX.match(lines[i.line - 1]), f"{i.full_id} is a checkbox, not a requirement"


def test_checkbox_totals(checklists: list[Checklist]) -> None:
    counts = {c.id: sum(1 for i in c.items if i.kind == "checkbox") for c in checklists}
    assert counts == EXPECTED_CHECKBOXES
    assert sum(counts.values()) == 334


@pytest.mark.skipif(not SEEDS.is_dir(), reason="seed checklists not available")
def test_item_text_is_verbatim_at_its_line(checklists: list[Checklist]) -> None:
    for c in checklists:
        lines = _seed_lines(c)
        for i in c.items:
            assert i.line <= len(lines), f"{i.full_id}: line {i.line} is past the end of {c.seed}"
            assert i.text in lines[i.line - 1], f"{i.full_id}: {i.text!r} not at {c.seed}:{i.line}"


def test_requirements_from_tables_and_targets(checklists: list[Checklist]) -> None:
    by_id = {c.id: c for c in checklists}
    requirement_sections = {
        c.id: {i.section[-1] for i in c.items if i.kind == "requirement"} for c in checklists
    }
    assert "Success Metrics" in requirement_sections["000-messaging-production"]
    assert {"Target Metrics", "Scalability Limits", "Alert Thresholds"} <= requirement_sections[
        "001-production-readiness"
    ]
    assert {
        "3.1 Database Migration",
        "3.3 Environment Variables",
        "4.2 Staging End-to-End",
        "4.3 Load / Soak",
    } <= (requirement_sections["002-role-based-messaging"])
    assert {"2. Environment Setup", "Immediate Checks", "24-Hour Monitoring"} <= requirement_sections[
        "003-deployment"
    ]
    assert {"Performance Targets", "4. Environment Variables"} <= requirement_sections["004-spec-msg-001"]
    assert by_id["004-spec-msg-001"].item("targets.delivery_time").check is not None


def test_ids_unique_and_full_ids(checklists: list[Checklist]) -> None:
    full_ids = [i.full_id for c in checklists for i in c.items]
    assert len(full_ids) == len(set(full_ids))
    c = checklists[0]
    assert c.item("db.rls.enabled").full_id == "000-messaging-production/db.rls.enabled"


def test_items_are_automated_or_manual(checklists: list[Checklist]) -> None:
    for c in checklists:
        for i in c.items:
            assert (i.check is None) == i.manual, i.full_id
            if i.check is not None:
                assert i.check.kind in probe_kinds()
            else:
                assert i.confirm
        assert c.automated, f"{c.id} automates nothing"


def test_every_probe_kind_declares_its_params() -> None:
    from msgops.probes import registry

    for kind, probe in registry().items():
        assert kind.split(".")[0] in {"db", "http", "realtime", "env", "load"}
        assert probe.params.model_config.get("extra") == "forbid", kind
        assert probe.params.model_json_schema()["type"] == "object", kind


# --- malformed files ----------------------------------------------------------------------------------

HEADER = "version: 1\nid: bad\ntitle: Bad\nitems:\n"
GOOD_ITEM = """  - id: db.ok
    text: fine
    line: 1
    severity: high
    check:
      kind: db.tables_exist
      tables: [messages]
"""

MALFORMED = {
    "yaml_syntax": (
        GOOD_ITEM + "  - id: db.broken\n    text: fine: oops  # <-\n    line: 2\n",
        "YAML syntax error: mapping values are not allowed",
    ),
    "yaml_unclosed": (
        GOOD_ITEM + "  - id: db.broken\n    text: [unclosed\n    line: 2  # <-\n",
        "while parsing a flow sequence started at line 13",
    ),
    "duplicate_id": (
        GOOD_ITEM + GOOD_ITEM.replace("  - id: db.ok", "  - id: db.ok  # <-"),
        "item 'db.ok': duplicate id (first at line 5)",
    ),
    "unknown_severity": (
        GOOD_ITEM.replace("severity: high", "severity: urgent  # <-").replace("db.ok", "db.rls"),
        "item 'db.rls': unknown severity 'urgent' (expected critical, high, medium, low, info)",
    ),
    "unknown_probe_kind": (
        GOOD_ITEM.replace("kind: db.tables_exist", "kind: db.tables_exists  # <-"),
        "item 'db.ok': unknown probe kind 'db.tables_exists'",
    ),
    "missing_param": (
        GOOD_ITEM.replace("      tables: [messages]\n", "").replace(
            "kind: db.tables_exist", "kind: db.tables_exist  # <-"
        ),
        "item 'db.ok': check 'db.tables_exist' is missing required param 'tables'",
    ),
    "unknown_param": (
        GOOD_ITEM.replace("tables: [messages]", "tables: [messages]\n      tabels: [x]  # <-"),
        "check 'db.tables_exist' has unknown param 'tabels'",
    ),
    "bad_choice": (
        GOOD_ITEM.replace("kind: db.tables_exist", "kind: db.rls_matrix").replace(
            "tables: [messages]", "scenario: everyone_can_read  # <-"
        ),
        "unknown scenario 'everyone_can_read'",
    ),
    "manual_without_confirm": (
        "  - id: legal.tos  # <-\n    text: ToS\n    line: 3\n    severity: medium\n    manual: true\n",
        "item 'legal.tos': manual item needs 'confirm'",
    ),
    "check_and_manual": (
        GOOD_ITEM.replace("  - id: db.ok", "  - id: db.ok  # <-")
        + "    manual: true\n    confirm: yes, really\n",
        "item 'db.ok': has both 'check' and 'manual: true'",
    ),
    "missing_field": (
        GOOD_ITEM.replace("    severity: high\n", "").replace("  - id: db.ok", "  - id: db.ok  # <-"),
        "item 'db.ok': missing required field 'severity'",
    ),
    "unknown_field": (
        GOOD_ITEM.replace("    line: 1\n", "    line: 1\n    severty: low  # <-\n"),
        "item 'db.ok': unknown field 'severty'",
    ),
    "duplicate_key": (
        GOOD_ITEM.replace("    line: 1\n", "    line: 1\n    line: 2  # <-\n"),
        "duplicate key 'line'",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_names_file_and_line(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body, expected = MALFORMED[case]
    text = HEADER + body
    line = next(n for n, s in enumerate(text.splitlines(), 1) if "# <-" in s)
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ChecklistError) as info:
        load_checklist(path)
    message = str(info.value)
    assert message.startswith(f"bad.yaml:{line}: "), message
    assert expected in message
    assert "\n" not in message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ChecklistError, match=r"list\.yaml:1: expected a mapping"):
        load_checklist(path)


def test_all_problems_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        HEADER
        + GOOD_ITEM.replace("high", "urgent")
        + GOOD_ITEM.replace("db.ok", "db.two").replace("line: 1", "line: 0"),
        encoding="utf-8",
    )
    with pytest.raises(ChecklistError) as info:
        load_checklist(path)
    assert len(info.value.problems) == 2
    assert "(and 1 more problem)" in str(info.value)


def test_duplicate_checklist_ids_across_files(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(HEADER + GOOD_ITEM, encoding="utf-8")
    with pytest.raises(ChecklistError, match="checklist id 'bad' is also used by"):
        load_checklists(tmp_path)


# --- the CLI ------------------------------------------------------------------------------------------


def test_coverage_table_prints_totals(checklists: list[Checklist]) -> None:
    result = CliRunner().invoke(checklists_app, ["coverage"])
    assert result.exit_code == 0, result.output
    total = sum(len(c.items) for c in checklists)
    automated = sum(len(c.automated) for c in checklists)
    total_row = next(line for line in result.output.splitlines() if "total" in line)
    assert str(total) in total_row and str(automated) in total_row and "%" in total_row
    for c in checklists:
        assert c.id in result.output


def test_coverage_json(checklists: list[Checklist]) -> None:
    result = CliRunner().invoke(checklists_app, ["coverage", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [r["id"] for r in data["checklists"]] == [c.id for c in checklists]
    assert data["total"]["items"] == sum(r["items"] for r in data["checklists"])
    assert data["total"]["checkbox"] == 334
    assert data["total"]["automated"] + data["total"]["manual"] == data["total"]["items"]
    assert 0 < data["total"]["automated_pct"] < 100


def test_list_and_show() -> None:
    runner = CliRunner()
    listed = runner.invoke(checklists_app, ["list"])
    assert listed.exit_code == 0 and "004-spec-msg-001" in listed.output
    item = runner.invoke(checklists_app, ["show", "000-messaging-production/db.rls.enabled"])
    assert (
        item.exit_code == 0
        and "RLS enabled on all 6 tables" in item.output
        and "db.rls_enabled" in item.output
    )
    whole = runner.invoke(checklists_app, ["show", "002-role-based-messaging"], env={"COLUMNS": "200"})
    assert whole.exit_code == 0 and "e2e.attendee_dm_dealer_blocked" in whole.output
    missing = runner.invoke(checklists_app, ["show", "000-messaging-production/no.such.item"])
    assert missing.exit_code == 3 and "no item 'no.such.item'" in missing.output


def test_cli_invalid_checklist_exits_3_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(HEADER + GOOD_ITEM.replace("severity: high", "severity: urgent"), encoding="utf-8")
    result = CliRunner().invoke(checklists_app, ["coverage", "--path", str(path)])
    assert result.exit_code == 3
    assert "unknown severity 'urgent'" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
