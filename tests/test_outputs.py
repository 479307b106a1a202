"""What a lead and CI read: the terminal in an 80-column log, GitHub annotations, the pull-request summary,
the HTML report's attention panel and Markdown, the published JSON Schemas and the shipped workflow."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from msgops import schemas
from msgops.cli_report import render_report
from msgops.loadresults import SCHEMA as LOAD_SCHEMA
from msgops.loadresults import parse
from msgops.output import github, json_report, terminal
from msgops.report import inline_md
from msgops.results import STATUSES, Result
from msgops.verdict import GatePolicy, Verdict, evaluate

ROOT = Path(__file__).resolve().parents[1]
LONG_SECTION = ["Launch Checklist (Final Steps) with a very long heading", "Post-launch (first 24 hours) monitoring"]


def result(item: str, status: str, severity: str = "critical", *, checklist: str = "000-messaging-production",
           text: str = "RLS enabled on **all** tables (`messages`)", message: str = "6 of 6 tables",
           section: list[str] | None = None, **extra: Any) -> Result:
    return Result(id=f"{checklist}/{item}", checklist=checklist, section=section or ["Database", "RLS"], text=text,
                  severity=severity, status=status, message=message,  # type: ignore[arg-type]
                  kind=None if status == "manual" else "db.rls_enabled", **extra)


def every_outcome() -> list[Result]:
    """One item of each outcome, with the long names, Markdown and characters outputs must cope with."""
    return [
        result("db.rls", "pass"),
        result("db.policies", "fail", message="table messages has no policy for `SELECT` <anon>",
               evidence={"tables": ["messages"], "sql": "select * from pg_policies where tablename = 'messages'"}),
        result("api.health", "error", "high", message="GET /health: connection refused (127.0.0.1:9)"),
        result("env.supabase_url", "skip", "high", text="`SUPABASE_URL` set correctly",
               message="not configured for this target (it uses no Supabase)"),
        result("env.secrets_not_in_git", "not_run", "critical", section=LONG_SECTION,
               text="Secrets stored securely (not in git, use environment variables or secrets manager)",
               message="/srv is not a git repository: set `repo:` in msgops.yaml to the project's repository"),
        result("ops.error_tracking", "manual", "high", text="**Security Lead:** Security audit passed",
               message="needs a person", confirm="A security audit report is signed off."),
        result("ops.runbook", "attested", "medium", message="attested by Ana (QA Lead)",
               attestation={"by": "Ana", "role": "QA Lead", "note": "seen", "date": "2026-11-30"}),
        result("ratelimit.login", "waived", "high", message="waived: accepted for the beta",
               waiver={"justification": "beta, 50 users, 100% trusted: ok", "approver": "Kim",
                       "expires": "2027-01-01"}),
        result("frontend.bundle", "fail", "low", text="Bundle size optimized (<500KB for messaging module)",
               message="bundle is 720 KB"),
    ]


def load_document(observed_p95: float | None = 48.0, saturated: bool = False) -> dict[str, Any]:
    start = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    return {
        "schema": LOAD_SCHEMA, "version": 1, "profile": "smoke", "target": {"api_url": "http://127.0.0.1:8000"},
        "started_at": start.isoformat(), "finished_at": (start + timedelta(seconds=10)).isoformat(),
        "duration_s": 10.0,
        "metrics": {"http.p95_ms": observed_p95, "http.error_rate": 0.0, "delivery.p95_ms": None},
        "thresholds": [
            {"metric": "http.p95_ms", "op": "<", "value": 100, "observed": observed_p95,
             "passed": None if observed_p95 is None else observed_p95 < 100},
            {"metric": "http.error_rate", "op": "<", "value": 0.01, "observed": 0.0, "passed": True},
            {"metric": "delivery.p95_ms", "op": "<", "value": 2000, "observed": None, "passed": None},
        ],
        "generator": {"cpu_percent_max": 97.0 if saturated else 40.0, "saturated": saturated},
        "endpoints": {"GET /conversations": {"requests": 20, "failures": 0, "p95_ms": 40.0}},
        "timeseries": [{"t_s": t, "rps": 10 + t, "p95_ms": 30.0 + 3 * t, "error_rate": 0.0, "users": 5}
                       for t in range(10)],
    }


def write_checks(path: Path, results: list[Result], scope: str | None = None) -> tuple[Path, Verdict]:
    policy = GatePolicy()
    verdict = evaluate(results, policy, scope=scope)
    document = json_report.build(results, [], {"api_url": "http://127.0.0.1:8000"}, policy, verdict,
                                 json_report.now(), json_report.now())
    json_report.write(document, path)
    return path, verdict


# --- terminal ---------------------------------------------------------------------------------------------


def render_terminal(results: list[Result], verdict: Verdict, **kwargs: Any) -> list[str]:
    console = Console(width=80, record=True, force_terminal=False, color_system=None)
    terminal.print_run(console, results, verdict, **kwargs)
    return [line.rstrip() for line in console.export_text().splitlines()]


def test_terminal_fits_an_80_column_log_and_says_why():
    results = every_outcome() + [result(f"extra.{i}", "not_run", "high", message="no API URL: set MSGOPS_API_URL",
                                        section=["Backend", f"Section number {i} with a long descriptive name"])
                                 for i in range(14)]
    verdict = evaluate(results)
    lines = render_terminal(results, verdict, max_blockers=5)
    too_wide = [line for line in lines if len(line) > 80]
    assert too_wide == [], too_wide
    text = "\n".join(lines)
    head = next(line for line in lines if line.startswith("checklist / section"))
    assert all(h in head for h in ("pass", "fail", "err", "skip", "n/run", "man", "att", "wvd"))
    # every section row is one line: the long heading is cut, not wrapped
    assert sum("Launch Checklist (Final Steps)" in line for line in lines) == 1
    total = next(line for line in lines if line.startswith("total")).split()
    assert total[1:] == [str(sum(r.status == s for r in results)) for s in STATUSES]
    assert "NOT RUN" in text and "14 items were not run" in text and "no API URL: set MSGOPS_API_URL" in text
    assert "**" not in text  # seed Markdown shown as plain text
    # the verdict: headline, reason, the first blockers and how many more
    assert verdict.decision == "NO-GO"
    flat = " ".join(text.split())
    assert f"NO-GO {verdict.coverage.sentence()}" in flat
    assert "gated check(s) failed" in flat and "(exit 1)" in flat
    assert "Keeping this from GO (1):" in text and "000-messaging-production/db.policies" in text
    assert "Gated but not evaluated (16):" in text and "… and 11 more" in text


def test_terminal_scoped_go_says_it_is_scoped():
    results = [result("db.rls", "pass"), result("env.secrets_not_in_git", "not_run")]
    verdict = evaluate(results, scope="--tags db")
    text = " ".join(" ".join(render_terminal(results, verdict)).split())
    assert verdict.decision == "GO"
    assert "(scoped: --tags db)" in text and "Outside the run's scope, not evaluated (1):" in text


# --- GitHub annotations -------------------------------------------------------------------------------------


def test_github_escaping_follows_the_runner():
    assert github.escape_data("50%\r\nnext") == "50%25%0D%0Anext"
    assert github.escape_property("a: b, c%\n") == "a%3A b%2C c%25%0A"
    assert github.command("error", "x:y,z", title="t:1,2") == "::error title=t%3A1%2C2::x:y,z"


def test_github_annotations_for_a_run():
    results = every_outcome()
    load = parse(load_document(observed_p95=None))
    verdict = evaluate(results, loads=[load])
    lines = github.annotations(results, verdict).splitlines()
    assert all(re.fullmatch(r"::(error|warning|notice)( title=[^:]+)?::.*", line) for line in lines), lines

    def of(kind: str) -> list[str]:
        return [line for line in lines if line.startswith(f"::{kind} ")]

    errors, warnings, notices = of("error"), of("warning"), of("notice")
    assert any("db.policies" in e and "fail [critical]" in e for e in errors)
    assert any("api.health" in e for e in errors)
    assert any("env.secrets_not_in_git" in e and "not run [critical]" in e for e in errors)
    assert any("load/smoke/http.p95_ms" in e and "not measured" in e for e in errors)
    assert any("frontend.bundle" in w for w in warnings)  # below the gate
    assert any("ratelimit.login" in w and "waived" in w and "100%25 trusted" in w for w in warnings)
    assert not any("env.supabase_url" in line or "db.rls " in line for line in lines)  # skip, pass: nothing
    assert len(notices) == 1 and lines[-1] == notices[0]
    assert verdict.decision in notices[0] and "automated checks ran" in notices[0]
    assert "%0A" in errors[0]  # the item text and the message on two lines


def test_github_scoped_not_run_is_a_warning():
    results = [result("db.rls", "pass"), result("env.secrets_not_in_git", "not_run")]
    lines = github.annotations(results, evaluate(results, scope="--only db.rls")).splitlines()
    assert lines[0].startswith("::warning title=not run (scoped run) [critical]")


# --- the report: summary.md and HTML ------------------------------------------------------------------------


def test_inline_markdown_is_rendered_and_safe():
    html = inline_md.to_html("**Uptime:** >99.9% `a<b>` <script>x</script> [doc](https://x.y/?a=1&b) 5 * 3")
    assert html == ('<strong>Uptime:</strong> &gt;99.9% <code>a&lt;b&gt;</code> &lt;script&gt;x&lt;/script&gt; '
                    'doc <span class="url">(https://x.y/?a=1&amp;b)</span> 5 * 3')
    assert inline_md.to_plain("**Uptime:** `x`") == "Uptime: x"
    assert inline_md.md_text("`https://<project>.supabase.co` <b> < 2s | x", table=True) == (
        "`https://<project>.supabase.co` &lt;b> < 2s \\| x")
    assert inline_md.md_text("ping @nestjs/bull, not `@x`") == "ping @&#8203;nestjs/bull, not `@x`"
    assert inline_md.md_code("a ``b`` c") == "```a ``b`` c```"
    assert inline_md.md_code("`x`") == "`` `x` ``"


def test_summary_markdown_escapes_only_what_markdown_needs(tmp_path: Path):
    checks, _ = write_checks(tmp_path / "results.json", every_outcome())
    load = tmp_path / "load.json"
    load.write_text(json.dumps(load_document()))
    model = render_report([checks, load], tmp_path / "report.html", markdown_out=tmp_path / "summary.md")
    md = (tmp_path / "summary.md").read_text()
    assert "&lt;" not in "".join(re.findall(r"`[^`]*`", md))  # nothing escaped inside code spans
    assert "`http.p95_ms < 100`" in md and "`SELECT`" in md
    assert "&amp;" not in md and "&#39;" not in md
    assert f"## msgops: **{model.verdict.decision}**" in md and model.verdict.coverage.sentence() in md
    assert "**Keeping this from GO**" in md and "`000-messaging-production/db.policies`" in md
    assert "**Gated but not evaluated** (" in md and "`load/smoke/delivery.p95_ms`" in md
    assert "| not run |" in md
    assert "**Accepted exceptions**" in md and "`000-messaging-production/frontend.bundle`" in md


def test_html_attention_panel_comes_first_and_markdown_renders(tmp_path: Path):
    checks, _ = write_checks(tmp_path / "results.json", every_outcome())
    load = tmp_path / "load.json"
    load.write_text(json.dumps(load_document(observed_p95=120.0)))
    model = render_report([checks, load], tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert model.verdict.decision == "NO-GO"
    order = [html.index(marker) for marker in ('id="verdict"', 'id="attention"', 'id="summary"', 'id="checklists"')]
    assert order == sorted(order)
    assert model.verdict.coverage.sentence() in html
    attention = html.split('id="attention"')[1].split("</section>")[0]
    for item in ("db.policies", "load/smoke/http.p95_ms"):  # blockers: a failed item, a missed threshold
        assert item in attention.split('id="not-evaluated"')[0]
    for item in ("api.health", "env.secrets_not_in_git", "load/smoke/delivery.p95_ms"):  # gated, not evaluated
        assert item in attention.split('id="not-evaluated"')[1]
    assert "ops.error_tracking" in attention and "Security audit passed" in attention  # high manual pending
    accepted = attention.split('id="accepted"')[1]  # exceptions: waived, and failed below the gate
    assert "ratelimit.login" in accepted and "waived by Kim until 2027-01-01" in accepted
    assert "frontend.bundle" in accepted and "(below the gate)" in accepted
    assert "**" not in html.split("<style>")[0] + html.split("</style>")[1]
    assert "<strong>Security Lead:</strong>" in html and "<code>SUPABASE_URL</code>" in html
    for status in STATUSES:
        assert f'class="pill {status}' in html and f'id="count-{status}"' in html
    assert re.search(r'<details class="manual"><summary>1 manual item\(s\) pending', html)
    assert 'class="limit"' in html and "threshold: http.p95_ms &lt; 100" in html  # the line on the chart
    assert "<script" not in html.replace('<script type="application/json" id="msgops-report-meta">', "")


def test_html_scoped_run_states_its_scope(tmp_path: Path):
    results = [result("db.rls", "pass"), result("env.secrets_not_in_git", "not_run")]
    checks, verdict = write_checks(tmp_path / "results.json", results, scope="--tags db")
    model = render_report([checks], tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert verdict.decision == model.verdict.decision == "GO" and model.verdict.scope == "--tags db"
    assert 'id="scope"' in html and "Scoped run: --tags db" in html
    assert "The run was scoped on purpose (--tags db)" in html


# --- schemas ------------------------------------------------------------------------------------------------


def validator(name: str) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = schemas.load(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_shipped_schemas_are_the_generated_ones():
    built = schemas.build()
    assert set(built) == set(schemas.NAMES)
    for name, schema in built.items():
        shipped = (Path(schemas.__file__).parent / schemas.filename(name)).read_text()
        assert shipped == schemas.dump(schema), f"run `python -m msgops.schemas` to refresh {name}"
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_documents_written_by_msgops_match_their_schemas(tmp_path: Path):
    checks, _ = write_checks(tmp_path / "results.json", every_outcome(), scope="--tags db")
    load = tmp_path / "load.json"
    load.write_text(parse(load_document(saturated=True)).to_json())
    render_report([checks, load], tmp_path / "report.html", json_out=tmp_path / "report.json")
    for name, path in (("check-results", checks), ("load-results", load), ("report", tmp_path / "report.json")):
        document = json.loads(path.read_text())
        problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator(name).iter_errors(document)]
        assert problems == [], (name, problems)
    document = json.loads(checks.read_text())
    assert document["policy"]["scope"] == "--tags db" and document["verdict"]["headline"].startswith("NO-GO — ")
    document["results"][1]["status"] = "broken"  # the schema does reject what is wrong
    assert list(validator("check-results").iter_errors(document))


# --- the shipped GitHub Actions workflow --------------------------------------------------------------------


def test_workflow_downloads_the_previous_runs_results():
    workflow = yaml.safe_load((ROOT / "docs" / "ci" / "github-actions.yml").read_text())
    steps = workflow["jobs"]["gate"]["steps"]
    find = next(s for s in steps if "gh run list" in s.get("run", ""))
    assert "--status success" in find["run"] and "--branch" in find["run"] and "GH_TOKEN" in find["env"]
    download = next(s for s in steps if str(s.get("uses", "")).startswith("actions/download-artifact@v4"))
    assert download["with"]["run-id"] == "${{ steps.previous.outputs.run_id }}"
    assert download["with"]["github-token"] == "${{ github.token }}"
    assert "steps.previous.outputs.run_id" in download["if"]
    assert workflow["permissions"]["actions"] == "read"
    gate = next(s for s in steps if "msgops gate" in s.get("run", ""))
    assert "--output-format github" in gate["run"] and "--previous msgops-previous" in gate["run"]
    assert "push" in workflow[True]  # `on:` parses as True: base-branch runs make the baseline


def test_junit_never_shows_an_item_that_did_not_run_as_passed():
    import xml.etree.ElementTree as ET

    from msgops.output import junit

    root = ET.fromstring(junit.render(every_outcome()))
    cases = {case.get("name", "").split(":")[0]: case for case in root.iter("testcase")}
    skipped = cases["env.secrets_not_in_git"].find("skipped")
    assert skipped is not None and skipped.get("type") == "not_run" and skipped.get("message", "").startswith(
        "not run: /srv is not a git repository")
    assert cases["db.policies"].find("failure") is not None and cases["api.health"].find("error") is not None
    suite = next(s for s in root.iter("testsuite") if "Post-launch" in s.get("name", ""))
    assert suite.get("skipped") == "1"
