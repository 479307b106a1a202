"""load.threshold against results files written here: pass, fail, and every reason not to judge."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from msgops import probes
from msgops.config import Target
from msgops.loadresults import LoadResultsError, LoadResultsMissing, load_results, parse, write_results
from msgops.probes import Context, NotRun
from msgops.probes.load import threshold  # importing registers the family, whatever was imported first
from msgops.results import Outcome


def document(**changes: Any) -> dict[str, Any]:
    finished = datetime.now(UTC) - timedelta(hours=1)
    doc: dict[str, Any] = {
        "schema": "msgops.load-results", "version": 1, "profile": "smoke",
        "target": {"api_url": "http://127.0.0.1:8000", "environment": "staging"},
        "started_at": (finished - timedelta(minutes=5)).isoformat(), "finished_at": finished.isoformat(),
        "duration_s": 300.0,
        "metrics": {"http.p50_ms": 10.0, "http.p95_ms": 180.0, "http.p99_ms": 320.0, "http.error_rate": 0.0004,
                    "http.rps": 850.0, "messages_per_s": 120.0, "ws.connections": 100, "ws.connect_failures": 0,
                    "delivery.p95_ms": None, "users": 100},
        "thresholds": [{"metric": "http.p95_ms", "op": "<", "value": 200, "observed": 180.0, "passed": True}],
        "generator": {"cpu_percent_max": 40.0, "saturated": False},
        "endpoints": {"GET /conversations": {"requests": 1000, "failures": 0, "p95_ms": 30.0}},
        "timeseries": [{"t_s": 10, "rps": 800}],
    }
    doc.update(changes)
    return doc


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "load.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


async def run(path: Path, api_url: str | None = "http://127.0.0.1:8000", **params: Any) -> Outcome:
    ctx = Context(Target(api_url=api_url, load_results=path))
    implementation = probes.get("load.threshold")
    assert implementation is not None and implementation.fn is threshold
    try:
        return await implementation.fn(ctx, **params)
    finally:
        await ctx.close()


async def test_threshold_met_passes_with_evidence(tmp_path: Path) -> None:
    out = await run(write(tmp_path, document()), metric="http.p95_ms", op="<", value=200, profile="smoke")
    assert out.status == "pass", out.message
    assert out.evidence["observed"] == 180.0 and out.evidence["threshold"] == 200
    assert out.evidence["profile"] == "smoke" and out.evidence["finished_at"]


@pytest.mark.parametrize(("metric", "op", "value"), [
    ("http.p95_ms", "<", 100), ("http.error_rate", "<", 0.0001), ("ws.connections", ">=", 1000),
    ("messages_per_s", ">", 500), ("http.p99_ms", "<=", 319.9),
])
async def test_threshold_missed_fails_naming_metric(tmp_path: Path, metric: str, op: str, value: float) -> None:
    out = await run(write(tmp_path, document()), metric=metric, op=op, value=value)
    assert out.status == "fail", out.message
    assert out.evidence["metric"] == metric and out.evidence["op"] == op
    assert out.evidence["observed"] == document()["metrics"][metric]


async def test_boundaries_follow_the_operator(tmp_path: Path) -> None:
    path = write(tmp_path, document())
    assert (await run(path, metric="http.p95_ms", op="<=", value=180)).status == "pass"
    assert (await run(path, metric="http.p95_ms", op="<", value=180)).status == "fail"
    assert (await run(path, metric="ws.connections", op=">=", value=100)).status == "pass"
    assert (await run(path, metric="ws.connections", op=">", value=100)).status == "fail"


async def test_missing_file_skips_naming_the_command(tmp_path: Path) -> None:
    with pytest.raises(NotRun, match="msgops load --profile soak"):
        await run(tmp_path / "nope.json", metric="http.p95_ms", op="<", value=200, profile="soak")


async def test_other_profile_skips_naming_both(tmp_path: Path) -> None:
    with pytest.raises(NotRun, match=r"'smoke'.*'soak'"):
        await run(write(tmp_path, document()), metric="http.p95_ms", op="<", value=200, profile="soak")


async def test_absent_or_unmeasured_metric_skips(tmp_path: Path) -> None:
    path = write(tmp_path, document())
    with pytest.raises(NotRun, match="memory_mb"):
        await run(path, metric="memory_mb", op="<", value=500)
    with pytest.raises(NotRun, match=r"delivery\.p95_ms"):
        await run(path, metric="delivery.p95_ms", op="<", value=2000)


async def test_stale_results_skip(tmp_path: Path) -> None:
    old = datetime.now(UTC) - timedelta(days=90)
    path = write(tmp_path, document(started_at=(old - timedelta(minutes=5)).isoformat(),
                                    finished_at=old.isoformat()))
    with pytest.raises(NotRun, match="90 days old"):
        await run(path, metric="http.p95_ms", op="<", value=200)


async def test_results_of_another_target_skip(tmp_path: Path) -> None:
    with pytest.raises(NotRun, match=re.escape("measured against http://127.0.0.1:8000")):
        await run(write(tmp_path, document()), api_url="https://staging.example.com", metric="http.p95_ms",
                  op="<", value=200)


async def test_saturated_generator_is_an_error_never_a_pass(tmp_path: Path) -> None:
    path = write(tmp_path, document(generator={"cpu_percent_max": 99.0, "saturated": True}))
    out = await run(path, metric="http.p95_ms", op="<", value=200)
    assert out.status == "error"
    assert "saturated" in out.message and out.evidence["observed"] == 180.0


@pytest.mark.parametrize(("content", "problem"), [
    ("{not json", "invalid JSON at line 1"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"schema": "k6-summary"}), "not a msgops load results file"),
    (json.dumps(document(version=2)), "version 2 is not supported"),
    (json.dumps(document(metrics={"http.p95_ms": "fast"})), "metrics.http.p95_ms"),
    (json.dumps(document(finished_at="2026-01-01T10:00:00")), "timezone"),
    (json.dumps({k: v for k, v in document().items() if k != "profile"}), "profile"),
])
async def test_malformed_results_are_errors_naming_file_and_problem(tmp_path: Path, content: str,
                                                                   problem: str) -> None:
    path = write(tmp_path, content)
    out = await run(path, metric="http.p95_ms", op="<", value=200)
    assert out.status == "error"
    assert str(path) in out.message and problem in out.message


def test_reader_round_trips_and_reports_missing(tmp_path: Path) -> None:
    results = parse(document(), "doc")
    assert results.metric("http.p95_ms") == 180.0 and results.metric("delivery.p95_ms") is None
    assert results.endpoints["GET /conversations"].requests == 1000
    target = tmp_path / "out" / "load.json"
    write_results(results, target)
    again = load_results(target)
    assert again == results and json.loads(target.read_text())["schema"] == "msgops.load-results"
    with pytest.raises(LoadResultsMissing):
        load_results(tmp_path / "missing.json")
    with pytest.raises(LoadResultsError, match=r"NaN|finite"):
        parse(document(metrics={"http.p95_ms": float("nan")}), "doc")


async def test_default_path_is_msgops_out_under_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "msgops-out").mkdir()
    (tmp_path / "msgops-out" / "load.json").write_text(json.dumps(document()))
    ctx = Context(Target(api_url="http://127.0.0.1:8000"))
    implementation = probes.get("load.threshold")
    assert implementation is not None
    out = await implementation.fn(ctx, metric="users", op=">=", value=100)
    await ctx.close()
    assert out.status == "pass" and out.evidence["file"].endswith("msgops-out/load.json")
