"""msgops on third-party schemas (tests/corpus): every hole a person found by reading a schema is flagged
with evidence naming its object, and nothing else is flagged as an RLS or function hole beyond what the
schema's expected.yaml records (after_first_run: findings judged after msgops first ran on it)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from tests.corpus_check import CORPUS, expected, flagged, holes, schemas, table_of


def apply(new_database: Callable[..., str], name: str) -> str:
    url = new_database(migrated=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((CORPUS / "supabase_stub.sql").read_text().encode())
        conn.execute((CORPUS / name / "schema.sql").read_text().encode())
    return url


@pytest.mark.parametrize("name", schemas())
async def test_msgops_flags_what_a_reader_found_and_nothing_else(new_database: Callable[..., str],
                                                                 name: str) -> None:
    data = expected(name)
    url = apply(new_database, name)
    found, raw = await flagged(url)
    wanted = {(h["kind"], table_of(h["object"])) for h in data["holes"]}
    judged = {(h["kind"], table_of(h["object"])) for h in data.get("after_first_run") or []}
    assert wanted - found == set(), f"{name}: not flagged: {sorted(wanted - found)}"
    assert holes(found) - wanted - judged == set(), f"{name}: unexpected: {sorted(holes(found) - wanted - judged)}"
    # the evidence names the object
    for outcome in raw.values():
        for finding in outcome.evidence["findings"]:
            assert finding["object"] and finding["object"].split(".")[0] in ("public", "auth", "storage")
            if outcome.status == "fail":
                assert any(f["object"] in outcome.message for f in outcome.evidence["findings"])


@pytest.mark.parametrize("name", schemas())
def test_each_schema_has_provenance(name: str) -> None:
    text = (CORPUS / name / "PROVENANCE").read_text()
    for key in ("repository: https://github.com/", "commit: ", "path: ", "license: "):
        assert key in text, f"{name}/PROVENANCE lacks {key!r}"
    data = expected(name)
    assert set(data) >= {"model", "holes"}


@pytest.mark.parametrize("name", schemas())
async def test_discovery_finds_the_model_a_reader_wrote_down(new_database: Callable[..., str], name: str) -> None:
    from msgops.dbmodel import discover

    want = expected(name)["model"]
    async with await psycopg.AsyncConnection.connect(apply(new_database, name)) as conn:
        model = await discover(conn)
    assert [r.table for r in model.rooms] == want["rooms"]
    found = {(m.table, m.room_column, m.sender, m.content) for m in model.messages}
    for m in want["messages"]:
        assert (m["table"], m["room"], m["sender"], m["content"]) in found, model.to_mapping()["messages"]
    membership = want["membership"]
    if membership == "none":
        assert not model.has_membership
    elif "columns" in membership:
        got = model.membership_of(membership["table"])
        assert (got.kind, list(got.user_columns)) == ("columns", membership["columns"])
    else:
        got = next(m for m in model.memberships if m.table == membership["table"])
        assert (got.kind, got.room_column, got.user_column) == ("table", membership["room"], membership["user"])
    assert model.to_mapping() and all(m.reason for m in model.messages)
