"""Checklists as data: the model, the probe-kind registry and a validating loader."""

from msgops.checklist.loader import ChecklistError, load_checklist, load_checklists
from msgops.checklist.model import (
    ITEM_KINDS,
    PARAM_CHOICES,
    PROBE_KINDS,
    PROBE_OPTIONAL_PARAMS,
    SEVERITIES,
    Check,
    Checklist,
    CheckParamError,
    Item,
    ItemKind,
    Severity,
    validate_check,
)

__all__ = [
    "ITEM_KINDS",
    "PARAM_CHOICES",
    "PROBE_KINDS",
    "PROBE_OPTIONAL_PARAMS",
    "SEVERITIES",
    "Check",
    "CheckParamError",
    "Checklist",
    "ChecklistError",
    "Item",
    "ItemKind",
    "Severity",
    "load_checklist",
    "load_checklists",
    "validate_check",
]
