"""GO means checked: a run that could not check what matters is never GO.

Each case is a mistake a new user makes (a forgotten API URL, a forgotten database, `--only` on an
item msgops cannot run, a load threshold nobody measured, a saturated load generator), run through
the real CLI against the real reference service, with the exit code the README documents.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from msgops import api
from msgops.config import Target
from msgops.loadresults import parse
from msgops.results import Result
from msgops.verdict import GatePolicy, evaluate
from tests.support import JWT_SECRET
from tests.test_cli import msgops

CHECKLIST = "000-messaging-production"


def run_json(tmp_path: Path, *args: str, env: dict[str, str]) -> tuple[int, dict]:
    proc = msgops("check", *args, "--json", "-", "-q", cwd=tmp_path, env=env, timeout=180)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_a_forgotten_api_url_is_incomplete_not_go(service, database_url, tmp_path: Path):
    code, doc = run_json(tmp_path,
                         env={"DATABASE_URL": database_url, "MSGOPS_JWT_SECRET": JWT_SECRET,
                              "MSGOPS_DATA_DIR": str(tmp_path / "none")})
    assert code == 2 and doc["verdict"]["decision"] == "INCOMPLETE"
    not_run = [r for r in doc["results"] if r["status"] == "not_run"]
    assert doc["policy"]["scope"] is None and doc["verdict"]["scope"] is None
    assert not_run and all("no API URL" in r["message"] for r in not_run if r["kind"].startswith("http."))
    assert doc["verdict"]["coverage"]["not_run"] == len(not_run)
    http = next(f for f in doc["preflight"]["families"] if f["name"] == "http")
    assert not http["ready"] and "MSGOPS_API_URL" in http["detail"]


def test_a_forgotten_database_is_incomplete_not_go(service, database_url, tmp_path: Path):
    # the deployment's DATABASE_URL is set (the env checks see it), but msgops is told to read another variable
    (tmp_path / "msgops.yaml").write_text("database_url_env: STAGING_DATABASE_URL\n")
    code, doc = run_json(tmp_path,
                         env={"MSGOPS_API_URL": service.url, "MSGOPS_JWT_SECRET": JWT_SECRET,
                              "DATABASE_URL": database_url,
                              "MSGOPS_DATA_DIR": str(tmp_path / "none")})
    assert code == 2 and doc["verdict"]["decision"] == "INCOMPLETE", doc["verdict"]["blockers"]
    db = [r for r in doc["results"] if (r["kind"] or "").startswith("db.")]
    assert db and {r["status"] for r in db} == {"not_run"}
    assert any(b["status"] == "not_run" and b["id"].startswith(CHECKLIST + "/db.") for b in doc["verdict"]["blockers"])


def test_only_an_item_msgops_cannot_run_is_not_go(service, tmp_path: Path):
    code, doc = run_json(tmp_path, "--only", f"{CHECKLIST}/db.rls.outsider_read",
                         env={"MSGOPS_API_URL": service.url, "MSGOPS_DATA_DIR": str(tmp_path / "none")})
    assert code == 2 and doc["verdict"]["decision"] == "INCOMPLETE"
    assert doc["verdict"]["coverage"]["evaluated"] == 0 and doc["results"][0]["status"] == "not_run"


def test_nothing_configured_at_all_is_a_configuration_error(tmp_path: Path):
    proc = msgops("check", cwd=tmp_path, env={"MSGOPS_DATA_DIR": str(tmp_path / "none")})
    assert proc.returncode == 3 and "nothing to check" in proc.stderr and "Traceback" not in proc.stderr


def test_a_scoped_run_is_go_and_says_it_is_scoped(service, database_url, tmp_path: Path):
    code, doc = run_json(tmp_path, "--tags", "rls", "-c", CHECKLIST,
                         env={"DATABASE_URL": database_url, "MSGOPS_DATA_DIR": str(tmp_path / "none")})
    assert (code, doc["verdict"]["decision"]) == (0, "GO"), doc["verdict"]
    assert doc["policy"]["scope"] == f"checklists {CHECKLIST}; tags rls"
    assert doc["verdict"]["scope"] == doc["policy"]["scope"]
    evaluated = doc["verdict"]["coverage"]["evaluated"]
    assert evaluated > 0 and all(r["status"] in ("pass", "skip", "not_run") for r in doc["results"])


def test_scope_in_msgops_yaml_scopes_the_run(service, database_url, tmp_path: Path):
    (tmp_path / "msgops.yaml").write_text("scope:\n  tags: [rls]\n  checklists: [000-messaging-production]\n"
                                          "  reason: this job checks the database only\n")
    code, doc = run_json(tmp_path, env={"DATABASE_URL": database_url, "MSGOPS_DATA_DIR": str(tmp_path / "none")})
    assert (code, doc["verdict"]["decision"]) == (0, "GO"), doc["verdict"]
    assert "this job checks the database only" in doc["policy"]["scope"]


CUSTOM = """\
version: 1
id: team-release
title: Our release checklist
items:
  - id: api.health
    text: "**Health** endpoint answers"
    severity: high
    check: {kind: http.health}
  - id: legal.review
    text: Legal reviewed the messaging terms
    severity: medium
    manual: true
    confirm: Legal signed the terms
"""


def test_a_custom_checklist_runs_through_check_and_appears_in_the_report(service, tmp_path: Path):
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "team.yaml").write_text(CUSTOM)
    env = {"MSGOPS_API_URL": service.url, "MSGOPS_JWT_SECRET": JWT_SECRET, "MSGOPS_DATA_DIR": str(tmp_path / "n")}
    code, doc = run_json(tmp_path, "-c", str(folder / "team.yaml"), env=env)
    assert (code, doc["verdict"]["decision"]) == (0, "GO"), doc["verdict"]
    assert [r["id"] for r in doc["results"]] == ["team-release/api.health", "team-release/legal.review"]
    (tmp_path / "results.json").write_text(json.dumps(doc))
    proc = msgops("report", "--results", str(tmp_path / "results.json"), "--out", str(tmp_path / "r.html"),
                  cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "r.html").read_text()
    assert "team-release/api.health" in html and "Our release checklist" in html


def test_a_custom_checklist_listed_in_msgops_yaml_joins_the_gate(service, database_url, tmp_path: Path):
    (tmp_path / "team.yaml").write_text(CUSTOM)
    (tmp_path / "msgops.yaml").write_text("checklists: [team.yaml]\n")
    env = {"MSGOPS_API_URL": service.url, "DATABASE_URL": database_url, "MSGOPS_JWT_SECRET": JWT_SECRET,
           "MSGOPS_DATA_DIR": str(tmp_path / "n")}
    proc = msgops("gate", "--profile", "none", "-c", "team-release", "--out", str(tmp_path / "out"), cwd=tmp_path,
                  env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    html = (tmp_path / "out" / "report.html").read_text()
    assert "team-release/api.health" in html
    assert json.loads((tmp_path / "out" / "results.json").read_text())["verdict"]["decision"] == "GO"


def _load(thresholds: list[dict], saturated: bool = False) -> dict:
    now = datetime.now(UTC).isoformat()
    return {"schema": "msgops.load-results", "version": 1, "profile": "smoke", "started_at": now, "finished_at": now,
            "duration_s": 10, "metrics": {"http.p95_ms": 40.0}, "thresholds": thresholds,
            "generator": {"cpu_percent_max": 99.0 if saturated else 20.0, "saturated": saturated}}


MET = {"metric": "http.p95_ms", "op": "<", "value": 200, "observed": 40.0, "passed": True}
UNMEASURED = {"metric": "delivery.p95_ms", "op": "<", "value": 2000, "observed": None, "passed": None}


def passing_check() -> Result:
    return Result(id="c/x", checklist="c", section=[], text="x", severity="critical", status="pass", message="ok",
                  kind="http.health")


@pytest.mark.parametrize(("thresholds", "saturated"), [([MET, UNMEASURED], False), ([MET], True)])
def test_an_unmeasured_threshold_or_a_saturated_generator_is_never_go(thresholds, saturated, tmp_path: Path):
    load = parse(_load(thresholds, saturated))
    verdict = evaluate([passing_check()], GatePolicy(), [load])
    assert (verdict.decision, verdict.exit_code) == ("INCOMPLETE", 2)
    assert verdict.not_evaluated and verdict.coverage.thresholds == len(thresholds)
    # the report, reading the same files, reaches the same verdict
    results = tmp_path / "results.json"
    target = Target(api_url=None, database_url=None)
    run = api.CheckRun(target, [], [passing_check()], evaluate([passing_check()]), GatePolicy(), api.Selection(),
                       api.preflight.Preflight({}), datetime.now(UTC), datetime.now(UTC))
    run.write_json(results)
    (tmp_path / "load-smoke.json").write_text(json.dumps(_load(thresholds, saturated)))
    proc = msgops("report", "--results", str(results), "--results", str(tmp_path / "load-smoke.json"),
                  "--out", str(tmp_path / "r.html"), cwd=tmp_path)
    assert proc.returncode == 0 and "INCOMPLETE" in proc.stdout, proc.stdout + proc.stderr


def test_a_met_threshold_with_a_passing_check_is_go() -> None:
    verdict = evaluate([passing_check()], GatePolicy(), [parse(_load([MET]))])
    assert verdict.decision == "GO" and verdict.headline.startswith("GO — 1 of 1 automated check ran")


def test_a_waiver_naming_no_item_warns(tmp_path: Path):
    (tmp_path / "waivers.yaml").write_text(
        "waivers:\n  - {id: 000-messaging-production/no.such.item, justification: x, approver: CTO, "
        "expires: 2099-01-01}\n")
    (tmp_path / ".gitignore").write_text(".env\n")
    proc = msgops("check", "--only", "000-messaging-production/env.dotenv_ignored", "--waivers",
                  str(tmp_path / "waivers.yaml"), cwd=tmp_path, env={"MSGOPS_DATA_DIR": str(tmp_path / "n")})
    assert "warning:" in proc.stdout and "no.such.item" in proc.stdout and "names no checklist item" in proc.stdout
    assert "Traceback" not in proc.stderr
