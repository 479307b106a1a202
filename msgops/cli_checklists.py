"""`msgops checklists`: list the checklists, show items and probe kinds, report how much of them is
automated, and print the JSON Schema of checklist files."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from msgops.checklist import Checklist, ChecklistError, Item, load_checklists
from msgops.checklist.schema import schema_text
from msgops.errors import EXIT_BAD_INPUT
from msgops.probes import Probe, registry

checklists_app = typer.Typer(
    name="checklists",
    help="Inspect the checklists: what they contain, how much of them runs automatically, and the probe "
    "kinds a check may use.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

PathsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--path", "-p", help="A checklist file or a folder of them (repeat); default: the built-in checklists.",
        show_default=False,
    ),
]

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only the ids (or the totals).")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="More columns and nothing cut short.")]

_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _console() -> Console:
    return Console()


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[red]{escape(message)}[/red]", soft_wrap=True, highlight=False)
    return typer.Exit(code=EXIT_BAD_INPUT)


def _load(paths: list[Path] | None) -> list[Checklist]:
    try:
        return load_checklists(paths or None)
    except ChecklistError as e:  # every problem of every file, one line each
        raise _fail("\n".join(e.problems)) from None


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _counts(items: list[Item]) -> dict[str, Any]:
    automated = sum(1 for i in items if i.automated)
    return {
        "items": len(items),
        "checkbox": sum(1 for i in items if i.kind == "checkbox"),
        "requirement": sum(1 for i in items if i.kind == "requirement"),
        "automated": automated,
        "manual": len(items) - automated,
        "automated_pct": _pct(automated, len(items)),
    }


def _value(v: Any) -> str:
    return "[" + ", ".join(_value(x) for x in v) + "]" if isinstance(v, list) else str(v)


def _check_summary(item: Item, params: bool = True) -> str:
    if item.check is None:
        return "manual"
    args = ", ".join(f"{k}={_value(v)}" for k, v in item.check.params.items()) if params else ""
    return f"{item.check.kind}({args})" if args else item.check.kind


@checklists_app.command("list")
def list_checklists(paths: PathsOption = None, quiet: Quiet = False, verbose: Verbose = False) -> None:
    """List checklists with their item counts.

    With -p, your own checklist files or folders instead of the built-in ones.

    Examples:
      msgops checklists list                      # the built-in checklists
      msgops checklists list -p ./checklists/     # a folder of your own
    """
    checklists = _load(paths)
    if quiet:
        typer.echo("\n".join(c.id for c in checklists))
        return
    table = Table(title="Checklists")
    table.add_column("checklist", no_wrap=True)
    table.add_column("title")
    for name in ("items", "automated", "manual"):
        table.add_column(name, justify="right")
    if verbose:
        table.add_column("seed")
        table.add_column("file", overflow="fold")
    for c in checklists:
        n = _counts(c.items)
        extra = [escape(c.seed or "-"), str(c.path or "-")] if verbose else []
        table.add_row(c.id, escape(c.title), str(n["items"]), str(n["automated"]), str(n["manual"]), *extra)
    _console().print(table)


def _show_item(item: Item) -> None:
    table = Table(title=item.full_id, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows = [
        ("text", item.text),
        ("section", " > ".join(item.section)),
        ("line", str(item.line or "")),
        ("kind", item.kind),
        ("severity", item.severity),
        ("tags", ", ".join(item.tags)),
        ("optional", "yes" if item.optional else ""),
        ("why", item.why or ""),
        ("check", _check_summary(item)),
        ("confirm", item.confirm or ""),
    ]
    for name, value in rows:
        if value:
            table.add_row(name, escape(value))
    _console().print(table)


def _show_checklist(checklist: Checklist) -> None:
    n = _counts(checklist.items)
    table = Table(
        title=f"{checklist.id}: {escape(checklist.title)}",
        caption=f"{n['items']} items, {n['automated']} automated, {n['manual']} manual",
    )
    table.add_column("item", ratio=2, overflow="fold")
    table.add_column("severity", no_wrap=True)
    table.add_column("text", ratio=3)
    table.add_column("check", ratio=2, overflow="fold")
    for item in checklist.items:
        style = _SEVERITY_STYLE[item.severity]
        check = _check_summary(item, params=False)
        table.add_row(item.id, f"[{style}]{item.severity}[/]", escape(item.text), escape(check))
    _console().print(table)


@checklists_app.command("show")
def show(
    ident: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="A checklist id, an item id (<checklist>/<item>) or a probe kind (db.rls_enabled)."
        ),
    ],
    paths: PathsOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Without the probe kind's rule doc.")] = False,
    verbose: Verbose = False,
) -> None:
    """Show one checklist (its items), one item (its fields and what its check does), or a probe kind.

    For an item's check: what it checks, why it matters, an example of a failure, the fix, its parameters.

    Examples:
      msgops checklists show 000-messaging-production
      msgops checklists show 000-messaging-production/db.rls.enabled
      msgops checklists show db.rls_matrix        # a probe kind
      msgops checklists show team-chat/db.rooms -p team-chat.yaml
    """
    checklist_id, _, item_id = ident.partition("/")
    if not item_id and "." in checklist_id:  # checklist ids have no dots; probe kinds do
        _show_kind(checklist_id)
        return
    checklists = {c.id: c for c in _load(paths)}
    checklist = checklists.get(checklist_id)
    if checklist is None:
        raise _fail(f"no checklist {checklist_id!r} (known: {', '.join(checklists)}; give -p FILE for your own)")
    if not item_id:
        _show_checklist(checklist)
        return
    try:
        item = checklist.item(item_id)
    except KeyError:
        close = difflib.get_close_matches(item_id, [i.id for i in checklist.items], n=1)
        hint = f" (did you mean {checklist_id}/{close[0]}?)" if close else ""
        raise _fail(f"no item {item_id!r} in checklist {checklist_id!r}{hint}") from None
    _show_item(item)
    if item.check is not None and not quiet:
        _show_kind(item.check.kind)


def _show_kind(kind: str) -> None:
    found = registry().get(kind)
    if found is None:
        close = difflib.get_close_matches(kind, registry(), n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise _fail(f"no probe kind {kind!r}{hint}; `msgops checklists kinds` lists them")
    table = Table(title=f"check {kind}", show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in (("what", found.doc.what), ("why", found.doc.why), ("example", found.doc.example),
                        ("fix", found.doc.fix), ("params", _params_text(found))):
        table.add_row(name, escape(value))
    _console().print(table)


def _type_text(schema: dict[str, Any]) -> str:
    """A JSON Schema fragment of a parameter, in a few words."""
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    if "anyOf" in schema:
        return " or ".join(_type_text(s) for s in schema["anyOf"] if s.get("type") != "null")
    kind = schema.get("type")
    if kind == "array":
        least = schema.get("minItems")
        inner = _type_text(schema.get("items", {}))
        inner = f"({inner})" if " " in inner else inner
        return f"list of {inner}" + (f", at least {least}" if least else "")
    words = {"string": "text", "integer": "whole number", "number": "number", "boolean": "true or false"}
    text = words.get(str(kind), str(kind or "any"))
    bounds = [f">= {schema['minimum']}" if "minimum" in schema else "",
              f"> {schema['exclusiveMinimum']}" if "exclusiveMinimum" in schema else "",
              f"<= {schema['maximum']}" if "maximum" in schema else ""]
    return " ".join([text, *(b for b in bounds if b)])


def _params_text(found: Probe) -> str:
    schema = found.params.model_json_schema()
    required = set(schema.get("required", []))
    lines = []
    for name, prop in schema.get("properties", {}).items():
        given = prop.get("default")
        default = "required" if name in required else "optional" if given is None else f"default {json.dumps(given)}"
        lines.append(f"{name} ({default}): {_type_text(prop)}")
    return "\n".join(lines) or "none"


@checklists_app.command("kinds")
def kinds(quiet: Quiet = False, verbose: Verbose = False) -> None:
    """List the probe kinds a check may name, with what each checks.

    A check names one of these kinds and writes its parameters next to it.

    Examples:
      msgops checklists kinds
      msgops checklists show http.flow     # one kind, in full
    """
    if quiet:
        typer.echo("\n".join(sorted(registry())))
        return
    table = Table(title="Probe kinds", caption="msgops checklists show KIND: the whole rule and its parameters",
                  expand=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("params", ratio=1, overflow="fold")
    table.add_column("what", ratio=2, no_wrap=not verbose, overflow="fold" if verbose else "ellipsis")
    for kind, found in sorted(registry().items()):
        params = ", ".join(found.params.model_json_schema().get("properties", {})) or "-"
        table.add_row(kind, params, escape(found.doc.what))
    _console().print(table)


@checklists_app.command("schema")
def schema(quiet: Quiet = False, verbose: Verbose = False) -> None:
    """Print the JSON Schema of checklist files (every probe kind and its parameters).

    Editors complete and validate checklists with it; the same file ships as msgops/schemas/checklist.schema.json.
    For the YAML language server, start a checklist with `# yaml-language-server: $schema=checklist.schema.json`.

    Examples:
      msgops checklists schema > checklist.schema.json
      msgops checklists schema | jq '.["$defs"].Check.properties.kind.enum'
    """
    if verbose and not quiet:
        Console(stderr=True).print("[dim]the same schema ships as msgops/schemas/checklist.schema.json[/]")
    typer.echo(schema_text(), nl=False)


@checklists_app.command("coverage")
def coverage(
    paths: PathsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the totals line.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also each file's SHA-256.")] = False,
) -> None:
    """How many items each checklist has, and how many of them run automatically.

    The counts come from the checklist files alone: nothing is run.

    Examples:
      msgops checklists coverage
      msgops checklists coverage --json
      msgops checklists coverage -p ./checklists/ -p extra.yaml
    """
    checklists = _load(paths)
    rows = [{"id": c.id, "title": c.title, "sha256": c.sha256, **_counts(c.items)} for c in checklists]
    total = _counts([i for c in checklists for i in c.items])
    if as_json:
        typer.echo(json.dumps({"checklists": rows, "total": total}, indent=2, ensure_ascii=False))
        return
    if quiet:
        typer.echo(f"{total['items']} items, {total['automated']} automated, {total['manual']} manual "
                   f"({total['automated_pct']:.1f}% automated)")
        return
    columns = ("items", "automated", "manual")
    table = Table(title="Checklist coverage", show_footer=True)
    table.add_column("checklist", footer="total", no_wrap=True)
    for name in columns:
        table.add_column(name, justify="right", footer=str(total[name]))
    table.add_column("automated %", justify="right", footer=f"{total['automated_pct']:.1f}%", no_wrap=True)
    if verbose:
        table.add_column("sha256", footer="")
    for r in rows:
        table.add_row(r["id"], *(str(r[k]) for k in columns), f"{r['automated_pct']:.1f}%",
                      *([r["sha256"][:16]] if verbose else []))
    _console().print(table)
