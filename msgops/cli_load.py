"""`msgops load`: run a load profile with Locust and gate on its thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from msgops.cli_options import ApiUrl, TargetFile
from msgops.errors import UserError
from msgops.load.profile import available, parse_duration
from msgops.loadresults import DEFAULT_PATH

console = Console()


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UserError(f"--duration: {exc}") from None


def load(
    profile: Annotated[str, typer.Option("--profile", "-p", help="A built-in profile name or a YAML file.")]
    = "smoke",
    target_file: TargetFile = None,
    api_url: ApiUrl = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="PostgreSQL URL, for profiles that "
                                                     "provision in the database.", show_default=False)] = None,
    users: Annotated[int | None, typer.Option("--users", min=1, help="Simulated users in all, keeping the "
                                              "profile's mix.", show_default=False)] = None,
    connections: Annotated[int | None, typer.Option("--connections", min=0, help="Listening WebSockets.",
                                                    show_default=False)] = None,
    rate: Annotated[float | None, typer.Option("--rate", min=0, help="Open-model messages per second.",
                                               show_default=False)] = None,
    duration: Annotated[str | None, typer.Option("--duration", help="Send window, e.g. 30s or 5m.",
                                                 show_default=False)] = None,
    processes: Annotated[int, typer.Option("--processes", min=1, max=256, help="Locust processes generating "
                                           "load on this machine (a master plus N workers when N > 1).")] = 1,
    master: Annotated[bool, typer.Option("--master", help="Be the master of workers on other machines.")] = False,
    expect_workers: Annotated[int, typer.Option("--expect-workers", min=1, help="With --master: workers to wait "
                                                "for before starting.")] = 1,
    master_bind_port: Annotated[int | None, typer.Option("--master-bind-port", help="With --master: port to "
                                                         "listen on \\[Locust's default 5557].",
                                                         show_default=False)] = None,
    worker: Annotated[bool, typer.Option("--worker", help="Be a worker of the master at --master-host "
                                         "(it sends the plan; nothing is provisioned here).")] = False,
    master_host: Annotated[str, typer.Option("--master-host", help="With --worker: the master's address.")]
    = "127.0.0.1",
    master_port: Annotated[int | None, typer.Option("--master-port", help="With --worker: the master's port.",
                                                    show_default=False)] = None,
    json_out: Annotated[Path, typer.Option("--json", help="Write the results here (what load checks read).")]
    = DEFAULT_PATH,
    html_out: Annotated[Path | None, typer.Option("--html", help="Also write Locust's HTML report here.",
                                                  show_default=False)] = None,
    keep_data: Annotated[bool, typer.Option("--keep-data", help="Leave the provisioned users and conversations "
                                            "in the target.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress display.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print the run's settings before it starts.")]
    = False,
) -> None:
    """Run a load profile against the target with Locust, then judge its thresholds.

    Provisions users, tokens and conversations for the run (removed afterwards), runs Locust headless
    as a subprocess with a live display, measures exact percentiles (HDR), end-to-end delivery
    latency, lost and duplicated deliveries and load-generator CPU, writes the results JSON and is
    judged by the same verdict as `msgops check`: 0 GO, every threshold met; 1 NO-GO, one missed;
    2 INCOMPLETE (generator saturated, a metric not measured, target unreachable); 3 invalid
    profile, configuration or usage.

    Examples:
      msgops load --profile smoke
      msgops load --profile seed-004-websockets --connections 500 --processes 2
      msgops load --profile loadtests/profiles/seed-002-dm-burst.yaml --rate 400 --duration 20s
      msgops load --master --expect-workers 4 ...   # and on each worker machine: msgops load --worker --master-host H
    """
    if master and worker:
        raise UserError("--master and --worker exclude each other")
    if master and processes > 1:
        raise UserError("--processes is for one machine; with --master, start workers with `msgops load --worker`")
    from msgops.load.run import LoadOptions, execute, run_worker  # the load machinery, only for `load`

    opts = LoadOptions(
        profile=profile, target_file=target_file, api_url=api_url, database_url=database_url, users=users,
        connections=connections, rate=rate, duration=_duration(duration), processes=processes, master=master,
        expect_workers=expect_workers, master_bind_port=master_bind_port, worker=worker, master_host=master_host,
        master_port=master_port, json_out=json_out, html_out=html_out, keep_data=keep_data, show_progress=not quiet)
    if verbose:
        settings = {k: getattr(opts, k) for k in ("profile", "users", "connections", "rate", "duration", "processes",
                                                  "master", "json_out")}  # never the URLs: they may hold secrets
        console.print(f"[dim]load settings: {settings}[/]", highlight=False)
    if worker:
        raise typer.Exit(run_worker(opts, console))
    _, verdict = execute(opts, console)
    raise typer.Exit(verdict.exit_code)


load.__doc__ = (load.__doc__ or "") + f"\n    Built-in profiles: {', '.join(available()) or 'none yet'}.\n"
