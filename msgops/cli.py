"""The `msgops` command line."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from msgops import __version__, extras, target
from msgops.errors import EXIT_BAD_INPUT, UserError
from msgops.urls import database_url_problem

try:  # typer >= 0.20 ships its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer runs on click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

_app = typer.Typer(
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
_app.add_typer(db_app, name="db")

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Where the embedded database and the development JWT secret live "
                       "\\[default: .msgops, or MSGOPS_DATA_DIR].", show_default=False)]


def _database_url(value: str | None) -> str | None:
    problem = database_url_problem(value) if value is not None else None
    if problem:
        raise typer.BadParameter(problem)
    return value


DatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url", envvar="DATABASE_URL", show_envvar=True, callback=_database_url,
    help="Use this PostgreSQL instead of the embedded one.", show_default=False)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only what the command exists to print.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Say more about what happens.")]


def _out(quiet: bool) -> Console:
    return Console(quiet=True) if quiet else console


def _version(value: bool) -> None:
    if value:
        console.print(f"msgops {__version__}")
        raise typer.Exit()


@_app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    pass


@_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes; with more than one, "
                                         "realtime fans out through PostgreSQL LISTEN/NOTIFY.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No banner; only warnings and errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="The service logs at DEBUG "
                                          "(MSGOPS_LOG_LEVEL=DEBUG).")] = False,
) -> None:
    """Run the reference messaging service.

    With no --database-url (or DATABASE_URL) it starts an embedded
    PostgreSQL in the data directory, applies the migrations and serves
    the API, the WebSocket endpoint /realtime and the docs at /docs.
    A second start reuses the data. Ctrl-C stops everything.

    Examples:

      msgops serve                                  # http://127.0.0.1:8000

      msgops serve --port 9000 --workers 2          # two processes

      DATABASE_URL=postgresql://app@db/chat msgops serve --host 0.0.0.0
    """
    import os

    from msgops.serve import run

    if verbose:
        os.environ["MSGOPS_LOG_LEVEL"] = "DEBUG"
    run(host, port, database_url, target.data_dir(data_dir), workers, _out(quiet))


@_app.command()
def token(
    sub: Annotated[str | None, typer.Option(help="User id (UUID) for the token's subject \\[default: a new one].",
                                            show_default=False)] = None,
    role: Annotated[str, typer.Option(help="authenticated or service_role.")] = "authenticated",
    ttl: Annotated[int, typer.Option(min=1, help="Lifetime in seconds.")] = 3600,
    email: Annotated[str | None, typer.Option(help="Email claim (stored, never returned by the API).")] = None,
    data_dir: DataDir = None,
    quiet: Quiet = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print the token's claims on "
                                          "standard error.")] = False,
) -> None:
    """Print a signed development JWT that the running service accepts.

    The secret is MSGOPS_JWT_SECRET, or the one `msgops serve` keeps in
    the data directory.

    Examples:

      curl -H "Authorization: Bearer $(msgops token)" localhost:8000/conversations

      msgops token --role service_role --ttl 300 -v
    """
    from msgops.tokens import API_ROLES, mint_token

    subject = sub or str(uuid.uuid4())
    try:
        uuid.UUID(subject)
    except ValueError:
        raise UserError(f"--sub must be a UUID, got {subject!r}") from None
    if role not in API_ROLES:
        raise UserError(f"--role must be one of {', '.join(API_ROLES)}, got {role!r}")
    secret = target.jwt_secret(target.data_dir(data_dir), create=False)
    extra = {"email": email} if email else None
    minted = mint_token(secret, subject, role=role, ttl=ttl, extra=extra)
    if verbose and not quiet:
        import jwt

        err_console.print_json(data=jwt.decode(minted, options={"verify_signature": False}))
    typer.echo(minted)


@db_app.command("migrate")
def db_migrate(database_url: DatabaseUrl = None, data_dir: DataDir = None, quiet: Quiet = False,
               verbose: Verbose = False) -> None:
    """Apply pending migrations.

    Examples:

      msgops db migrate                             # the embedded database

      DATABASE_URL=postgresql://app@db/chat msgops db migrate -v
    """
    from msgops.serve import migrate, open_database

    db = open_database(database_url, target.data_dir(data_dir))
    try:
        if verbose:
            _out(quiet).print(f"[dim]migrating {target.mask_url(db.url)}[/]")
        applied = migrate(db.url)
    finally:
        db.release()
    _out(quiet).print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


@db_app.command("url")
def db_url(database_url: DatabaseUrl = None, data_dir: DataDir = None, quiet: Quiet = False,
           verbose: Verbose = False) -> None:
    """Print the database URL (starting the embedded server if it is not
    running; it keeps running).

    Examples:

      psql "$(msgops db url)"

      DATABASE_URL=$(msgops db url -q) msgops check --tags db
    """
    from msgops.serve import open_database

    directory = target.data_dir(data_dir)
    db = open_database(database_url, directory)
    if db.embedded is not None and db.embedded.started_here and not quiet:
        err_console.print("started the embedded PostgreSQL; stop it with `msgops db stop`")
    if verbose and db.embedded is not None:
        err_console.print(f"embedded PostgreSQL data directory: {directory}")
    typer.echo(db.url)


@db_app.command("stop")
def db_stop(data_dir: DataDir = None, quiet: Quiet = False, verbose: Verbose = False) -> None:
    """Stop the embedded PostgreSQL of the data directory.

    Examples:

      msgops db stop

      msgops db stop --data-dir /srv/msgops -v
    """
    from msgops.embedded import EmbeddedPostgres

    directory = target.data_dir(data_dir)
    EmbeddedPostgres(directory).stop()
    _out(quiet).print("embedded PostgreSQL stopped" + (f" ({directory})" if verbose else ""))


@db_app.command("status")
def db_status(database_url: DatabaseUrl = None, data_dir: DataDir = None, quiet: Quiet = False,
              verbose: Verbose = False) -> None:
    """Show which migrations are applied; exit 1 when some are pending.

    Examples:

      msgops db status

      msgops db status -q || msgops db migrate      # in a deploy script
    """
    from msgops.serve import open_database
    from service.migrate import status

    db = open_database(database_url, target.data_dir(data_dir))
    try:
        rows = status(db.url)
    finally:
        db.release()
    table = Table(title=f"migrations on {target.mask_url(db.url)}")
    if verbose:
        table.add_column("checksum matches")
    table.add_column("migration")
    table.add_column("applied at")
    table.add_column("state")
    for row in rows:
        state = "[green]applied[/]" if row.applied_at else "[yellow]pending[/]"
        if not row.checksum_matches:
            state = "[red]changed since applied[/]"
        cells = [row.name, row.applied_at.isoformat(timespec="seconds") if row.applied_at else "-", state]
        table.add_row(*([str(row.checksum_matches)] if verbose else []), *cells)
    _out(quiet).print(table)
    pending = sum(1 for r in rows if r.applied_at is None)
    if pending:
        raise typer.Exit(1)


# Sub-commands that live in their own modules: name -> (module, function). Each is imported when
# registered, and registered only when needed: `msgops load` imports no checker, `msgops check` no
# load machinery; help and `app` (for tests and embedding) have them all.
_OPTIONAL = {
    "check": ("msgops.cli_check", "check"),
    "init": ("msgops.cli_check", "init"),
    "load": ("msgops.cli_load", "load"),
    "report": ("msgops.cli_report", "report"),
    "signoff": ("msgops.cli_report", "signoff_command"),
    "gate": ("msgops.cli_report", "gate"),
    "discover": ("msgops.cli_discover", "discover"),
}
_registered: set[str] = set()


def _register_optional(command: str | None = None) -> None:
    """Register sub-command `command` if it lives in its own module, or (None) all of them, once each."""
    import importlib

    names = [command] if command in _OPTIONAL else list(_OPTIONAL) if command is None else []
    for name in names:
        if name not in _registered:
            module, function = _OPTIONAL[name]
            _app.command(name)(getattr(importlib.import_module(module), function))
            _registered.add(name)
    if command is None and "checklists" not in _registered:
        _registered.add("checklists")
        try:
            from msgops.cli_checklists import checklists_app
        except ImportError:
            return
        _app.add_typer(checklists_app, name="checklists")


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command `argv` runs when it is one registered on demand; None: register them all."""
    if any(a in ("-h", "--help") for a in argv[:1]):
        return None
    command = next((a for a in argv if not a.startswith("-")), None)
    return command if command in _OPTIONAL else None


def __getattr__(name: str) -> typer.Typer:
    """`app`: the whole command line, every sub-command registered."""
    if name == "app":
        _register_optional()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fail(message: str, code: int) -> int:
    err_console.print(f"[red]error:[/] {escape(message)}", highlight=False)
    return code


def main(args: Sequence[str] | None = None) -> None:
    """The `msgops` entry point: exit codes as the README documents them, errors in one line.

    Usage errors (an unknown option, a bad value, a missing argument) exit 3 like any other invalid
    input; 2 stays reserved for "could not be evaluated".
    """
    argv = list(sys.argv[1:] if args is None else args)
    try:
        extras.check_command_line(argv)
        _register_optional(_command_of(argv))
        code = _app(args=argv, prog_name="msgops", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        if exc.format_message().strip():  # rich help is printed as the error is made
            typer.echo(exc.format_message())
        code = EXIT_BAD_INPUT
    except click_errors.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        code = _fail(" ".join(exc.format_message().split()) + hint, EXIT_BAD_INPUT)
    except click_errors.ClickException as exc:
        code = _fail(" ".join(exc.format_message().split()), EXIT_BAD_INPUT)
    except UserError as exc:
        code = _fail(str(exc), exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    except ImportError as exc:
        extra = extras.extra_of(exc)
        if extra is None:
            raise
        command = next((a for a in argv if not a.startswith("-")), "")
        code = _fail(extras.message(command, extra), EXIT_BAD_INPUT)
    except OSError as exc:
        code = _fail(str(exc), EXIT_BAD_INPUT)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
