"""Checklists as data: the model, a validating loader, and the JSON Schema of checklist files."""

from msgops.checklist.loader import (
    ChecklistError,
    is_builtin,
    load_checklist,
    load_checklists,
    load_selection,
    split_selection,
)
from msgops.checklist.model import (
    ITEM_KINDS,
    SEVERITIES,
    Check,
    Checklist,
    CheckParamError,
    CheckProblem,
    Item,
    ItemKind,
    Severity,
    probe_kinds,
    validate_check,
)

__all__ = [
    "ITEM_KINDS",
    "SEVERITIES",
    "Check",
    "CheckParamError",
    "CheckProblem",
    "Checklist",
    "ChecklistError",
    "Item",
    "ItemKind",
    "Severity",
    "is_builtin",
    "load_checklist",
    "load_checklists",
    "load_selection",
    "probe_kinds",
    "split_selection",
    "validate_check",
]
