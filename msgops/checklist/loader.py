"""Load checklist YAML files, with errors that name the file, the line and what is wrong."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from msgops.checklist.model import Checklist, CheckParamError


class ChecklistError(Exception):
    """A checklist file is invalid. ``str()`` is one line: ``file:line: what is wrong``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems or ["invalid checklist"]
        more = len(self.problems) - 1
        super().__init__(self.problems[0] + (f" (and {more} more problem{'s' * (more > 1)})" if more else ""))


# ---------------------------------------------------------------------------------------------------
# YAML with line numbers
# ---------------------------------------------------------------------------------------------------


class _Mapping(dict[Any, Any]):
    """A YAML mapping that remembers its own line and the line of each key (1-based)."""

    line: int = 1
    key_lines: dict[Any, int]


# libyaml's parser when PyYAML has it (five times faster on the bundled checklists); the
# constructor, and so the line bookkeeping below, is the same Python code either way.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[_Mapping]:
    data = _Mapping()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in data.key_lines:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {data.key_lines[key]})",
                key_node.start_mark,
            )
        data.key_lines[key] = key_node.start_mark.line + 1
        data[key] = loader.construct_object(value_node, deep=True)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _display(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


# ---------------------------------------------------------------------------------------------------
# Validation errors -> file:line messages
# ---------------------------------------------------------------------------------------------------


def _locate(data: Any, loc: tuple[int | str, ...], param: str | None) -> int:
    """The line of the deepest mapping key the error location reaches."""
    node, line = data, getattr(data, "line", 1)
    for part in (*loc, param) if param else loc:
        if isinstance(node, _Mapping):
            line = node.key_lines.get(part, node.line)
            if part not in node:
                break
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            line = getattr(node, "line", line)
        else:
            break
    return line


def _describe(err: Any) -> tuple[str, str | None]:
    """A pydantic error as (message, the check param it concerns or None)."""
    field = next((str(p) for p in reversed(err["loc"]) if isinstance(p, str)), "")
    etype, ctx = err["type"], err.get("ctx") or {}
    if etype == "value_error":
        cause = ctx.get("error")
        return str(cause), getattr(cause, "param", None) if isinstance(cause, CheckParamError) else None
    if etype == "missing":
        return f"missing required field {field!r}", None
    if etype == "extra_forbidden":
        return f"unknown field {field!r}", None
    if etype == "literal_error" and field == "version":
        return f"unsupported version {err['input']!r} (expected 1)", None
    return f"{field}: {err['msg']} (got {err['input']!r})", None


def _problems(display: str, data: Any, exc: ValidationError) -> list[str]:
    items = data.get("items") if isinstance(data, dict) else None
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        message, param = _describe(err)
        line = _locate(data, loc, param)
        where = ""
        if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int) and isinstance(items, list):
            raw = items[loc[1]] if loc[1] < len(items) else None
            item_id = raw.get("id") if isinstance(raw, dict) else None
            where = f"item {item_id!r}: " if isinstance(item_id, str) else f"item #{loc[1] + 1}: "
        out.append(f"{display}:{line}: {where}{message}")
    return out


def _duplicates(display: str, data: dict[str, Any]) -> list[str]:
    first: dict[str, int] = {}
    out = []
    for raw in data.get("items") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            continue
        line = getattr(raw, "key_lines", {}).get("id", getattr(raw, "line", 1))
        if raw["id"] in first:
            item_id = raw["id"]
            out.append(f"{display}:{line}: item {item_id!r}: duplicate id (first at line {first[item_id]})")
        else:
            first[raw["id"]] = line
    return out


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------


def load_checklist(path: str | os.PathLike[str]) -> Checklist:
    """Load and validate one checklist file; raise ChecklistError naming file and line."""
    path = Path(path)
    display = _display(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ChecklistError([f"{display}: cannot read checklist: {e.strerror or e}"]) from None
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_LineLoader)  # a SafeLoader subclass
    except UnicodeDecodeError as e:
        raise ChecklistError([f"{display}: not UTF-8 text ({e.reason})"]) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        detail = e.problem or e.context or "invalid YAML"
        if e.problem and e.context and e.context_mark and e.context_mark.line + 1 != line:
            detail += f" ({e.context} started at line {e.context_mark.line + 1})"
        raise ChecklistError([f"{display}:{line}: YAML syntax error: {detail}"]) from None
    if not isinstance(data, dict):
        raise ChecklistError([f"{display}:1: expected a mapping with version, id, title and items"])
    if isinstance(data.get("items"), list):
        dup = _duplicates(display, data)
        if dup:
            raise ChecklistError(dup)
    try:
        checklist = Checklist.model_validate(data)
    except ValidationError as e:
        raise ChecklistError(_problems(display, data, e)) from None
    checklist._path = path
    checklist._sha256 = hashlib.sha256(raw).hexdigest()
    return checklist


def _expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file()))
        else:
            files.append(p)
    return files


def load_checklists(
    paths_or_dir: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None,
) -> list[Checklist]:
    """Load checklists from files and/or folders (default: the built-in checklists folder)."""
    if paths_or_dir is None:
        from msgops.paths import checklists_dir

        try:
            paths_or_dir = checklists_dir()
        except FileNotFoundError as e:
            raise ChecklistError([str(e)]) from None
    if isinstance(paths_or_dir, str | os.PathLike):
        paths_or_dir = [paths_or_dir]
    files = _expand(paths_or_dir)
    if not files:
        raise ChecklistError(["no checklist files found (expected *.yaml files)"])
    checklists: list[Checklist] = []
    seen: dict[str, Path] = {}
    for f in files:
        checklist = load_checklist(f)
        if checklist.id in seen:
            other = _display(seen[checklist.id])
            raise ChecklistError([f"{_display(f)}:1: checklist id {checklist.id!r} is also used by {other}"])
        seen[checklist.id] = f
        checklists.append(checklist)
    return checklists
