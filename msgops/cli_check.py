"""`msgops check` and `msgops init`: flags in, msgops.api does the work, the terminal shows it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import psycopg
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from msgops import api, config
from msgops.cli_options import ApiUrl, TargetFile
from msgops.engine import RunOptions
from msgops.errors import UserError
from msgops.output import terminal
from msgops.results import Result
from msgops.verdict import GatePolicy, parse_fail_on

console = Console()
err_console = Console(stderr=True)
STDOUT = "-"

# Options shared by `check` and `gate` (and, with `load`, the target's: msgops.cli_options).
DatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url", show_default=False,
    help="PostgreSQL URL \\[env var: DATABASE_URL, or the variable database_url_env names].")]
Checklists = Annotated[list[str] | None, typer.Option(
    "--checklist", "-c", show_default=False,
    help="Only this checklist: a built-in id or a path to a checklist file or folder (repeat). Scopes the run.")]
Tags = Annotated[list[str] | None, typer.Option(
    "--tags", show_default=False, help="Only items with this tag (repeat). Scopes the run.")]
Only = Annotated[list[str] | None, typer.Option(
    "--only", show_default=False, help="Only this item id (repeat). Scopes the run.")]
FailOn = Annotated[str, typer.Option(
    envvar="MSGOPS_FAIL_ON", show_envvar=True,
    help="Severities whose failures block the gate (comma list, or all).")]
RequireAttestations = Annotated[bool, typer.Option(
    help="Pending manual items of gated severities block the gate.")]
Waivers = Annotated[Path | None, typer.Option(
    show_default=False, help="Waivers YAML (id, justification, approver, expires) \\[default: waivers: in "
                             "msgops.yaml].")]
Attestations = Annotated[Path | None, typer.Option(
    show_default=False, help="Attestations YAML (id, by, role, note, date) \\[default: attestations: in "
                             "msgops.yaml].")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Also list skipped, not-run and manual items.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only the verdict line.")]
OutputFormat = Annotated[str, typer.Option(
    "--output-format", envvar="MSGOPS_OUTPUT_FORMAT", show_envvar=True,
    help="text, or github: also print GitHub Actions annotations for what blocks the gate.")]


def selection(checklist: list[str] | None, tags: list[str] | None, only: list[str] | None) -> api.Selection:
    return api.Selection(tuple(checklist or ()), tuple(tags or ()), tuple(only or ()))


def human_console(*outputs: Path | None) -> Console:
    """Where people's output goes: standard error when a machine format is written to standard output."""
    return err_console if any(str(o) == STDOUT for o in outputs if o is not None) else console


def print_preflight(out: Console, planned: api.Planned) -> None:
    """One short block before the probes: the target, and what will run, what cannot and why."""
    pf = planned.preflight
    table = Table(show_header=False, box=None, padding=(0, 1), pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in pf.target.items():
        table.add_row(name, value)
    for family in pf.families:
        mark = "[green]runs[/]" if family.ready else "[yellow]cannot run[/]"
        table.add_row(f"{family.name} ({family.items})", f"{mark}: {family.detail}")
    if planned.selection.scoped:
        table.add_row("scope", planned.selection.describe() or "")
    out.print(table)
    out.print()


def run_with_progress(target: config.Target, chosen: api.Selection, policy: GatePolicy, opts: RunOptions | None,
                      waivers: Path | None, attestations: Path | None, out: Console,
                      show: Literal["full", "quiet"]) -> api.CheckRun:
    """Run the checks with the preflight block and a progress bar on `out`."""
    with Progress(TextColumn("[bold]checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=out, transient=True,
                  disable=show == "quiet" or not out.is_terminal) as bar:
        task = bar.add_task("", total=None)

        lines = model_lines(target) if show == "full" else []

        def on_plan(planned: api.Planned) -> None:
            if show == "full":
                print_preflight(out, planned)
                if lines and any(f.name == "db" and f.ready for f in planned.preflight.families):
                    for line in lines:
                        out.print(escape(line) if line.startswith("database model") else f"  {escape(line)}",
                                  highlight=False, soft_wrap=True)
                    out.print()
            bar.update(task, total=sum(1 for i in planned.items if i.automated))

        def advance(result: Result) -> None:
            if result.kind:
                bar.update(task, advance=1, description=result.id)

        return asyncio.run(api.run_checks_async(target, chosen, policy, opts, waivers=waivers,
                                                attestations=attestations, on_result=advance, on_plan=on_plan))


def render(run: api.CheckRun, out: Console, verbose: bool, quiet: bool, output_format: str) -> None:
    for warning in run.warnings:
        out.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if quiet:
        out.print(f"{run.verdict.headline} (exit {run.verdict.exit_code})", highlight=False)
    else:
        terminal.print_run(out, run.results, run.verdict, verbose)
        seconds = (run.finished_at - run.started_at).total_seconds()
        out.print(f"[dim]{len(run.results)} items in {seconds:.2f}s against {json.dumps(run.target.describe())}[/]",
                  highlight=False)
    if output_format == "github":
        from msgops.output import github

        sys.stdout.write(github.render(run.results, run.verdict))


def output_format_value(value: str) -> str:
    if value not in ("text", "github"):
        raise UserError(f"--output-format must be text or github, got {value!r}")
    return value


def model_lines(target: config.Target) -> list[str]:
    """The database model the db checks will use (the schema: section, or discovered), as preflight lines."""
    from msgops.cli_discover import describe
    from msgops.dbmodel import Model, discover

    async def find() -> Model:
        if target.schema:
            return Model.from_mapping(dict(target.schema))
        assert target.database_url is not None
        async with await psycopg.AsyncConnection.connect(target.database_url, connect_timeout=5) as conn:
            return await discover(conn)

    if not target.database_url:
        return []
    try:
        model = asyncio.run(find())
    except (psycopg.Error, OSError, ValueError):  # the db checks report it with their own evidence
        return []
    source = "schema: in msgops.yaml" if target.schema else "discovered; correct it with `msgops discover`"
    return [f"database model ({source})", *describe(model)]


def check(
    target_file: TargetFile = None,
    api_url: ApiUrl = None,
    database_url: DatabaseUrl = None,
    checklist: Checklists = None,
    tags: Tags = None,
    only: Only = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON results here ('-': standard "
                                                  "output; the table then goes to standard error).",
                                                  show_default=False)] = None,
    junit_out: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here ('-': standard output).",
                                                   show_default=False)] = None,
    output_format: OutputFormat = "text",
    fail_on: FailOn = "critical,high",
    require_attestations: RequireAttestations = False,
    waivers: Waivers = None,
    attestations: Attestations = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Checks in flight at once \\[default: 16, or "
                                                    "checks.concurrency in msgops.yaml].", show_default=False)] = None,
    timeout: Annotated[float | None, typer.Option(min=0.1, help="Per-check timeout in seconds \\[default: 30].",
                                                  show_default=False)] = None,
    retries: Annotated[int | None, typer.Option(min=0, help="Re-run a check that errored \\[default: 0].",
                                                show_default=False)] = None,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Run the checklists as executable checks against a target and gate on the result.

    Before the probes, a short preflight says what will run against which endpoint, and what
    cannot and why. Outcomes: pass, fail, error (the probe broke), skip (not applicable to this
    target), not_run (msgops was not given what the check needs), manual, attested, waived.

    Verdicts and exit codes: 0 GO (or GO with exceptions); 1 NO-GO, a gated check failed;
    2 INCOMPLETE, a gated check errored or was not run, or nothing was evaluated; 3 bad
    configuration, checklist or usage.

    Examples:

      msgops check                                  # a local `msgops serve`, every checklist

      MSGOPS_API_URL=https://staging.example.com DATABASE_URL=postgresql://... msgops check

      msgops check --tags rls -c 000-messaging-production   # a scoped run (the verdict says so)

      msgops check -c ./team-checklist.yaml         # your own checklist file

      msgops check --json - -q | jq .verdict        # JSON on standard output

      msgops check --output-format github --junit out/junit.xml --fail-on all
    """
    output_format = output_format_value(output_format)
    policy = GatePolicy(parse_fail_on(fail_on), require_attestations)
    target = config.resolve(target_file, api_url=api_url, database_url=database_url)
    opts = RunOptions(concurrency=concurrency or target.checks.concurrency,
                      timeout_s=timeout or target.checks.timeout_s,
                      retries=target.checks.retries if retries is None else retries)
    out = human_console(json_out, junit_out)
    run = run_with_progress(target, selection(checklist, tags, only), policy, opts, waivers, attestations, out,
                            "quiet" if quiet else "full")
    render(run, out, verbose, quiet, output_format)
    write_outputs(run, json_out, junit_out)
    raise typer.Exit(run.verdict.exit_code)


def write_outputs(run: api.CheckRun, json_out: Path | None, junit_out: Path | None) -> None:
    if json_out is not None:
        if str(json_out) == STDOUT:
            sys.stdout.write(json.dumps(run.document, indent=2, default=str) + "\n")
        else:
            run.write_json(json_out)
    if junit_out is not None:
        if str(junit_out) == STDOUT:
            from msgops.output import junit

            sys.stdout.write(junit.render(run.results))
        else:
            run.write_junit(junit_out)


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the target file.")] = Path(config.CONFIG_FILE),
    kind: Annotated[str | None, typer.Option(
        "--kind", show_default=False,
        help="reference, socketio, supabase or custom \\[default: detected from --api-url, else asked]")] = None,
    api_url: ApiUrl = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Write a commented msgops.yaml describing the target to check.

    Which kind of target it is (the reference service, a Socket.IO
    backend, a Supabase project, another API) comes from --kind, from
    what the API at --api-url answers (read-only requests), or from a
    question when run in a terminal.

    Examples:

      msgops init                                   # asks, or the reference's file

      msgops init --api-url https://staging.example.com   # detects the kind

      msgops init staging.yaml --kind socketio --force
    """
    from msgops import init_target

    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    api = api_url or None
    detection = None
    if kind is not None and kind not in init_target.KINDS:
        raise UserError(f"--kind must be one of {', '.join(init_target.KINDS)}, got {kind!r}")
    if kind is None and api:
        detection = init_target.detect(api)
        kind = detection.kind
        if not quiet:
            console.print(f"{api} looks like [bold]{kind}[/]: " + "; ".join(detection.evidence), highlight=False)
    if kind is None and sys.stdin.isatty() and not quiet:
        for name, what in init_target.KINDS.items():
            console.print(f"  [bold]{name}[/]: {what}", highlight=False)
        kind = typer.prompt("Which kind of target is this?", default="reference")
        if kind not in init_target.KINDS:
            raise UserError(f"the kind must be one of {', '.join(init_target.KINDS)}, got {kind!r}")
    chosen = kind or "reference"
    path.write_text(init_target.render(chosen, api, detection))
    if verbose:
        console.print(path.read_text(), highlight=False, markup=False)
    if not quiet:
        console.print(f"wrote {path} ({chosen}): fill in the variable names, then run "
                      f"`msgops check --target {path}`", highlight=False)
