"""What msgops reports on a corpus schema, as (kind, object) pairs comparable with its expected.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from msgops.config import Target
from msgops.probes import Context, Skip, get
from msgops.probes.db.lints import lint_names

CORPUS = Path(__file__).resolve().parent / "corpus"
# lints whose findings are holes, and the kind each one names
LINT_KINDS = {
    "rls_disabled_in_public": "rls_disabled", "rls_policy_always_true": "always_true_policy",
    "role_only_policy": "role_only_policy", "security_definer_executable_by_anon": "definer_executable_by_anon",
    "function_search_path_mutable": "search_path_mutable", "contact_columns_readable": "contact_readable",
    "policy_reads_user_metadata": "user_metadata_policy", "realtime_authorization_open": "realtime_open",
    "storage_objects_listable": "storage_listable",
}
# what the matrix reports that is not a security hole (a member or staff locked out of what is theirs)
NOT_HOLES = {"member_denied", "staff_denied"}


def schemas() -> list[str]:
    return sorted(p.parent.name for p in CORPUS.glob("*/schema.sql"))


def expected(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CORPUS / name / "expected.yaml").read_text())
    return data


def table_of(obj: str) -> str:
    """public.users.email -> public.users; public.f(a int) -> public.f"""
    obj = re.sub(r"\(.*\)$", "", obj)
    parts = obj.split(".")
    return ".".join(parts[:2])


async def flagged(url: str) -> tuple[set[tuple[str, str]], dict[str, Any]]:
    """{(kind, table or function)} that msgops flags, and the raw outcomes."""
    ctx = Context(Target(database_url=url))
    found: set[tuple[str, str]] = set()
    raw: dict[str, Any] = {}
    try:
        lint_probe, matrix_probe = get("db.lint"), get("db.rls_model")
        assert lint_probe is not None and matrix_probe is not None
        for lint in sorted(set(lint_names()) & set(LINT_KINDS)):
            outcome = await lint_probe.fn(ctx, lint=lint)
            raw[lint] = outcome
            for f in outcome.evidence["findings"]:
                found.add((LINT_KINDS[lint], table_of(f["object"])))
        outcome = await matrix_probe.fn(ctx)
        raw["rls_model"] = outcome
        for f in outcome.evidence["findings"]:
            found.add((f["kind"], table_of(f["object"])))
        functions = get("db.functions_outsider")
        assert functions is not None
        try:
            called = await functions.fn(ctx)
        except Skip:
            called = None
        if called is not None:
            raw["functions_outsider"] = called
            for f in called.evidence["findings"]:
                found.add((f["kind"], table_of(f["object"])))
    finally:
        await ctx.close()
    return found, raw


def holes(found: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(k, o) for k, o in found if k not in NOT_HOLES}
