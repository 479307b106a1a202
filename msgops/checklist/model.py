"""The checklist data model and the registry of probe kinds a check may name.

A checklist is data: every item keeps its seed's wording and source line, a severity, and either an
automated ``check`` (a probe kind plus parameters) or ``manual: true`` with what a person confirms.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

Severity = Literal["critical", "high", "medium", "low", "info"]
ItemKind = Literal["checkbox", "requirement"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
ITEM_KINDS: tuple[str, ...] = get_args(ItemKind)

# ---------------------------------------------------------------------------------------------------
# Probe kinds: kind -> required params, optional params, and the allowed values of enumerated params.
# ---------------------------------------------------------------------------------------------------


def _words(names: str) -> list[str]:
    return names.split()


PROBE_KINDS: dict[str, frozenset[str]] = {
    kind: frozenset(_words(required))
    for kind, required in {
        "db.tables_exist": "tables",
        "db.columns_exist": "table columns",
        "db.indexes_exist": "indexes",
        "db.functions_exist": "functions",
        "db.triggers_exist": "functions",
        "db.extensions": "extensions",
        "db.rls_enabled": "tables",
        "db.rls_policies": "tables",
        "db.lint": "lint",
        "db.rls_matrix": "scenario",
        "db.publication": "tables",
        "db.query_plan": "query",
        "db.autovacuum": "tables",
        "db.pool": "",
        "db.roles": "roles",
        "db.migrations_applied": "",
        "db.content_removed_on_delete": "",
        "db.tables_partition_advice": "table rows",
        "http.health": "",
        "http.status_codes": "codes",
        "http.auth_required": "cases",
        "http.protected_routes": "",
        "http.cors": "",
        "http.security_headers": "headers",
        "http.tls": "",
        "http.rate_limit": "action",
        "http.validation_limit": "field",
        "http.xss_sanitized": "",
        "http.sql_injection": "",
        "http.no_email_leak": "",
        "http.openapi_docs": "",
        "http.endpoints": "endpoints",
        "http.metrics": "",
        "http.flow": "flow",
        "http.logging": "",
        "http.attachments": "check",
        "http.notifications": "check",
        "realtime.auth_required": "",
        "realtime.delivery": "",
        "realtime.no_leak": "",
        "realtime.event": "event",
        "realtime.typing_ttl": "",
        "realtime.presence": "",
        "realtime.resume": "",
        "realtime.multi_tab": "",
        "env.vars": "vars",
        "env.url": "var",
        "env.service_key": "var",
        "env.tls_urls": "vars",
        "env.dotenv_ignored": "",
        "env.no_secrets_in_git": "",
        "env.log_level": "",
        "load.threshold": "metric op value",
    }.items()
}

PROBE_OPTIONAL_PARAMS: dict[str, frozenset[str]] = {
    kind: frozenset(_words(optional))
    for kind, optional in {
        "db.tables_exist": "schema",
        "db.rls_enabled": "forced",
        "db.rls_policies": "commands",
        "db.publication": "publication",
        "db.query_plan": "max_ms",
        "db.pool": "max_connections",
        "http.cors": "allowed_origin disallowed_origin",
        "http.validation_limit": "max",
        "http.metrics": "metrics",
        "http.logging": "level",
        "http.attachments": "limit_bytes max_ttl_s wait_s",
        "realtime.delivery": "budget_ms",
        "realtime.typing_ttl": "seconds",
        "env.url": "schemes",
        "env.log_level": "expected",
        "load.threshold": "profile",
    }.items()
}

RLS_SCENARIOS = frozenset(
    _words(
        """
        outsider_cannot_read_messages outsider_cannot_send_messages member_cannot_edit_others_messages
        member_cannot_delete_others_messages moderator_can_delete_community_messages
        admin_can_delete_community_messages member_can_delete_own_messages private_community_invisible
        public_community_visible outsider_cannot_read_conversations anon_denied_everywhere
        outsider_cannot_call_get_or_create_conversation emails_not_readable dm_matrix broadcast_quota
        full_matrix
        """
    )
)
DB_LINTS = frozenset(
    _words(
        """
        rls_disabled_in_public policy_exists_rls_disabled rls_enabled_no_policy rls_policy_always_true
        multiple_permissive_policies auth_rls_initplan function_search_path_mutable
        security_definer_executable_by_anon unindexed_foreign_keys duplicate_index
        """
    )
)
HTTP_FLOWS = frozenset(
    _words(
        """
        send_message create_community join_leave_community edit_delete_message attendee_dm_mvp_dealer
        attendee_dm_dealer_blocked organizer_broadcast_quota mvp_broadcast_audience moderator_soft_delete
        search_messages pagination unread_counts report_message archive_conversation idempotent_send
        error_handling rollback_on_error
        """
    )
)
ATTACHMENT_CHECKS = frozenset(
    _words("size_limit type_sniffing member_only_urls url_expiry deleted_message_files image_processing voice_duration")
)
NOTIFICATION_CHECKS = frozenset(_words("mention_members_only muted_room_silent offline_push"))
REALTIME_EVENTS = frozenset(
    _words(
        """
        join_conversation send_message mark_read typing_start typing_stop heartbeat message_sent
        message_received message_read user_typing user_online user_offline
        """
    )
)

# (kind, param) -> allowed values; for list params every element must be allowed.
PARAM_CHOICES: dict[tuple[str, str], frozenset[str]] = {
    ("db.lint", "lint"): DB_LINTS,
    ("db.rls_matrix", "scenario"): RLS_SCENARIOS,
    ("db.query_plan", "query"): frozenset(
        {"message_page", "unread_counts", "search", "community_message_page"}
    ),
    ("db.rls_policies", "commands"): frozenset({"select", "insert", "update", "delete"}),
    ("http.auth_required", "cases"): frozenset(
        {"missing", "expired", "invalid_signature", "alg_none", "wrong_audience", "malformed"}
    ),
    ("http.rate_limit", "action"): frozenset(
        {"send_message", "create_conversation", "create_community", "send_message_hourly"}
    ),
    ("http.validation_limit", "field"): frozenset({"message_content", "community_name"}),
    ("http.flow", "flow"): HTTP_FLOWS,
    ("http.attachments", "check"): ATTACHMENT_CHECKS,
    ("http.notifications", "check"): NOTIFICATION_CHECKS,
    ("realtime.event", "event"): REALTIME_EVENTS,
    ("load.threshold", "op"): frozenset({"<", "<=", ">", ">="}),
}


def _is_str(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(_is_str(x) for x in v)


def _is_var_list(v: Any) -> bool:  # env vars: each entry a name or a list of alternative names
    return isinstance(v, list) and bool(v) and all(_is_str(x) or _is_str_list(x) for x in v)


_PARAM_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    **{
        p: ("a non-empty list of names", _is_str_list)
        for p in _words(
            "tables columns indexes functions extensions roles cases headers endpoints metrics commands "
            "schemes"
        )
    },
    **{
        p: ("a string", _is_str)
        for p in _words(
            "table schema lint scenario publication query allowed_origin disallowed_origin action field flow "
            "level event var expected metric op profile check"
        )
    },
    **{
        p: ("a number", _is_number)
        for p in _words("max_ms max_connections rows max budget_ms seconds value limit_bytes max_ttl_s wait_s")
    },
    "forced": ("true or false", lambda v: isinstance(v, bool)),
    "codes": (
        "a non-empty list of HTTP status codes",
        lambda v: (
            isinstance(v, list)
            and bool(v)
            and all(isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in v)
        ),
    ),
    "vars": ("a non-empty list of names (or lists of alternative names)", _is_var_list),
}


class CheckParamError(ValueError):
    """A check names an unknown kind or has a bad parameter; ``param`` says which key is wrong."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def validate_check(kind: str, params: Mapping[str, Any]) -> None:
    """Raise CheckParamError for the first problem with a check's kind or parameters."""
    if kind not in PROBE_KINDS:
        family = kind.split(".", 1)[0]
        close = difflib.get_close_matches(kind, PROBE_KINDS, n=3)
        if close:
            hint = f"did you mean {' or '.join(close)}?"
        else:
            same = sorted(k for k in PROBE_KINDS if k.startswith(family + "."))
            hint = f"expected one of {', '.join(same)}" if same else "families: db, http, realtime, env, load"
        raise CheckParamError(f"unknown probe kind {kind!r} ({hint})", "kind")
    required, optional = PROBE_KINDS[kind], PROBE_OPTIONAL_PARAMS.get(kind, frozenset())
    for name in params:
        if name not in required | optional:
            known = ", ".join(sorted(required | optional)) or "none"
            raise CheckParamError(f"check {kind!r} has unknown param {name!r} (expected: {known})", name)
    missing = sorted(required - params.keys())
    if missing:
        raise CheckParamError(
            f"check {kind!r} is missing required param {', '.join(repr(m) for m in missing)}", "kind"
        )
    for name, value in params.items():
        what, ok = _PARAM_TYPES[name]
        if not ok(value):
            raise CheckParamError(f"check {kind!r}: param {name!r} must be {what}, got {value!r}", name)
        choices = PARAM_CHOICES.get((kind, name))
        if choices is not None:
            for v in value if isinstance(value, list) else [value]:
                if v not in choices:
                    expected = ", ".join(sorted(choices))
                    raise CheckParamError(
                        f"check {kind!r}: unknown {name} {v!r} (expected one of {expected})", name
                    )


# ---------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------

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
            raise CheckParamError("check has no 'kind'", "kind")
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

    model_config = ConfigDict(extra="forbid")

    id: str
    text: str = Field(min_length=1)
    section: list[str] = Field(default_factory=list)
    line: int = Field(ge=1)
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
    id: str
    title: str = Field(min_length=1)
    seed: str | None = None
    items: list[Item]

    _path: Path | None = PrivateAttr(default=None)
    _sha256: str = PrivateAttr(default="")

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        if isinstance(v, str) and not CHECKLIST_ID.match(v):
            raise ValueError(f"invalid checklist id {v!r} (use lowercase words and dashes)")
        return v

    @model_validator(mode="after")
    def _unique_items(self) -> Checklist:
        seen: set[str] = set()
        for item in self.items:
            if item.id in seen:
                raise ValueError(f"duplicate item id {item.id!r}")
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
