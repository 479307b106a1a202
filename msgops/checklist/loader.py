"""Load checklist YAML files, with errors that name the file, the line and what is wrong: every
problem of a file at once. Built-in checklists and a team's own files load side by side."""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
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


def _describe(err: Any) -> list[tuple[str, str | None]]:
    """A pydantic error as (message, the check param it concerns or None) pairs: a check's own
    validation reports every problem of its parameters at once."""
    field = next((str(p) for p in reversed(err["loc"]) if isinstance(p, str)), "")
    etype, ctx = err["type"], err.get("ctx") or {}
    if etype == "value_error":
        cause = ctx.get("error")
        if isinstance(cause, CheckParamError):
            return [(p.message, p.param) for p in cause.problems]
        return [(str(cause), None)]
    if etype == "missing":
        return [(f"missing required field {field!r}", None)]
    if etype == "extra_forbidden":
        return [(f"unknown field {field!r}", None)]
    if etype == "literal_error" and field == "version":
        return [(f"unsupported version {err['input']!r} (expected 1)", None)]
    return [(f"{field}: {err['msg']} (got {err['input']!r})", None)]


def _problems(display: str, data: Any, exc: ValidationError) -> list[tuple[int, str]]:
    items = data.get("items") if isinstance(data, dict) else None
    out = []
    for err in exc.errors():
        if err["type"] == "duplicate_item_id":  # reported with both lines by _duplicates
            continue
        loc = tuple(err["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int) and isinstance(items, list):
            raw = items[loc[1]] if loc[1] < len(items) else None
            item_id = raw.get("id") if isinstance(raw, dict) else None
            where = f"item {item_id!r}: " if isinstance(item_id, str) else f"item #{loc[1] + 1}: "
        for message, param in _describe(err):
            line = _locate(data, loc, param)
            out.append((line, f"{display}:{line}: {where}{message}"))
    return out


def _duplicates(display: str, data: dict[str, Any]) -> list[tuple[int, str]]:
    first: dict[str, int] = {}
    out = []
    for raw in data.get("items") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            continue
        line = getattr(raw, "key_lines", {}).get("id", getattr(raw, "line", 1))
        if raw["id"] in first:
            item_id = raw["id"]
            out.append((line, f"{display}:{line}: item {item_id!r}: duplicate id (first at line {first[item_id]})"))
        else:
            first[raw["id"]] = line
    return out


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------


def _builtin_dir() -> Path | None:
    from msgops.paths import checklists_dir

    try:
        return checklists_dir().resolve()
    except FileNotFoundError:
        return None


def is_builtin(path: str | os.PathLike[str]) -> bool:
    """Whether a checklist file is one of the built-in checklists (which must cite their seed)."""
    return Path(path).resolve().parent == _builtin_dir()


def load_checklist(path: str | os.PathLike[str], *, builtin: bool | None = None) -> Checklist:
    """Load and validate one checklist file; raise ChecklistError listing every problem, each as
    ``file:line: what is wrong``.

    A built-in checklist (``builtin``, by default: the file lives in the built-in folder) must name
    its seed and give each item's seed line; any other checklist may leave them out.
    """
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
    problems = _duplicates(display, data) if isinstance(data.get("items"), list) else []
    context = {"builtin": is_builtin(path) if builtin is None else builtin}
    try:
        checklist = Checklist.model_validate(data, context=context)
    except ValidationError as e:
        problems += _problems(display, data, e)
    if problems:
        raise ChecklistError([message for _, message in sorted(problems, key=lambda p: p[0])])
    checklist._path = path
    checklist._sha256 = hashlib.sha256(raw).hexdigest()
    return checklist


def _expand(paths: Iterable[str | os.PathLike[str]], problems: list[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
            if not found:
                problems.append(f"{_display(p)}: no checklist files in this folder (expected *.yaml)")
            files.extend(found)
        else:
            files.append(p)
    return files


def load_checklists(
    paths_or_dir: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None,
) -> list[Checklist]:
    """Load checklists from files and/or folders (default: the built-in checklists folder).

    Every file is read and every problem of every file is reported together in one ChecklistError;
    two checklists with the same id are an error naming both files.
    """
    if paths_or_dir is None:
        builtin = _builtin_dir()
        if builtin is None:
            raise ChecklistError(["msgops data folder 'checklists' not found; reinstall msgops"])
        paths_or_dir = builtin
    if isinstance(paths_or_dir, str | os.PathLike):
        paths_or_dir = [paths_or_dir]
    problems: list[str] = []
    files = _expand(paths_or_dir, problems)
    if not files and not problems:
        problems.append("no checklist files given (expected *.yaml files or folders holding them)")
    checklists: list[Checklist] = []
    seen: dict[str, Path] = {}
    read: set[Path] = set()
    for f in files:
        if f.resolve() in read:  # the same file named twice (a folder and a file in it): load it once
            continue
        read.add(f.resolve())
        try:
            checklist = load_checklist(f)
        except ChecklistError as e:
            problems.extend(e.problems)
            continue
        if checklist.id in seen:
            other = _display(seen[checklist.id])
            problems.append(f"{_display(f)}: checklist id {checklist.id!r} is also used by {other} "
                            "(checklist ids must be unique: rename one)")
            continue
        seen[checklist.id] = f
        checklists.append(checklist)
    if problems:
        raise ChecklistError(problems)
    return checklists


def _builtin_ids() -> list[str]:
    builtin = _builtin_dir()
    return sorted(f.stem for f in builtin.glob("*.yaml")) if builtin else []


def looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.endswith((".yaml", ".yml"))


def split_selection(specs: Sequence[str]) -> tuple[list[str], list[Path]]:
    """Sort ``--checklist`` values into built-in ids and paths of the user's files or folders.

    A value that names a built-in checklist is that checklist; otherwise it is a path (an existing
    file or folder, or something that looks like a path). Anything else is a ChecklistError that
    lists the built-in ids.
    """
    known = _builtin_ids()
    ids: list[str] = []
    paths: list[Path] = []
    for spec in specs:
        if spec in known and not looks_like_path(spec):
            ids.append(spec)
        elif looks_like_path(spec) or Path(spec).exists():
            paths.append(Path(spec))
        else:
            close = difflib.get_close_matches(spec, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ChecklistError([f"no built-in checklist {spec!r} and no file or folder of that name "
                                  f"({hint}built-in: {', '.join(known)}; or give the path of a checklist file)"])
    return ids, paths


def load_selection(
    builtin_ids: Sequence[str] | None = None, paths: Sequence[str | os.PathLike[str]] = ()
) -> list[Checklist]:
    """The checklists a run uses: the named built-ins, then the user's checklist files and folders.

    ``builtin_ids`` None means every built-in checklist, ``[]`` none of them; ``paths`` are added
    after them, in order. Every problem of every file is reported in one ChecklistError, and so is
    an id used by two checklists (naming both files).
    """
    builtin = _builtin_dir()
    chosen: list[str | os.PathLike[str]] = []
    if builtin_ids is None:
        if builtin is not None:
            chosen.append(builtin)
    else:
        known = _builtin_ids()
        unknown = [i for i in builtin_ids if i not in known]
        if unknown:
            raise ChecklistError([f"unknown built-in checklist {i!r} (built-in: {', '.join(known)}; "
                                  "or give the path of a checklist file)" for i in unknown])
        chosen.extend(builtin / f"{i}.yaml" for i in dict.fromkeys(builtin_ids) if builtin is not None)
    chosen.extend(paths)
    if not chosen:
        raise ChecklistError(["no checklists selected: name a built-in checklist or give a checklist file"])
    return load_checklists(chosen)
