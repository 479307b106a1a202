"""The sign-off report: rendered from real results, opened in a real headless browser, signed,
and shown stale when the results change after signing."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from msgops import api
from msgops.cli_report import render_report
from msgops.config import Target
from msgops.errors import UserError
from msgops.output import json_report
from msgops.report import render, signoff
from tests.support import JWT_SECRET

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
PHONE = {"width": 390, "height": 844}
CHECKLIST = "000-messaging-production"


def check_results(api_url: str, database_url: str, path: Path) -> Path:
    target = Target(api_url=api_url, database_url=database_url, jwt_secret=JWT_SECRET, repo=ROOT)
    api.run_checks(target, api.Selection(checklists=(CHECKLIST,))).write_json(path)
    return path


def assert_matches_schema(name: str, document: dict) -> None:
    """The document validates against the shipped JSON Schema `name` (msgops/schemas)."""
    import jsonschema

    from msgops import schemas

    validator = jsonschema.Draft202012Validator(schemas.load(name))
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert problems == [], (name, problems[:5])


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Page:
    """What headless Chromium saw: console errors, non-file requests, visible text, layout."""

    errors: list[str]
    requests: list[str]
    text: str
    scroll_width: int  # the page's own width: wider than the viewport means horizontal scrolling
    attention_text: str
    attention_top: float  # where the attention panel starts, and where the checklists do
    checklists_top: float


def open_in_browser(report: Path, screenshot: Path, width: int = 1280, height: int = 1600) -> Page:
    """The report in headless Chromium with JavaScript off, as a reader without scripts sees it."""
    executable = chromium()
    if executable is None:
        if os.environ.get("MSGOPS_REQUIRE_BROWSER"):
            pytest.fail("chromium is required (MSGOPS_REQUIRE_BROWSER is set) but not installed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        page = browser.new_page(viewport={"width": width, "height": height}, java_script_enabled=False)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith("file:") else None)
        page.goto(report.as_uri())
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=False)
        attention, checklists = page.locator("#attention"), page.locator("#checklists")
        seen = Page(errors, requests, page.inner_text("body"),
                    page.evaluate("document.documentElement.scrollWidth"), attention.inner_text(),
                    (attention.bounding_box() or {"y": -1})["y"], (checklists.bounding_box() or {"y": -1})["y"])
        browser.close()
    return seen


@pytest.mark.slow
def test_report_from_reference_and_broken_service_in_a_browser(service, make_service, tmp_path: Path):
    good = check_results(service.url, service.database_url, tmp_path / "good" / "results.json")
    broken_service = make_service(rate_limits={})  # rate limiting turned off
    bad = check_results(broken_service.url, broken_service.database_url, tmp_path / "bad" / "results.json")

    good_model = render_report([good], tmp_path / "good" / "report.html")
    bad_model = render_report([bad], tmp_path / "bad" / "report.html", previous=[good],
                              markdown_out=tmp_path / "bad" / "summary.md", json_out=tmp_path / "bad" / "report.json")
    for name, path in (("check-results", good), ("check-results", bad), ("report", tmp_path / "bad" / "report.json")):
        assert_matches_schema(name, json.loads(path.read_text()))
    # The reference service passes every gated check that ran; without load results for the seed's
    # profiles the load items are honestly not run (INCOMPLETE), and nothing else keeps it from GO.
    good_verdict = good_model.verdict
    assert good_verdict.decision in ("GO", "GO with exceptions", "INCOMPLETE"), good_verdict.reason
    assert all(b.status == "not_run" and "msgops load" in b.reason for b in good_verdict.blockers), good_verdict
    assert bad_model.verdict.decision == "NO-GO"
    failing = [c.id for c in bad_model.new_failures]
    assert any("rate" in item for item in failing), failing
    rate_item = next(i for i in failing if "rate" in i)

    seen = open_in_browser(tmp_path / "bad" / "report.html", ARTIFACTS / "report-broken.png")
    assert seen.errors == [] and seen.requests == []
    assert "NO-GO" in seen.text and bad_model.verdict.coverage.sentence() in seen.text
    # The attention panel comes before the checklists and names the blocker with its severity and reason.
    assert 0 < seen.attention_top < seen.checklists_top
    blocker = next(b for b in bad_model.verdict.blockers if b.id == rate_item)
    assert rate_item in seen.attention_text and blocker.severity.upper() in seen.attention_text
    assert blocker.reason in seen.attention_text
    html = (tmp_path / "bad" / "report.html").read_text()
    assert f'id="{rate_item}"' in html and "Evidence" in html and "429" in html
    assert "rate" in (tmp_path / "bad" / "summary.md").read_text().lower()

    # On a phone the page is as wide as the screen: long ids wrap, wide tables scroll inside their box.
    seen = open_in_browser(tmp_path / "bad" / "report.html", ARTIFACTS / "report-broken-phone.png", **PHONE)
    assert seen.scroll_width <= PHONE["width"], f"the page scrolls sideways: {seen.scroll_width} px wide"
    assert 0 < seen.attention_top < seen.checklists_top and rate_item in seen.attention_text

    seen = open_in_browser(tmp_path / "good" / "report.html", ARTIFACTS / "report-reference.png")
    assert seen.errors == [] and seen.requests == [] and good_verdict.decision in seen.text
    assert all(b.id in seen.attention_text for b in good_verdict.blockers)
    seen = open_in_browser(tmp_path / "good" / "report.html", ARTIFACTS / "report-reference-phone.png", **PHONE)
    assert seen.scroll_width <= PHONE["width"], f"the page scrolls sideways: {seen.scroll_width} px wide"


def synthetic_results(path: Path, status: str = "pass") -> Path:
    from msgops.results import Result
    from msgops.verdict import GatePolicy, evaluate

    results = [Result(id="c/db.rls", checklist="c", section=["Database", "RLS"], text="RLS enabled on all 6 tables",
                      severity="critical", status=status, message="6 of 6 tables", kind="db.rls_enabled",  # type: ignore[arg-type]
                      evidence={"tables": ["messages"]})]
    policy = GatePolicy()
    doc = json_report.build(results, [], {"api_url": "http://127.0.0.1:8000"}, policy, evaluate(results, policy),
                            json_report.now(), json_report.now())
    json_report.write(doc, path)
    return path


def test_signatures_go_stale_when_results_change(tmp_path: Path):
    results = synthetic_results(tmp_path / "results.json")
    report = tmp_path / "report.html"
    render_report([results], report)
    meta = render.read_meta(report)
    signature = signoff.append(signoff.ledger_path(report), "security lead", "Ana Silva", "go", "ok",
                               meta["content_hash"])
    assert signature.role == "Security Lead"
    render_report([results], report)
    assert "stale" not in report.read_text().split('id="signoff"')[1].split("</section>")[0].replace(
        "a signature over results that have since changed is shown as stale", "")

    # Tamper: the results change after signing.
    doc = json.loads(results.read_text())
    doc["results"][0]["status"] = "fail"
    results.write_text(json.dumps(doc))
    render_report([results], report)
    assert "stale: results changed since signing" in report.read_text()

    # Signing a report whose results changed since it was rendered is refused.
    doc["results"][0]["message"] = "changed again"
    results.write_text(json.dumps(doc))
    from typer.testing import CliRunner

    from msgops.cli import app

    outcome = CliRunner().invoke(app, ["signoff", "--report", str(report), "--role", "QA Lead", "--name", "Bo",
                                       "--decision", "go"])
    assert isinstance(outcome.exception, UserError) and "changed since it was rendered" in str(outcome.exception)

    # A ledger edited by hand is detected.
    ledger = signoff.ledger_path(report)
    entries = json.loads(ledger.read_text())
    entries[0]["decision"] = "no-go"
    ledger.write_text(json.dumps(entries))
    with pytest.raises(UserError, match="edited by hand"):
        signoff.read(ledger)


def test_signoff_command_re_renders_with_the_signature(tmp_path: Path):
    results = synthetic_results(tmp_path / "results.json")
    report = tmp_path / "report.html"
    render_report([results], report)
    from typer.testing import CliRunner

    from msgops.cli import app

    outcome = CliRunner().invoke(app, ["signoff", "--report", str(report), "--role", "Backend Lead", "--name",
                                       "Kim Lee", "--decision", "go", "--note", "API tested"])
    assert outcome.exit_code == 0, outcome.output
    html = report.read_text()
    assert "Kim Lee" in html and "API tested" in html
    with pytest.raises(UserError, match="not a sign-off role"):
        signoff.append(signoff.ledger_path(report), "Intern", "X", "go", "", "h")


def test_changes_since_previous_run(tmp_path: Path):
    before = synthetic_results(tmp_path / "before.json", "pass")
    after = synthetic_results(tmp_path / "after.json", "fail")
    model = render_report([after], tmp_path / "r.html", previous=[before])
    assert [c.id for c in model.new_failures] == ["c/db.rls"] and model.verdict.decision == "NO-GO"
    model = render_report([before], tmp_path / "r2.html", previous=[after])
    assert [c.id for c in model.fixed] == ["c/db.rls"]
    html = (tmp_path / "r.html").read_text()
    assert "New failures" in html and "<code>" not in html.split("RLS enabled")[0][-50:]


def test_report_input_errors_are_one_line(tmp_path: Path):
    with pytest.raises(UserError, match="not found"):
        render_report([tmp_path / "missing.json"], tmp_path / "r.html")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(UserError, match=r"x.json:1: not valid JSON"):
        render_report([tmp_path / "x.json"], tmp_path / "r.html")
