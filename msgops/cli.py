"""The `msgops` command line."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from msgops import __version__, target
from msgops.errors import EXIT_BAD_INPUT, UserError

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

app = typer.Typer(
    name="msgops",
    help="Production checklists for messaging systems, made executable.\n\n"
         "Start the reference service with [bold]msgops serve[/], check a deployment with "
         "[bold]msgops check[/], gate a release in CI with [bold]msgops gate[/].",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="The service database: migrations, URL, status.", no_args_is_help=True)
app.add_typer(db_app, name="db")

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Where the embedded database and the development JWT secret live "
                       "\\[default: .msgops, or MSGOPS_DATA_DIR].", show_default=False)]
DatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url", envvar="DATABASE_URL",
    help="Use this PostgreSQL instead of the embedded one.", show_default=False)]


def _version(value: bool) -> None:
    if value:
        console.print(f"msgops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    pass


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes; with more than one, "
                                         "realtime fans out through PostgreSQL LISTEN/NOTIFY.")] = 1,
) -> None:
    """Run the reference messaging service.

    With no --database-url (or DATABASE_URL) it starts an embedded PostgreSQL in the data directory,
    applies the migrations and serves the API, the WebSocket endpoint /realtime and the docs at /docs.
    A second start reuses the data. Ctrl-C stops everything.
    """
    from msgops.serve import run

    run(host, port, database_url, target.data_dir(data_dir), workers, console)


@app.command()
def token(
    sub: Annotated[str | None, typer.Option(help="User id (UUID) for the token's subject \\[default: a new one].",
                                            show_default=False)] = None,
    role: Annotated[str, typer.Option(help="authenticated or service_role.")] = "authenticated",
    ttl: Annotated[int, typer.Option(min=1, help="Lifetime in seconds.")] = 3600,
    email: Annotated[str | None, typer.Option(help="Email claim (stored, never returned by the API).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Print a signed development JWT that the running service accepts.

    The secret is MSGOPS_JWT_SECRET, or the one `msgops serve` keeps in the data directory.

    Example: [bold]curl -H "Authorization: Bearer $(msgops token)" localhost:8000/conversations[/]
    """
    from service.auth import API_ROLES, mint_token

    subject = sub or str(uuid.uuid4())
    try:
        uuid.UUID(subject)
    except ValueError:
        raise UserError(f"--sub must be a UUID, got {subject!r}") from None
    if role not in API_ROLES:
        raise UserError(f"--role must be one of {', '.join(API_ROLES)}, got {role!r}")
    secret = target.jwt_secret(target.data_dir(data_dir), create=False)
    extra = {"email": email} if email else None
    typer.echo(mint_token(secret, subject, role=role, ttl=ttl, extra=extra))


@db_app.command("migrate")
def db_migrate(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Apply pending migrations."""
    from msgops.serve import migrate, open_database

    db = open_database(database_url, target.data_dir(data_dir))
    try:
        applied = migrate(db.url)
    finally:
        db.release()
    console.print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


@db_app.command("url")
def db_url(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Print the database URL (starting the embedded server if it is not running; it keeps running)."""
    from msgops.serve import open_database

    db = open_database(database_url, target.data_dir(data_dir))
    if db.embedded is not None and db.embedded.started_here:
        err_console.print("started the embedded PostgreSQL; stop it with `msgops db stop`")
    typer.echo(db.url)


@db_app.command("stop")
def db_stop(data_dir: DataDir = None) -> None:
    """Stop the embedded PostgreSQL of the data directory."""
    from msgops.embedded import EmbeddedPostgres

    EmbeddedPostgres(target.data_dir(data_dir)).stop()
    console.print("embedded PostgreSQL stopped")


@db_app.command("status")
def db_status(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Show which migrations are applied."""
    from msgops.serve import open_database
    from service.migrate import status

    db = open_database(database_url, target.data_dir(data_dir))
    try:
        rows = status(db.url)
    finally:
        db.release()
    table = Table(title=f"migrations on {target.mask_url(db.url)}")
    table.add_column("migration")
    table.add_column("applied at")
    table.add_column("state")
    for row in rows:
        state = "[green]applied[/]" if row.applied_at else "[yellow]pending[/]"
        if not row.checksum_matches:
            state = "[red]changed since applied[/]"
        table.add_row(row.name, row.applied_at.isoformat(timespec="seconds") if row.applied_at else "-", state)
    console.print(table)
    pending = sum(1 for r in rows if r.applied_at is None)
    if pending:
        raise typer.Exit(1)


def _register_optional() -> None:
    """Sub-commands that live in their own modules."""
    from msgops import cli_check, cli_discover, cli_report

    app.command("check")(cli_check.check)
    app.command("init")(cli_check.init)
    from msgops import cli_load

    app.command("load")(cli_load.load)
    app.command("report")(cli_report.report)
    app.command("signoff")(cli_report.signoff_command)
    app.command("gate")(cli_report.gate)
    app.command("discover")(cli_discover.discover)
    try:
        from msgops.cli_checklists import checklists_app
    except ImportError:
        return
    app.add_typer(checklists_app, name="checklists", help="Browse the built-in checklists and their coverage.")


_register_optional()


def main() -> None:
    try:
        app()
    except UserError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    main()
