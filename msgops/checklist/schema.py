"""The JSON Schema of checklist files, generated from the checklist model and the probe registry.

Every probe kind's parameter model becomes one branch of the ``check`` union, selected by ``kind``,
so an editor that knows the schema completes kinds and parameters and flags unknown ones. A copy
ships in the package (``SCHEMA_PATH``; a test keeps it equal to what ``checklist_schema()`` makes)
and ``msgops checklists schema`` prints it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from msgops.checklist.model import Checklist

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "checklist.schema.json"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _check_schema(defs: dict[str, Any]) -> dict[str, Any]:
    from msgops.probes import registry  # loads every probe family

    mapping: dict[str, str] = {}
    for kind, probe in sorted(registry().items()):
        params = probe.params.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(params.pop("$defs", {}))
        name = probe.params.__name__
        defs[name] = {
            "title": kind,
            "description": probe.doc.what,
            "type": "object",
            "properties": {"kind": {"const": kind}, **params.get("properties", {})},
            "required": ["kind", *params.get("required", [])],
            "additionalProperties": False,
        }
        mapping[kind] = f"#/$defs/{name}"
    return {
        "title": "Check",
        "description": "An automated check: a probe kind and its parameters, written next to `kind`.",
        "type": "object",
        "properties": {"kind": {"enum": list(mapping)}},
        "required": ["kind"],
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "kind", "mapping": mapping},
    }


def checklist_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a checklist file."""
    schema = Checklist.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    defs["Check"] = _check_schema(defs)
    return {
        "$schema": _DIALECT,
        "title": "msgops checklist",
        "description": "A checklist file for msgops: items in a prose checklist's own words, each an automated "
        "`check` (a probe kind and its parameters) or `manual: true` with what a person confirms. Built-in "
        "checklists also cite their seed (`seed`, each item's `line`).",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def schema_text() -> str:
    """The schema as the shipped file holds it: indented JSON with a final newline."""
    return json.dumps(checklist_schema(), indent=2, ensure_ascii=False) + "\n"


__all__ = ["SCHEMA_PATH", "checklist_schema", "schema_text"]
