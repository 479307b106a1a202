"""`msgops report`, `msgops signoff` and `msgops gate`."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from msgops import config, target
from msgops.errors import UserError
from msgops.output import json_report, junit
from msgops.report import inputs as report_inputs
from msgops.report import model as report_model
from msgops.report import signoff
from msgops.results import Result

console = Console()
DEFAULT_OUT = Path("msgops-out")


def render_report(results: list[Path], out: Path, previous: list[Path] | None = None,
                  markdown_out: Path | None = None, json_out: Path | None = None,
                  junit_out: Path | None = None) -> report_model.ReportModel:
    from msgops.report import render  # jinja2 and the charts load only when a report is written

    inputs = report_inputs.read(results)
    prior = report_inputs.read(previous) if previous else None
    model = report_model.build(inputs, prior)
    signatures = signoff.read(signoff.ledger_path(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = render.meta(out, inputs.paths, prior.paths if prior else [], inputs.content_hash)
    out.write_text(render.html(model, signatures, meta))
    if markdown_out:
        markdown_out.parent.mkdir(parents=True, exist_ok=True)
        markdown_out.write_text(render.markdown(model, signatures))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(_summary_json(model, signatures), indent=2, default=str) + "\n")
    if junit_out and inputs.checks:
        junit.write([Result.from_dict(r) for r in inputs.checks["results"]], junit_out)
    return model


def _summary_json(model: report_model.ReportModel, signatures: list[signoff.Signature]) -> dict[str, Any]:
    return {
        "schema": "msgops.report", "version": 1, "verdict": asdict(model.verdict),
        "content_hash": model.content_hash, "counts": model.counts, "target": model.target, "git_sha": model.git_sha,
        "loads": [{k: v for k, v in load.items() if k != "charts"} for load in model.loads],
        "new_failures": [asdict(c) for c in model.new_failures], "fixed": [asdict(c) for c in model.fixed],
        "regressions": [asdict(r) for r in model.regressions],
        "signatures": [dict(asdict(s), stale=s.stale(model.content_hash)) for s in signatures],
    }


def report(
    results: Annotated[list[Path] | None, typer.Option("--results", "-r", help="Check or load results: files or "
                                                       "directories (repeat) \\[default: msgops-out/].",
                                                       show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML report to write.")] = DEFAULT_OUT / "report.html",
    previous: Annotated[list[Path] | None, typer.Option(help="Results of the previous run, to show what changed.",
                                                        show_default=False)] = None,
    markdown: Annotated[Path | None, typer.Option(help="Also write a Markdown summary (for a pull-request comment).",
                                                  show_default=False)] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report summary as JSON.",
                                                  show_default=False)] = None,
    junit_out: Annotated[Path | None, typer.Option("--junit", help="Also write JUnit XML.", show_default=False)] = None,
) -> None:
    """Render the self-contained HTML sign-off report from check and load results.

    The report opens in any browser with no network and no JavaScript. Leads sign it with
    `msgops signoff`; a signature over results that later change is shown as stale.
    """
    model = render_report(results or [DEFAULT_OUT], out, previous, markdown, json_out, junit_out)
    console.print(f"[bold]{model.verdict.decision}[/]: {model.verdict.reason}")
    console.print(f"report: {out}" + (f", summary: {markdown}" if markdown else ""))


def signoff_command(
    report_path: Annotated[Path, typer.Option("--report", help="The HTML report being signed.")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(report_model.SIGNOFF_ROLES)}.")],
    name: Annotated[str, typer.Option(help="Your name.")],
    decision: Annotated[str, typer.Option(help="go or no-go.")],
    note: Annotated[str, typer.Option(help="Why, or under which conditions.")] = "",
) -> None:
    """Sign a report: append to its sign-off ledger, bound to the results' content hash, and re-render it."""
    from msgops.report import render

    meta = render.read_meta(report_path)
    inputs = report_inputs.read(meta["inputs"])
    if inputs.content_hash != meta["content_hash"]:
        raise UserError(f"the results behind {report_path} changed since it was rendered; "
                        f"re-render with `msgops report --out {report_path}` and review it before signing")
    signature = signoff.append(signoff.ledger_path(report_path), role, name, decision.lower(), note,
                               inputs.content_hash)
    render_report(meta["inputs"], report_path, meta["previous"] or None)
    console.print(f"signed by {signature.name} ({signature.role}): {signature.decision.upper()} "
                  f"over results {signature.content_hash[:12]}; ledger {signoff.ledger_path(report_path)}")


def gate(
    target_file: Annotated[Path | None, typer.Option("--target", "-t", help="Target file; with none (and no "
                                                     "MSGOPS_API_URL/DATABASE_URL, no local serve) the reference "
                                                     "service is started on the embedded database.",
                                                     show_default=False)] = None,
    api_url: Annotated[str | None, typer.Option("--api-url", show_default=False, help="API base URL.")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", show_default=False,
                                                     help="PostgreSQL URL.")] = None,
    profile: Annotated[str, typer.Option(help="Load profile to run, or 'none' to skip load.")] = "smoke",
    out: Annotated[Path, typer.Option(help="Directory for report.html, results.json, junit.xml, load.json, "
                                      "summary.md.")] = DEFAULT_OUT,
    previous: Annotated[Path | None, typer.Option(help="Previous run's output directory, for what changed.",
                                                  show_default=False)] = None,
    fail_on: Annotated[str, typer.Option(help="Severities whose failures fail the gate.")] = "critical,high",
    require_attestations: Annotated[bool, typer.Option(help="Pending manual items of gated severities fail.")]
    = False,
    allow_exceptions: Annotated[bool, typer.Option(help="Exit 0 for 'GO with exceptions' too (waived items, "
                                                   "failures below the gate).")] = False,
    waivers: Annotated[Path | None, typer.Option(help="Waivers YAML.", show_default=False)] = None,
    attestations: Annotated[Path | None, typer.Option(help="Attestations YAML.", show_default=False)] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory for the embedded database.",
                                                  show_default=False)] = None,
) -> None:
    """Everything, for CI: load test, every checklist, the report; exit 0 only when the verdict is GO.

    Exit codes: 0 GO; 1 NO-GO (a gated check or load threshold failed, or GO with exceptions without
    --allow-exceptions); 2 a gated check could not be evaluated; 3 bad configuration.
    """
    import time

    from msgops.cli_check import execute

    started = time.monotonic()
    resolved = config.resolve(target_file, api_url=api_url, database_url=database_url, data_dir=data_dir)
    local = None
    if not resolved.api_url and not resolved.database_url:
        from msgops import local_service

        console.print("[dim]no target configured: starting the reference service on the embedded database[/]")
        local = local_service.start(target.data_dir(data_dir))
        resolved = replace(resolved, api_url=local.api_url, database_url=local.database_url,
                           jwt_secret=local.jwt_secret, source="reference service started by msgops gate")
    out.mkdir(parents=True, exist_ok=True)
    try:
        load_path = out / "load.json"
        if profile != "none":
            _run_load(resolved, profile, load_path)
        resolved = replace(resolved, load_results=load_path if load_path.exists() else resolved.load_results)
        document, _ = execute(None, None, None, None, None, None, fail_on, require_attestations, waivers,
                              attestations, None, None, None, target_override=resolved)
    finally:
        if local is not None:
            local.stop()
    json_report.write(document, out / "results.json")
    junit.write([Result.from_dict(r) for r in document["results"]], out / "junit.xml")
    inputs = [out / "results.json"] + ([load_path] if load_path.exists() else [])
    model = render_report(inputs, out / "report.html", [previous] if previous else None, out / "summary.md",
                          out / "report.json")
    verdict = model.verdict
    code = verdict.exit_code
    if verdict.decision == "GO with exceptions" and not allow_exceptions:
        code = 1
    console.print(f"\n[bold]gate: {verdict.decision}[/] — {verdict.reason}")
    console.print(f"report: {out / 'report.html'} · results: {out / 'results.json'} · junit: {out / 'junit.xml'}"
                  f" · {time.monotonic() - started:.1f}s")
    raise typer.Exit(code)


def _run_load(resolved: config.Target, profile: str, path: Path) -> None:
    """Run the load profile; its verdict joins the report's through the results file."""
    from msgops.load.run import LoadOptions
    from msgops.load.run import execute as run_load

    run_load(LoadOptions(profile=profile, json_out=path, target=resolved, show_progress=True), console)
