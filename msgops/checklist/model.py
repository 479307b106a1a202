"""The checklist data model.

A checklist is data: every item keeps its seed's wording and source line, a severity, and either an
automated ``check`` (a probe kind plus parameters) or ``manual: true`` with what a person confirms.
A check's kind and parameters are validated against the probe registry (msgops.probes), where each
kind declares its parameters. The built-in checklists cite their seed (``seed``, each item's
``line``); a team's own checklist need not.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

Severity = Literal["critical", "high", "medium", "low", "info"]
ItemKind = Literal["checkbox", "requirement"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
ITEM_KINDS: tuple[str, ...] = get_args(ItemKind)

# ---------------------------------------------------------------------------------------------------
# Checks are validated against the probe registry: each kind's parameters are a pydantic model
# declared next to the probe's code (see msgops.probes.params).
# ---------------------------------------------------------------------------------------------------

_FAMILIES = ("db", "http", "realtime", "env", "load")


class CheckProblem(NamedTuple):
    param: str  # the key the problem concerns ("kind" for the kind itself and for missing params)
    message: str


class CheckParamError(ValueError):
    """A check names an unknown kind or has bad parameters: every problem, each with the key it concerns."""

    def __init__(self, problems: list[CheckProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems

    @property
    def param(self) -> str:
        return self.problems[0].param


def _probe_kinds() -> Mapping[str, Any]:
    from msgops.probes import registry  # imported when first needed: it loads every probe family

    return registry()


def probe_kinds() -> list[str]:
    """Every probe kind a check may name."""
    return sorted(_probe_kinds())


def _unknown_kind(kind: str) -> str:
    kinds = _probe_kinds()
    close = difflib.get_close_matches(kind, kinds, n=3)
    if close:
        hint = f"did you mean {' or '.join(close)}?"
    else:
        same = sorted(k for k in kinds if k.startswith(kind.split(".", 1)[0] + "."))
        hint = f"expected one of {', '.join(same)}" if same else f"families: {', '.join(_FAMILIES)}"
    return f"unknown probe kind {kind!r} ({hint})"


def _param_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _param_problem(kind: str, model: type[BaseModel], err: ErrorDetails) -> CheckProblem:
    loc = err["loc"]
    name = str(loc[0]) if loc else "kind"
    index = next((p for p in loc[1:] if isinstance(p, int)), None)
    what = f"param {name!r}" + (f" (entry {index + 1})" if index is not None else "")
    etype, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if etype == "extra_forbidden":
        known = ", ".join(_param_names(model)) or "none"
        return CheckProblem(name, f"check {kind!r} has unknown param {name!r} (expected: {known})")
    if etype == "missing":
        return CheckProblem("kind", f"check {kind!r} is missing required param {name!r}")
    if etype == "one_of":
        return CheckProblem(name, f"check {kind!r}: {err['msg']}")
    if etype == "literal_error":
        return CheckProblem(name, f"check {kind!r}: {what}: unknown value {value!r} (expected {ctx.get('expected')})")
    if etype == "string_pattern_mismatch":  # the only pattern: a name is not blank
        return CheckProblem(name, f"check {kind!r}: {what} must not be blank")
    message = err["msg"][:1].lower() + err["msg"][1:]
    return CheckProblem(name, f"check {kind!r}: {what}: {message}, got {value!r}")


def validate_check(kind: str, params: Mapping[str, Any]) -> None:
    """Raise CheckParamError listing every problem with a check's kind or parameters."""
    probe = _probe_kinds().get(kind)
    if probe is None:
        raise CheckParamError([CheckProblem("kind", _unknown_kind(kind))])
    try:
        probe.params.model_validate(dict(params))
    except ValidationError as exc:
        raise CheckParamError([_param_problem(kind, probe.params, e) for e in exc.errors()]) from None


# ---------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------

def _builtin(info: ValidationInfo) -> bool:
    """Validating a built-in checklist (``context={"builtin": True}``), which must cite its seed."""
    return isinstance(info.context, dict) and bool(info.context.get("builtin"))


ITEM_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$")
CHECKLIST_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class Check(BaseModel):
    """An automated check: a probe kind plus its parameters (written inline next to ``kind``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _inline_params(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise ValueError("check must be a mapping with a 'kind' and its params")
        if "params" in data:
            return data
        if "kind" not in data:
            raise CheckParamError([CheckProblem("kind", "check has no 'kind'")])
        return {"kind": data["kind"], "params": {k: v for k, v in data.items() if k != "kind"}}

    @model_validator(mode="after")
    def _known_kind(self) -> Check:
        validate_check(self.kind, self.params)
        return self

    @property
    def family(self) -> str:
        return self.kind.split(".", 1)[0]


class Item(BaseModel):
    """One checklist item, in the seed's own words, automated or manual."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["check"]}, {"required": ["manual", "confirm"]}]},
    )

    id: str = Field(json_schema_extra={"pattern": ITEM_ID.pattern})
    text: str = Field(min_length=1)
    section: list[str] = Field(default_factory=list)
    line: int | None = Field(default=None, ge=1, validate_default=True)
    kind: ItemKind = "checkbox"
    severity: Severity
    tags: list[str] = Field(default_factory=list)
    check: Check | None = None
    manual: bool = False
    confirm: str | None = None
    why: str | None = None
    optional: bool = False

    _checklist_id: str = PrivateAttr(default="")

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        if isinstance(v, str) and not ITEM_ID.match(v):
            raise ValueError(f"invalid item id {v!r} (use lowercase dotted words, like db.rls.enabled)")
        return v

    @field_validator("line")
    @classmethod
    def _line(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is None and _builtin(info):
            raise ValueError("missing required field 'line' (a built-in checklist cites its seed's line)")
        return v

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, v: Any) -> Any:
        if v not in SEVERITIES:
            raise ValueError(f"unknown severity {v!r} (expected {', '.join(SEVERITIES)})")
        return v

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, v: Any) -> Any:
        if v not in ITEM_KINDS:
            raise ValueError(f"unknown item kind {v!r} (expected {', '.join(ITEM_KINDS)})")
        return v

    @model_validator(mode="after")
    def _check_or_manual(self) -> Item:
        if self.check is not None and self.manual:
            raise ValueError("has both 'check' and 'manual: true' (an item is automated or manual, not both)")
        if self.check is None and not self.manual:
            raise ValueError("needs either a 'check' or 'manual: true' with 'confirm'")
        if self.manual and not (self.confirm and self.confirm.strip()):
            raise ValueError("manual item needs 'confirm' (what the person attests)")
        if self.confirm and not self.manual:
            raise ValueError("'confirm' is only for manual items")
        return self

    @property
    def automated(self) -> bool:
        return self.check is not None

    @property
    def checklist_id(self) -> str:
        return self._checklist_id

    @property
    def full_id(self) -> str:
        return f"{self._checklist_id}/{self.id}" if self._checklist_id else self.id


class Checklist(BaseModel):
    """A checklist file: metadata and its items, in seed order."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    id: str = Field(json_schema_extra={"pattern": CHECKLIST_ID.pattern})
    title: str = Field(min_length=1)
    seed: str | None = Field(default=None, validate_default=True)
    items: list[Item]

    _path: Path | None = PrivateAttr(default=None)
    _sha256: str = PrivateAttr(default="")

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        if isinstance(v, str) and not CHECKLIST_ID.match(v):
            raise ValueError(f"invalid checklist id {v!r} (use lowercase words and dashes)")
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None and _builtin(info):
            raise ValueError("missing required field 'seed' (a built-in checklist names its seed file)")
        return v

    @model_validator(mode="after")
    def _unique_items(self) -> Checklist:
        seen: set[str] = set()
        for item in self.items:
            if item.id in seen:
                raise PydanticCustomError("duplicate_item_id", "duplicate item id {id!r}", {"id": item.id})
            seen.add(item.id)
            item._checklist_id = self.id
        return self

    @property
    def path(self) -> Path | None:
        """The file this checklist was loaded from (None when built in code)."""
        return self._path

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the file's bytes ("" when built in code)."""
        return self._sha256

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id or item.full_id == item_id:
                return item
        raise KeyError(item_id)

    @property
    def automated(self) -> list[Item]:
        return [i for i in self.items if i.automated]

    @property
    def manual(self) -> list[Item]:
        return [i for i in self.items if i.manual]
