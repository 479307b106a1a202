"""`msgops report`, `msgops signoff` and `msgops gate`."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from msgops import config, target
from msgops.checklist import Item
from msgops.cli_check import (
    ApiUrl,
    Attestations,
    Checklists,
    DatabaseUrl,
    FailOn,
    Only,
    OutputFormat,
    Quiet,
    RequireAttestations,
    Tags,
    TargetFile,
    Verbose,
    Waivers,
)
from msgops.errors import UserError
from msgops.output import json_report, junit
from msgops.report import inputs as report_inputs
from msgops.report import model as report_model
from msgops.report import signoff
from msgops.results import Result
from msgops.verdict import GatePolicy

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
        "schema": "msgops.report", "version": 1, "verdict": json_report.verdict_dict(model.verdict),
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
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Render the self-contained HTML sign-off report from check and load
    results, with the one verdict over all of them.

    The report opens in any browser with no network and no JavaScript.
    Leads sign it with `msgops signoff`; a signature over results that
    later change is shown as stale. Exit 0 when the report was written.

    Examples:

      msgops report                                 # msgops-out/ -> msgops-out/report.html

      msgops report -r results.json -r load.json --out signoff.html

      msgops report --previous last-run/ --markdown summary.md
    """
    model = render_report(results or [DEFAULT_OUT], out, previous, markdown, json_out, junit_out)
    if not quiet:
        console.print(f"[bold]{model.verdict.headline}[/]", highlight=False)
        if model.verdict.decision != "GO":
            console.print(f"  {model.verdict.reason}", highlight=False)
    if verbose:
        for blocker in model.verdict.blockers + model.verdict.not_evaluated:
            console.print(f"  - {blocker.line()}", highlight=False)
    console.print(f"report: {out}" + (f", summary: {markdown}" if markdown else ""), highlight=False)


def signoff_command(
    report_path: Annotated[Path, typer.Option("--report", help="The HTML report being signed.")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(report_model.SIGNOFF_ROLES)}.")],
    name: Annotated[str, typer.Option(help="Your name.")],
    decision: Annotated[str, typer.Option(help="go or no-go.")],
    note: Annotated[str, typer.Option(help="Why, or under which conditions.")] = "",
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Sign a report: append to its sign-off ledger, bound to the results'
    content hash, and re-render it.

    Examples:

      msgops signoff --report msgops-out/report.html --role "QA Lead" --name Dana --decision go

      msgops signoff --report report.html --role "Security Lead" --name Ana --decision no-go --note "RLS hole"
    """
    from msgops.report import render

    meta = render.read_meta(report_path)
    inputs = report_inputs.read(meta["inputs"])
    if inputs.content_hash != meta["content_hash"]:
        raise UserError(f"the results behind {report_path} changed since it was rendered; "
                        f"re-render with `msgops report --out {report_path}` and review it before signing")
    signature = signoff.append(signoff.ledger_path(report_path), role, name, decision.lower(), note,
                               inputs.content_hash)
    render_report(meta["inputs"], report_path, meta["previous"] or None)
    if verbose:
        console.print(f"[dim]ledger entries: {len(signoff.read(signoff.ledger_path(report_path)))}[/]")
    if not quiet:
        console.print(f"signed by {signature.name} ({signature.role}): {signature.decision.upper()} "
                      f"over results {signature.content_hash[:12]}; ledger {signoff.ledger_path(report_path)}")


def gate(
    target_file: TargetFile = None,
    api_url: ApiUrl = None,
    database_url: DatabaseUrl = None,
    checklist: Checklists = None,
    tags: Tags = None,
    only: Only = None,
    profile: Annotated[list[str] | None, typer.Option(
        "--profile", show_default=False,
        help="Load profile to run (repeat), or 'none' \\[default: auto: smoke, plus every profile that a gated "
             "load threshold in the selected checklists names].")] = None,
    out: Annotated[Path, typer.Option(help="Directory for report.html, results.json, junit.xml, load.json, "
                                      "summary.md.")] = DEFAULT_OUT,
    previous: Annotated[Path | None, typer.Option(help="Previous run's output directory, for what changed.",
                                                  show_default=False)] = None,
    fail_on: FailOn = "critical,high",
    require_attestations: RequireAttestations = False,
    allow_exceptions: Annotated[bool, typer.Option(help="Exit 0 for 'GO with exceptions' too (waived items, "
                                                   "failures below the gate).")] = False,
    waivers: Waivers = None,
    attestations: Attestations = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory for the embedded database.",
                                                  show_default=False)] = None,
    output_format: OutputFormat = "text",
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Everything, for CI: load tests, the checklists, the report; one verdict, one exit code.

    With no target configured it starts the reference service on the embedded PostgreSQL, gates
    it, and stops it. The verdict is msgops's one verdict over the check results and the load runs:
    a load threshold that was not measured, or a saturated load generator, is never a pass.

    Exit codes: 0 GO; 1 NO-GO (a gated check or load threshold failed; also "GO with exceptions"
    unless --allow-exceptions); 2 INCOMPLETE (a gated check errored or was not run, a threshold was
    not measured, or nothing was evaluated); 3 bad configuration or usage.

    Examples:

      msgops gate                                   # the reference service, end to end

      msgops gate --target staging.yaml --previous last-run/ --output-format github

      msgops gate --profile none --tags db          # database checks only, scoped on purpose

      msgops gate -c ./team-checklist.yaml --allow-exceptions
    """
    import time

    from msgops import api
    from msgops.cli_check import output_format_value, render, run_with_progress, selection
    from msgops.engine import RunOptions
    from msgops.verdict import parse_fail_on

    output_format = output_format_value(output_format)
    started = time.monotonic()
    policy = GatePolicy(parse_fail_on(fail_on), require_attestations)
    chosen = selection(checklist, tags, only)
    resolved = config.resolve(target_file, api_url=api_url, database_url=database_url, data_dir=data_dir)
    _, _, items = api.select_items(resolved, chosen)  # a bad selection fails before anything starts
    profiles = _profiles(profile or ["auto"], items, policy)
    local = None
    if not resolved.api_url and not resolved.database_url:
        from msgops import local_service

        if not quiet:
            console.print("[dim]no target configured: starting the reference service on the embedded database[/]")
        local = local_service.start(target.data_dir(data_dir))
        resolved = replace(resolved, api_url=local.api_url, database_url=local.database_url,
                           jwt_secret=local.jwt_secret, source="reference service started by msgops gate")
    out.mkdir(parents=True, exist_ok=True)
    load_files: list[Path] = []
    try:
        for name in profiles:
            load_files.append(_run_load(resolved, name, out / "load.json", quiet))
        if load_files:
            resolved = replace(resolved, load_results=out / "load.json")
        opts = RunOptions(concurrency=resolved.checks.concurrency, timeout_s=resolved.checks.timeout_s,
                          retries=resolved.checks.retries)
        run = run_with_progress(resolved, chosen, policy, opts, waivers, attestations, console,
                                "quiet" if quiet else "full")
    finally:
        if local is not None:
            local.stop()
    run.write_json(out / "results.json")
    run.write_junit(out / "junit.xml")
    # The report judges the check results and the load runs together (msgops.verdict), and the gate
    # exits on that same verdict: what the lead reads is what CI decided.
    model = render_report([out / "results.json", *load_files], out / "report.html", [previous] if previous else None,
                          out / "summary.md", out / "report.json")
    verdict = run.verdict = model.verdict
    render(run, console, verbose, quiet, output_format)
    code = verdict.exit_code
    if verdict.decision == "GO with exceptions" and not allow_exceptions:
        code = 1
    console.print(f"\n[bold]gate: {verdict.headline}[/]", highlight=False)
    if verdict.decision != "GO":
        console.print(f"  {verdict.reason}", highlight=False)
    console.print(f"report: {out / 'report.html'} · results: {out / 'results.json'} · junit: {out / 'junit.xml'}"
                  f" · {time.monotonic() - started:.1f}s", highlight=False)
    raise typer.Exit(code)


def _profiles(requested: list[str], items: list[Item], policy: GatePolicy) -> list[str]:
    """The load profiles a gate runs: as asked, or (auto) smoke plus those its gated thresholds name."""
    if requested == ["none"]:
        return []
    if "auto" not in requested:
        return list(dict.fromkeys(requested))
    needed = ["smoke"]
    for item in items:
        if item.check and item.check.kind == "load.threshold" and item.severity in policy.fail_on \
                and not item.optional and item.check.params.get("profile"):
            needed.append(str(item.check.params["profile"]))
    return list(dict.fromkeys([*needed, *(r for r in requested if r != "auto")]))


def _run_load(resolved: config.Target, profile: str, path: Path, quiet: bool) -> Path:
    """Run one load profile; returns its own results file (load-<profile>.json beside `path`)."""
    from msgops.load.run import LoadOptions
    from msgops.load.run import execute as run_load

    run_load(LoadOptions(profile=profile, json_out=path, target=resolved, show_progress=not quiet), console)
    return path.with_name(f"load-{profile}.json")
