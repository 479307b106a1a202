"""Turning pydantic validation errors into one line a person can act on.

Every input file msgops reads (msgops.yaml, waivers, attestations, load profiles) is parsed into a
pydantic model; this module words what went wrong: the key path, what is wrong and what is allowed,
and every problem of the file at once:

    msgops.yaml: 2 problems: checks.concurrency: must be >= 1 (got 0); environment: must be one of
    development, staging, production (got 'prod')
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from msgops.errors import UserError

_TYPE_WORDS = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "string_type": "a string", "bool_type": "true or false", "bool_parsing": "true or false",
    "list_type": "a list", "tuple_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "date_type": "a date like 2026-12-31",
    "date_parsing": "a date like 2026-12-31", "date_from_datetime_parsing": "a date like 2026-12-31",
    "date_from_datetime_inexact": "a date like 2026-12-31 (no time of day)",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_UNION_TAGS = {"int", "str", "float", "bool", "dict", "list", "none", "date", "datetime"}


@dataclass(frozen=True)
class Problem:
    loc: tuple[str | int, ...]
    message: str

    @property
    def where(self) -> str:
        out = ""
        for part in self.loc:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.loc else self.message


class InputError(UserError):
    """An invalid input file: every problem, in one line, exit code 3."""

    def __init__(self, display: str, problems: Sequence[Problem | str],
                 lines: Mapping[tuple[Any, ...], int] | None = None) -> None:
        self.display = display
        self.problems = [p if isinstance(p, Problem) else Problem((), p) for p in problems]
        super().__init__(one_line(display, self.problems, lines))


def one_line(display: str, problems: Sequence[Problem], lines: Mapping[tuple[Any, ...], int] | None = None) -> str:
    """`file: key: problem`, or `file: N problems: key: problem; key: problem` (with `:line` when known)."""
    if len(problems) == 1:
        line = f":{line_of(lines, problems[0].loc)}" if lines is not None else ""
        return f"{display}{line}: {problems[0]}"
    parts = [str(p) + (f" (line {line_of(lines, p.loc)})" if lines is not None else "") for p in problems]
    return f"{display}: {len(problems)} problems: " + "; ".join(parts)


def got(value: Any, limit: int = 60) -> str:
    """A value as the user wrote it in YAML (true, null), shortened."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    text = value.isoformat() if isinstance(value, date) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _real_loc(loc: Iterable[str | int], root: type[BaseModel]) -> tuple[str | int, ...]:
    """The key path without the tags pydantic adds for union members and wrapped validators."""
    out: list[str | int] = []
    for part in loc:
        if not isinstance(part, int) and _field(model_at(root, out), part) is None and (
                part in _UNION_TAGS or any(c in part for c in "[]()'-")):
            continue
        out.append(part)
    return tuple(out)


def _field(model: type[BaseModel] | None, key: str) -> FieldInfo | None:
    """The field of `model` that the key `key` (its name or alias) sets."""
    if model is None:
        return None
    return next((f for name, f in model.model_fields.items() if key in (name, f.alias)), None)


def _unwrap(annotation: Any) -> list[Any]:
    """The types a field annotation may hold (Annotated, Optional and unions unwrapped)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [t for arg in get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class found at a key path, to list the keys it allows."""
    current: Any = root
    for part in loc:
        if isinstance(part, int):
            items = [get_args(t)[0] for t in _unwrap(current) if get_origin(t) in (list, tuple) and get_args(t)]
            current = items[0] if items else None
            continue
        models = [t for t in _unwrap(current) if isinstance(t, type) and issubclass(t, BaseModel)]
        field = _field(models[0], part) if models else None
        if field is None:
            return None
        current = field.annotation
    models = [t for t in _unwrap(current) if isinstance(t, type) and issubclass(t, BaseModel)]
    return models[0] if models else None


def _keys(model: type[BaseModel] | None) -> str:
    return ", ".join(f.alias or name for name, f in model.model_fields.items()) if model else ""


def _did_you_mean(key: str, parent: type[BaseModel] | None) -> str | None:
    """A close spelling at the same level, or the same key one level down (`checks.concurrency`)."""
    if parent is None:
        return None
    names = [f.alias or n for n, f in parent.model_fields.items()]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
    if close:
        return close[0]
    for name in names:
        child = model_at(parent, (name,))
        if child is not None and key in child.model_fields:
            return f"{name}.{key}"
    return None


def _describe(error: Mapping[str, Any], root: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        parent = model_at(root, loc[:-1])
        hint = _did_you_mean(str(loc[-1]), parent) if loc else None
        allowed = _keys(parent)
        return "unknown setting" + (f" (did you mean {hint}?)" if hint else f" (allowed: {allowed})" if allowed else "")
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        shown = f"{bound:g}" if isinstance(bound, int | float) else bound
        return f"must be {_BOUNDS[kind]} {shown} (got {got(value)})"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {expected} (got {got(value)})"
    if kind in ("string_too_short", "too_short") and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        keys = _keys(model_at(root, loc))
        return f"must be a mapping{f' with keys {keys}' if keys else ''} (got {got(value)})"
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]} (got {got(value)})"
    if kind == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
        return f"{message} (got {got(value)})" if message.startswith("must ") else message
    return f"{error['msg']} (got {got(value)})"


def problems(exc: ValidationError, root: type[BaseModel], prefix: tuple[str | int, ...] = ()) -> list[Problem]:
    """One problem per key path; alternatives of a union are merged (`must be an integer or auto`)."""
    grouped: dict[tuple[str | int, ...], list[str]] = {}
    for error in exc.errors(include_url=False):
        loc = _real_loc(error["loc"], root)
        message = _describe(error, root, loc)
        messages = grouped.setdefault(prefix + loc, [])
        if message not in messages:
            messages.append(message)
    out = []
    for loc, messages in grouped.items():
        if len(messages) > 1:
            wanted = [m.split(" (got ")[0].removeprefix("must be ").removeprefix("one of ") for m in messages]
            tail = messages[0][messages[0].find(" (got "):] if " (got " in messages[0] else ""
            messages = ["must be " + " or ".join(wanted) + tail]
        out.append(Problem(loc, messages[0]))
    return out


def read_yaml(text: str, display: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """The document and the line of every key path (for messages); invalid YAML is an InputError."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise UserError(f"{display}:{mark.line + 1 if mark else 1}: invalid YAML: {exc.problem or exc}; "
                        "fix the file") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{display}: invalid YAML: {exc}; fix the file") from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _lines(node, (), lines)
    return data, lines


def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*path, key)] = key_node.start_mark.line + 1
            _lines(value_node, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)


def line_of(lines: Mapping[tuple[Any, ...], int] | None, loc: Sequence[Any]) -> int:
    if not lines:
        return 1
    loc = tuple(loc)
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1
