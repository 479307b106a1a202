"""`msgops check` and `msgops init`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from msgops import config, preflight
from msgops.checklist import ChecklistError, Item, load_checklists
from msgops.engine import Progress as OnResult
from msgops.engine import RunOptions, run_items
from msgops.errors import UserError
from msgops.output import json_report, junit, terminal
from msgops.probes import Context
from msgops.results import Result
from msgops.verdict import GatePolicy, Verdict, evaluate, parse_fail_on
from msgops.waivers import load_attestations, load_waivers

console = Console()


def select_items(checklist_ids: list[str] | None, tags: list[str] | None, only: list[str] | None,
                 paths: list[Path] | None = None) -> tuple[list, list[Item]]:
    try:
        checklists = load_checklists(paths) if paths else load_checklists()
    except ChecklistError as exc:
        raise UserError(str(exc)) from None
    known = {c.id for c in checklists}
    for wanted in checklist_ids or []:
        if wanted not in known:
            raise UserError(f"--checklist {wanted!r}: no such checklist (known: {', '.join(sorted(known))})")
    chosen = [c for c in checklists if not checklist_ids or c.id in checklist_ids]
    items = [i for c in chosen for i in c.items]
    if tags:
        items = [i for i in items if set(tags) & set(i.tags)]
    if only:
        items = [i for i in items if i.full_id in only or i.id in only]
        found = {i.full_id for i in items} | {i.id for i in items}
        missing = [o for o in only if o not in found]
        if missing:
            raise UserError(f"--only: no item {missing[0]!r} (see `msgops checklists list`)")
    return chosen, items


async def run_checks(target: config.Target, items: list[Item], opts: RunOptions,
                     show_progress: bool) -> list[Result]:
    opts.unreachable = await preflight.unreachable(target, {i.check.family for i in items if i.check})

    async def run_all(progress: OnResult | None) -> list[Result]:
        ctx = Context(target)
        try:
            if show_progress and target.database_url and "db" not in opts.unreachable and \
                    any(i.check and i.check.family == "db" for i in items):
                await print_model(ctx)
            return await run_items(items, ctx, opts, progress)
        finally:
            await ctx.close()

    if not show_progress:
        return await run_all(None)
    with Progress(TextColumn("[bold]checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, transient=True) as bar:
        task = bar.add_task("", total=sum(1 for i in items if i.automated))

        def advance(result: Result) -> None:
            if result.kind:
                bar.update(task, advance=1, description=result.id)

        return await run_all(advance)


async def print_model(ctx: Context) -> None:
    """The database model the db checks will use (discovered, or schema: from msgops.yaml), in the preflight."""
    from msgops.cli_discover import describe
    from msgops.dbmodel.target import target_model

    try:
        model = await target_model(ctx)
    except Exception as exc:  # the db checks report it with their own evidence
        console.print(f"[dim]database model: not discovered ({type(exc).__name__}: {exc})[/]", highlight=False)
        return
    source = "schema: in msgops.yaml" if getattr(ctx.target, "schema", None) else "discovered from the catalog"
    console.print(f"[bold]database model[/] ({source}; correct it with `msgops discover`)", highlight=False)
    for line in describe(model):
        console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)


def check(
    target_file: Annotated[Path | None, typer.Option("--target", "-t", help="Target file \\[default: ./msgops.yaml "
                                                     "if present; else environment; else a local `msgops serve`].",
                                                     show_default=False)] = None,
    api_url: Annotated[str | None, typer.Option("--api-url", help="API base URL (overrides MSGOPS_API_URL).",
                                                show_default=False)] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="PostgreSQL URL (overrides DATABASE_URL).",
                                                     show_default=False)] = None,
    checklist: Annotated[list[str] | None, typer.Option("--checklist", "-c", help="Only this checklist (repeat).",
                                                        show_default=False)] = None,
    tags: Annotated[list[str] | None, typer.Option("--tags", help="Only items with this tag (repeat).",
                                                   show_default=False)] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Only this item id (repeat).",
                                                   show_default=False)] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON results here.",
                                                  show_default=False)] = None,
    junit_out: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.", show_default=False)] = None,
    fail_on: Annotated[str, typer.Option(help="Severities whose failures fail the gate (comma list, or all).")]
    = "critical,high",
    require_attestations: Annotated[bool, typer.Option(help="Pending manual items of gated severities fail the gate.")]
    = False,
    waivers: Annotated[Path | None, typer.Option(help="Waivers YAML (id, justification, approver, expires).",
                                                 show_default=False)] = None,
    attestations: Annotated[Path | None, typer.Option(help="Attestations YAML (id, by, role, note, date).",
                                                      show_default=False)] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Checks in flight at once.",
                                                    show_default=False)] = None,
    timeout: Annotated[float | None, typer.Option(help="Per-check timeout in seconds.", show_default=False)] = None,
    retries: Annotated[int | None, typer.Option(min=0, help="Re-run a check that errored.", show_default=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list skipped and manual items.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the verdict line.")] = False,
) -> None:
    """Run the checklists as executable checks against a target and gate on the result.

    Exit codes: 0 the gate passed; 1 a gated check failed; 2 a gated check could not be evaluated;
    3 bad configuration or checklist.

    Examples:
      msgops check                                  # the local `msgops serve`, every checklist
      msgops check -c 000-messaging-production --tags rls
      msgops check --target staging.yaml --json out/results.json --junit out/junit.xml --fail-on all
    """
    document, verdict = execute(target_file, api_url, database_url, checklist, tags, only, fail_on,
                                require_attestations, waivers, attestations, concurrency, timeout, retries,
                                show_progress=not quiet, verbose=verbose, quiet=quiet)
    if json_out:
        json_report.write(document, json_out)
    if junit_out:
        junit.write([Result.from_dict(r) for r in document["results"]], junit_out)
    raise typer.Exit(verdict.exit_code)


def execute(target_file: Path | None, api_url: str | None, database_url: str | None, checklist: list[str] | None,
            tags: list[str] | None, only: list[str] | None, fail_on: str, require_attestations: bool,
            waivers: Path | None, attestations: Path | None, concurrency: int | None, timeout: float | None,
            retries: int | None, show_progress: bool = True, verbose: bool = False,
            quiet: bool = False, target_override: config.Target | None = None) -> tuple[dict, Verdict]:
    policy = GatePolicy(parse_fail_on(fail_on), require_attestations)
    target = target_override or config.resolve(target_file, api_url=api_url, database_url=database_url)
    chosen, items = select_items(checklist, tags, only)
    if not items:
        raise UserError("no checklist item matches the selection (--checklist/--tags/--only)")
    waiver_path, attest_path = waivers or target.waivers, attestations or target.attestations
    opts = RunOptions(
        concurrency=concurrency or target.checks.concurrency,
        timeout_s=timeout or target.checks.timeout_s,
        retries=target.checks.retries if retries is None else retries,
        waivers=load_waivers(waiver_path) if waiver_path else {},
        attestations=load_attestations(attest_path) if attest_path else {},
    )
    started = json_report.now()
    results = asyncio.run(run_checks(target, items, opts, show_progress))
    verdict = evaluate(results, policy)
    document = json_report.build(results, chosen, target.describe(), policy, verdict, started, json_report.now())
    if quiet:
        console.print(f"{verdict.decision}: {verdict.reason} (exit {verdict.exit_code})")
    else:
        terminal.print_run(console, results, verdict, verbose)
        console.print(f"[dim]{len(results)} items in {document['run']['duration_ms'] / 1000:.2f}s against "
                      f"{json.dumps(target.describe())}[/]")
    return document, verdict


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the target file.")] = Path(config.CONFIG_FILE),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented msgops.yaml describing the target to check."""
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    path.write_text(config.INIT_TEMPLATE)
    console.print(f"wrote {path}: edit api_url and the variable names, then run `msgops check --target {path}`")
