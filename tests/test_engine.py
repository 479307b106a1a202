"""The check engine: order, bounds, timeouts, retries, fail-closed errors, waivers, attestations,
the verdict and its exit codes, and the JSON/JUnit outputs."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import pytest

from msgops import probes
from msgops.checklist import Checklist
from msgops.config import Target
from msgops.engine import RunOptions, run_items
from msgops.errors import UserError
from msgops.output import json_report, junit
from msgops.probes import Context, Skip
from msgops.results import Outcome, Result
from msgops.verdict import GatePolicy, evaluate, parse_fail_on
from msgops.waivers import Attestation, Waiver, load_waivers


def make_checklist(*items: dict) -> Checklist:
    base = {"section": ["S"], "line": 1, "severity": "critical", "tags": []}
    return Checklist.model_validate({"version": 1, "id": "t", "title": "T",
                                     "items": [{**base, **item} for item in items]})


def auto(item_id: str, severity: str = "critical", **extra) -> dict:
    """An automated item whose check is its own (items with identical checks share one run)."""
    check = {"kind": "db.tables_exist", "tables": [item_id]}
    return {"id": item_id, "text": item_id, "severity": severity, "check": check, **extra}


@pytest.fixture
def fake_health(monkeypatch):
    """Replace the db.tables_exist probe's function with a scripted one (the engine is under test here)."""
    script: dict[str, object] = {}

    async def scripted(ctx: Context, **params) -> Outcome:
        behaviour = script["next"]
        return await behaviour()  # type: ignore[operator]

    monkeypatch.setitem(probes.registry(), "db.tables_exist",
                        probes.Probe("db.tables_exist", scripted, probes.ProbeDoc("scripted", "-", "-", "-")))
    return script


async def run(checklist: Checklist, **opts) -> list[Result]:
    ctx = Context(Target())
    try:
        return await run_items(checklist.items, ctx, RunOptions(**opts))
    finally:
        await ctx.close()


async def test_results_keep_checklist_order_whatever_finishes_first(fake_health):
    delays = iter([0.05, 0.0, 0.02])

    async def step() -> Outcome:
        delay = next(delays)
        await asyncio.sleep(delay)
        return Outcome("pass", f"slept {delay}")

    fake_health["next"] = step
    results = await run(make_checklist(auto("a"), auto("b"), auto("c")), concurrency=3)
    assert [r.id for r in results] == ["t/a", "t/b", "t/c"]
    assert [r.message for r in results] == ["slept 0.05", "slept 0.0", "slept 0.02"]


async def test_concurrency_is_bounded(fake_health):
    running, peak = 0, 0

    async def step() -> Outcome:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return Outcome("pass", "ok")

    fake_health["next"] = step
    await run(make_checklist(*[auto(f"i{n}") for n in range(12)]), concurrency=3)
    assert peak == 3


async def test_items_with_the_same_check_share_one_evaluation(fake_health):
    calls = 0

    async def step() -> Outcome:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return Outcome("fail", "table missing", {"missing": ["messages"]})

    fake_health["next"] = step
    same = {"check": {"kind": "db.tables_exist", "tables": ["messages"]}}
    a, b, c = await run(make_checklist(auto("a", **same), auto("b", **same), auto("c")),
                        waivers={"t/a": Waiver("t/a", "known", "cto", date(2030, 1, 1))})
    assert calls == 2  # a and b share one run; c has its own
    assert (a.status, b.status, c.status) == ("waived", "fail", "fail")
    assert b.evidence == {"missing": ["messages"]} and "waived_outcome" in a.evidence  # copies, not one dict


async def test_an_unreachable_endpoint_errors_its_family_without_running_it(fake_health):
    async def never() -> Outcome:
        raise AssertionError("the probe ran although its database is unreachable")

    fake_health["next"] = never
    [result] = await run(make_checklist(auto("a")), unreachable={"db": "cannot connect to PostgreSQL at h"})
    assert (result.status, result.message) == ("error", "cannot connect to PostgreSQL at h")


async def test_timeout_is_an_error_never_a_pass(fake_health):
    async def hang() -> Outcome:
        await asyncio.sleep(5)
        return Outcome("pass", "too late")

    fake_health["next"] = hang
    [result] = await run(make_checklist(auto("slow")), timeout_s=0.05)
    assert result.status == "error"
    assert "timed out after 0.05s" in result.message


async def test_exceptions_fail_closed_and_skip_names_the_reason(fake_health):
    async def broken() -> Outcome:
        raise ConnectionRefusedError("connection refused by 127.0.0.1:1")

    fake_health["next"] = broken
    [result] = await run(make_checklist(auto("x")))
    assert result.status == "error" and "ConnectionRefusedError" in result.message

    async def missing() -> Outcome:
        raise Skip("no API URL configured")

    fake_health["next"] = missing
    [result] = await run(make_checklist(auto("x")))
    assert (result.status, result.message) == ("skip", "no API URL configured")


async def test_errors_are_retried_but_failures_are_not(fake_health):
    calls = 0

    async def flaky() -> Outcome:
        nonlocal calls
        calls += 1
        return Outcome("error", "flaky") if calls < 3 else Outcome("pass", "ok")

    fake_health["next"] = flaky
    [result] = await run(make_checklist(auto("x")), retries=2)
    assert (result.status, result.attempts) == ("pass", 3)

    calls = 0

    async def failing() -> Outcome:
        nonlocal calls
        calls += 1
        return Outcome("fail", "bad")

    fake_health["next"] = failing
    [result] = await run(make_checklist(auto("x")), retries=2)
    assert (result.status, result.attempts, calls) == ("fail", 1, 1)


async def test_waivers_expire_and_attestations_count(fake_health):
    async def failing() -> Outcome:
        return Outcome("fail", "header missing")

    fake_health["next"] = failing
    checklist = make_checklist(auto("w1"), auto("w2"),
                               {"id": "m1", "text": "legal", "manual": True, "confirm": "Legal reviewed"},
                               {"id": "m2", "text": "legal 2", "manual": True, "confirm": "Legal reviewed"})
    waivers = {"t/w1": Waiver("t/w1", "fix in 1.1", "cto", date(2030, 1, 1)),
               "t/w2": Waiver("t/w2", "old", "cto", date(2020, 1, 1))}
    attestations = {"t/m1": Attestation("t/m1", "Ana", "Security Lead", "ok", date(2026, 11, 1))}
    w1, w2, m1, m2 = await run(checklist, waivers=waivers, attestations=attestations, today=date(2026, 11, 22))
    assert w1.status == "waived" and w1.waiver and w1.waiver["active"]
    assert w2.status == "fail" and "waiver expired 2020-01-01" in w2.message
    assert m1.status == "attested" and m1.attestation == {"by": "Ana", "role": "Security Lead", "note": "ok",
                                                          "date": "2026-11-01"}
    assert m2.status == "manual" and "Legal reviewed" in m2.message


def result(status: str, severity: str = "critical", optional: bool = False) -> Result:
    return Result(id=f"t/{status}-{severity}", checklist="t", section=["S"], text="x", severity=severity,
                  status=status, message=status, optional=optional)  # type: ignore[arg-type]


def test_verdict_exit_codes():
    policy = GatePolicy(parse_fail_on("critical,high"))
    assert evaluate([result("pass")], policy).exit_code == 0
    assert evaluate([result("pass")], policy).decision == "GO"
    no_go = evaluate([result("pass"), result("fail", "high")], policy)
    assert (no_go.decision, no_go.exit_code, no_go.blocking) == ("NO-GO", 1, ["t/fail-high"])
    assert (evaluate([result("error", "critical")], policy).decision,
            evaluate([result("error", "critical")], policy).exit_code) == ("INCOMPLETE", 2)
    assert evaluate([result("error", "critical"), result("fail")], policy).exit_code == 1
    low = evaluate([result("fail", "low")], policy)
    assert (low.decision, low.exit_code) == ("GO with exceptions", 0)
    assert evaluate([result("fail", optional=True)], policy).exit_code == 0
    assert evaluate([result("waived")], policy).decision == "GO with exceptions"
    strict = GatePolicy(parse_fail_on("all"), require_attestations=True)
    assert evaluate([result("manual", "low")], strict).exit_code == 1
    assert evaluate([result("pass"), result("manual", "low")], policy).exit_code == 0
    with pytest.raises(UserError, match="unknown severity urgent"):
        parse_fail_on("critical,urgent")


def test_json_and_junit_outputs(tmp_path: Path):
    results = [result("pass"), result("fail"), result("error", "high"), result("skip"), result("manual")]
    results[1].evidence = {"header": "x-frame-options", "observed": None}
    policy = GatePolicy()
    verdict = evaluate(results, policy)
    doc = json_report.build(results, [], {"api_url": "http://127.0.0.1:1"}, policy, verdict,
                            json_report.now(), json_report.now())
    path = tmp_path / "out" / "results.json"
    json_report.write(doc, path)
    back = json_report.read(path)
    assert back["version"] == 1 and back["verdict"]["decision"] == "NO-GO"
    assert [Result.from_dict(r).status for r in back["results"]] == ["pass", "fail", "error", "skip", "manual"]
    assert back["results"][1]["fingerprint"] == results[1].fingerprint

    tree = ET.fromstring(junit.render(results))
    suite = tree.find("testsuite")
    assert suite is not None and suite.get("name") == "t / S"
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("1", "1", "2")
    failure = tree.find(".//failure")
    assert failure is not None and "x-frame-options" in (failure.text or "")

    (tmp_path / "bad.json").write_text('{"schema": "something else"}')
    with pytest.raises(UserError, match="not a msgops check results file"):
        json_report.read(tmp_path / "bad.json")


def test_waiver_file_errors_name_the_problem(tmp_path: Path):
    path = tmp_path / "waivers.yaml"
    path.write_text("waivers:\n  - id: a/b\n    justification: x\n    approver: y\n    expires: someday\n")
    with pytest.raises(UserError, match=r"waivers\[0\]\.expires: must be a date"):
        load_waivers(path)
    path.write_text("waivers: [\n")
    with pytest.raises(UserError, match=r"waivers.yaml:\d+: invalid YAML"):
        load_waivers(path)

