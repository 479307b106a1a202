"""The parameters of a probe kind, as a pydantic model derived from the probe function's signature.

A probe declares its parameters once, in its own signature, with precise type hints::

    async def tables_exist(ctx: Context, tables: Names, schema: Name = "public") -> Outcome: ...

Every parameter after ``ctx`` becomes a field of the kind's model (required when it has no default);
any other key is refused (``extra="forbid"``), unless the probe takes ``**kwargs``. Values are checked
strictly, as written in YAML: ``"5"`` is not a number, ``1`` is not ``true``.

``Literal[...]`` spells a fixed set of values. When the allowed values live in a registry instead
(the RLS scenarios registered with ``@scenario``, the flows registered with ``@flow``, the lint SQL
files on disk), ``OneOf`` reads that registry each time a value is validated or a schema generated,
so registering a new one is all it takes::

    async def rls_matrix(ctx: Context, scenario: Annotated[str, OneOf(SCENARIOS, "scenario")]) -> Outcome: ...
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, create_model
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

Name = Annotated[str, Field(min_length=1, pattern=r"\S")]
"""A non-blank name: a table, an index, a variable."""

Names = Annotated[list[Name], Field(min_length=1)]
"""A non-empty list of names."""


class OneOf:
    """``Annotated`` metadata: the value is one of the names a registry holds when it is validated.

    ``source`` is a live collection (a registry dict: its keys) or a function returning the names;
    ``noun`` names what the value is in messages ("unknown flow 'x' (expected one of ...)").
    """

    def __init__(self, source: Iterable[str] | Callable[[], Iterable[str]], noun: str) -> None:
        self.source = source
        self.noun = noun

    def names(self) -> list[str]:
        found = self.source() if callable(self.source) else self.source
        return sorted(found)

    def _check(self, value: str) -> str:
        allowed = self.names()
        if value not in allowed:
            raise PydanticCustomError(
                "one_of",
                "unknown {noun} {value} (expected one of {expected})",
                {"noun": self.noun, "value": repr(value), "expected": ", ".join(allowed)},
            )
        return value

    def __get_pydantic_core_schema__(self, source_type: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source_type))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["enum"] = self.names()
        return json_schema

    def __repr__(self) -> str:
        return f"OneOf({self.noun})"


class ParamsBase(BaseModel):
    """The base of every probe kind's parameter model: no unknown keys, no silent coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class OpenParamsBase(ParamsBase):
    """The base for a probe that takes ``**kwargs``: it accepts keys beyond its named parameters."""

    model_config = ConfigDict(extra="allow")


def model_name(kind: str) -> str:
    """``db.rls_matrix`` -> ``DbRlsMatrixParams`` (the model's name and its JSON Schema title)."""
    return "".join(part.capitalize() for part in kind.replace(".", "_").split("_")) + "Params"


def derive_params_model(kind: str, fn: Callable[..., Any]) -> type[BaseModel]:
    """A pydantic model of ``fn``'s parameters after the first (the probe context)."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except NameError as exc:
        raise TypeError(f"probe {kind!r}: cannot resolve the type hints of {fn.__qualname__}: {exc}") from None
    parameters = list(inspect.signature(fn).parameters.values())[1:]  # the first is the context
    fields: dict[str, Any] = {}
    base = ParamsBase
    for p in parameters:
        if p.kind == p.VAR_KEYWORD:
            base = OpenParamsBase
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.name not in hints:
            raise TypeError(f"probe {kind!r}: parameter {p.name!r} of {fn.__qualname__} has no type hint")
        default = ... if p.default is p.empty else p.default
        if hasattr(BaseModel, p.name):  # e.g. `schema`: keep the key, rename the attribute
            fields[p.name + "_"] = (hints[p.name], Field(default, alias=p.name))
        else:
            fields[p.name] = (hints[p.name], default)
    model: type[BaseModel] = create_model(
        model_name(kind), __base__=base, __module__=fn.__module__, **fields
    )
    model.__doc__ = f"Parameters of the {kind} check."
    return model


__all__ = ["Name", "Names", "OneOf", "OpenParamsBase", "ParamsBase", "derive_params_model", "model_name"]
