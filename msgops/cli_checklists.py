"""`msgops checklists`: list the checklists, show items, and report how much of them is automated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from msgops.checklist import Checklist, ChecklistError, Item, load_checklists

checklists_app = typer.Typer(
    name="checklists",
    help="Inspect the checklists: what they contain and how much of them runs automatically.",
    no_args_is_help=True,
)

PathsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--path", "-p", help="Checklist file or folder (repeatable); default: the built-in checklists."
    ),
]

_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _console() -> Console:
    return Console()


def _load(paths: list[Path] | None) -> list[Checklist]:
    try:
        return load_checklists(paths or None)
    except ChecklistError as e:
        Console(stderr=True).print(f"[red]{escape(str(e))}[/red]", soft_wrap=True, highlight=False)
        raise typer.Exit(code=3) from None


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
def list_checklists(paths: PathsOption = None) -> None:
    """List checklists with their item counts."""
    table = Table(title="Checklists")
    table.add_column("checklist", no_wrap=True)
    table.add_column("title")
    for name in ("items", "automated", "manual"):
        table.add_column(name, justify="right")
    for c in _load(paths):
        n = _counts(c.items)
        table.add_row(c.id, escape(c.title), str(n["items"]), str(n["automated"]), str(n["manual"]))
    _console().print(table)


def _show_item(item: Item) -> None:
    table = Table(title=item.full_id, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows = [
        ("text", item.text),
        ("section", " > ".join(item.section)),
        ("line", str(item.line)),
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
        str, typer.Argument(metavar="ID", help="A checklist id, or an item id: <checklist>/<item>.")
    ],
    paths: PathsOption = None,
) -> None:
    """Show one checklist (its items) or one item (all its fields)."""
    checklists = {c.id: c for c in _load(paths)}
    checklist_id, _, item_id = ident.partition("/")
    checklist = checklists.get(checklist_id)
    if checklist is None:
        raise typer.BadParameter(
            f"no checklist {checklist_id!r} (known: {', '.join(checklists)})", param_hint="ID"
        )
    if not item_id:
        _show_checklist(checklist)
        return
    try:
        item = checklist.item(item_id)
    except KeyError:
        raise typer.BadParameter(
            f"no item {item_id!r} in checklist {checklist_id!r}", param_hint="ID"
        ) from None
    _show_item(item)


@checklists_app.command("coverage")
def coverage(
    paths: PathsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """How many items each checklist has, and how many of them run automatically."""
    checklists = _load(paths)
    rows = [{"id": c.id, "title": c.title, "sha256": c.sha256, **_counts(c.items)} for c in checklists]
    total = _counts([i for c in checklists for i in c.items])
    if as_json:
        typer.echo(json.dumps({"checklists": rows, "total": total}, indent=2, ensure_ascii=False))
        return
    columns = ("items", "automated", "manual")
    table = Table(title="Checklist coverage", show_footer=True)
    table.add_column("checklist", footer="total", no_wrap=True)
    for name in columns:
        table.add_column(name, justify="right", footer=str(total[name]))
    table.add_column("automated %", justify="right", footer=f"{total['automated_pct']:.1f}%", no_wrap=True)
    for r in rows:
        table.add_row(r["id"], *(str(r[k]) for k in columns), f"{r['automated_pct']:.1f}%")
    _console().print(table)
