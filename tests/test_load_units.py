"""The parts of `msgops load` that need no service: profiles, exact percentiles and their merge,
delivery accounting, generator health and the verdict."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from msgops.cli_load import load
from msgops.errors import UserError
from msgops.load import summary
from msgops.load.accounting import message_key
from msgops.load.measure import (
    SEND,
    WS_CONNECT,
    Measurements,
    decode_into,
    encode,
    new_histogram,
    open_model_latency_ms,
    open_model_start,
    percentile_ms,
    to_us,
)
from msgops.load.plan import seed_limit_problem
from msgops.load.profile import ProfileError, available, load_profile, parse_profile
from msgops.load.seqset import SeqSet
from msgops.paths import loadtests_dir
from msgops.verdict import evaluate

# Profiles ----------------------------------------------------------------------------------------


def test_every_builtin_profile_is_valid_and_the_seed_targets_are_there() -> None:
    names = available()
    assert {"smoke", "seed-000-api", "seed-001-scale", "seed-002-dm-burst", "seed-004-websockets"} <= set(names)
    for name in names:
        profile = load_profile(name)
        assert profile.thresholds, f"{name} has no thresholds"
        if profile.requires.rate_limits == "seed":
            assert seed_limit_problem(profile) is None, name
    metrics = {t.metric for t in load_profile("seed-004-websockets").thresholds}
    assert {"ws.connections", "delivery.p95_ms", "messages_per_s"} <= metrics


@pytest.mark.parametrize(("text", "line", "problem"), [
    ("name: x\nduration: 5s\nusers: {reader: 1}\nthresholds:\n  - http.p95_ms < 200\n  - p95 is low\n",
     6, "thresholds[1]: 'p95 is low' is not a threshold"),
    ("name: x\nduration: 5 minutes\nusers: {reader: 1}\n", 2, "duration: '5 minutes' is not a duration"),
    ("name: x\nduration: 5s\nusers:\n  reader: 1\n  writer: 3\n", 5, "users.writer: unknown setting"),
    ("name: x\nusers: {reader: 1}\n", 1, "duration: required"),
    ("name: x\nduration: 5s\n", 1, "no load"),
    ("name: x\nduration: [5s\n", 3, "invalid YAML"),
    ("name: x\nduration: 5s\nusers: {reader: 1}\nprovision: {group_size: 1}\n", 4,
     "provision.group_size: must be >= 2 (got 1)"),
])
def test_profile_errors_name_file_and_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(ProfileError) as err:
        parse_profile(text, "p.yaml")
    assert str(err.value).startswith(f"p.yaml:{line}: "), str(err.value)
    assert problem in str(err.value)
    assert err.value.exit_code == 3


def test_every_problem_of_a_profile_is_reported_at_once() -> None:
    text = "name: x\nduration: soon\nusers: {reader: -1, writer: 2}\nprovision: {organizers: many}\n"
    with pytest.raises(ProfileError) as err:
        parse_profile(text, "p.yaml")
    message = str(err.value)
    assert message.startswith("p.yaml: 4 problems: ") and "\n" not in message, message
    for part in ("duration: 'soon' is not a duration", "(line 2)", "users.reader: must be >= 0 (got -1)",
                 "users.writer: unknown setting", "provision.organizers: must be an integer or auto (got 'many')"):
        assert part in message, message


def test_a_bad_profile_exits_3_before_touching_any_target(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nduration: 5s\nusers: {reader: 1}\nthresholds: ['http.p95 ~ 3']\n")
    app = typer.Typer()
    app.command()(load)
    result = CliRunner().invoke(app, ["--profile", str(bad), "--api-url", "http://127.0.0.1:9"])
    assert isinstance(result.exception, UserError) and result.exception.exit_code == 3
    assert f"{bad}:4: thresholds[0]" in str(result.exception)
    unknown = CliRunner().invoke(app, ["--profile", "no-such-profile", "--api-url", "http://127.0.0.1:9"])
    assert isinstance(unknown.exception, UserError) and "built-in profiles: " in str(unknown.exception)


_LOAD_ALONE = """
import sys
from msgops.cli import main
try:
    main(["load", "--help"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
print(",".join(sorted(n for n in sys.modules if n.startswith("msgops.cli"))))
"""


def test_the_load_command_imports_no_other_command_and_help_lists_them_all() -> None:
    proc = subprocess.run([sys.executable, "-c", _LOAD_ALONE], capture_output=True, text=True, check=True)
    assert "Run a load profile" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "msgops.cli,msgops.cli_load,msgops.cli_options"
    listing = subprocess.run([sys.executable, "-m", "msgops.cli", "--help"], capture_output=True, text=True,
                             env={**os.environ, "COLUMNS": "200"})
    for command in ("check", "load", "gate", "report", "discover", "checklists"):
        assert f" {command} " in listing.stdout, listing.stdout


_LOCUSTFILE_ALONE = """
import sys
import messaging
from msgops.load.identities import LoadSigner
from msgops.tokens import Minting
plan = LoadSigner(Minting(), "k" * 32, ttl_s=60, label="msgops load t").plan_entry()
assert LoadSigner.from_plan(plan, "k" * 32).token("user-1").count(".") == 2
print(",".join(sorted(n for n in sys.modules if n.split(".")[0] in ("pydantic", "rich", "typer", "httpx"))))
"""


def test_a_locust_process_mints_its_users_tokens_without_the_configuration_models() -> None:
    """What the locustfile imports, and the signer it rebuilds from the plan: no pydantic (nor the CLI's
    or the probes' libraries), which would cost every Locust process about 0.14 s of CPU at start."""
    proc = subprocess.run([sys.executable, "-c", _LOCUSTFILE_ALONE], capture_output=True, text=True,
                          cwd=loadtests_dir())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-1] == ""


_ENTRY_POINTS_ONCE = """
from importlib import metadata
groups = ("console_scripts", "pytest11", "gevent.plugins.monkey.will_patch_all")
before = [sorted(ep.value for ep in metadata.entry_points(group=g)) for g in groups]
from msgops.load.locust_main import read_entry_points_once
read_entry_points_once()
def read_again(*args, **kwargs):
    raise AssertionError("installed distributions read again")
metadata.distributions = read_again  # what the standard library's entry_points() reads each time
after = [sorted(ep.value for ep in metadata.entry_points(group=g)) for g in groups]
assert after == before, (before, after)
from gevent import monkey  # gevent looks plugins up at each patching event
monkey.patch_all()
print(len(before[0]))
"""


def test_the_locust_process_reads_entry_points_once_and_finds_the_same_ones() -> None:
    proc = subprocess.run([sys.executable, "-c", _ENTRY_POINTS_ONCE], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) > 0  # msgops's own console script at least


_HEADLESS = """
import sys
from msgops.load.locust_main import headless_without_web_ui
headless_without_web_ui()
import locust.main
from locust.env import Environment
assert "flask" not in sys.modules
try:
    Environment().create_web_ui()
except RuntimeError as exc:
    print(exc)
"""


def test_a_headless_locust_process_runs_without_the_web_ui_locust_imports() -> None:
    proc = subprocess.run([sys.executable, "-c", _HEADLESS], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "runs headless" in proc.stdout


def test_overrides_scale_the_mix_and_size_provisioning() -> None:
    base = parse_profile("name: x\nduration: 10s\nusers: {reader: 2, listener: 8}\nopen: {messages: 5}\n", "x")
    scaled = base.with_overrides(users=100, rate=50, duration=30)
    assert (scaled.users.reader, scaled.users.listener) == (20, 80)
    assert scaled.open.messages == 50 and scaled.duration == 30
    assert scaled.provision.users >= 80  # one socket per user
    assert base.with_overrides(connections=500).users.listener == 500


def test_seed_rate_limits_are_checked_before_a_run() -> None:
    greedy = parse_profile("name: x\nduration: 60s\nprovision: {users: 10}\nopen: {messages: 20}\n", "x")
    problem = seed_limit_problem(greedy)
    assert problem is not None and "provision at least" in problem and "MSGOPS_RATE_LIMITS=off" in problem
    fits = parse_profile("name: x\nduration: 6s\nprovision: {users: 60}\nopen: {messages: 15}\n", "x")
    assert seed_limit_problem(fits) is None


# Exact percentiles, merged across processes -------------------------------------------------------


def test_percentiles_do_not_round_like_locust() -> None:
    # Locust stores a 196 ms response as 200 (two significant digits), so `p95 < 200` would fail.
    m = Measurements()
    for _ in range(100):
        m.request(SEND, 196.0, True, 201, 1000.0)
    p95 = percentile_ms(m.endpoints[SEND].hist, 95)
    assert p95 is not None and 196.0 <= p95 < 196.0 * 1.001 < 200


def test_deltas_from_several_processes_merge_to_the_exact_distribution() -> None:
    single, workers = Measurements(), [Measurements(), Measurements(), Measurements()]
    for i in range(3000):
        latency = 1 + (i * 7919) % 500 + i / 1000  # spread over 1..501 ms
        single.request(SEND, latency, i % 50 != 0, 201, 1000.0 + i / 100)
        workers[i % 3].request(SEND, latency, i % 50 != 0, 201, 1000.0 + i / 100)
    deltas = [w.take_delta() for w in workers]
    assert all(not w.endpoints for w in workers)  # take_delta empties the recorder
    merged = Measurements.merged(deltas)
    for pct in (50, 95, 99, 99.9):
        assert percentile_ms(merged.endpoints[SEND].hist, pct) == percentile_ms(single.endpoints[SEND].hist, pct)
    assert merged.endpoints[SEND].requests == 3000 and merged.endpoints[SEND].failures == 60
    assert sum(s.requests for s in merged.seconds.values()) == 3000


def test_merged_histograms_equal_one_histogram_of_everything() -> None:
    """Merging is exact: the same counts in the same buckets, however the values were split, and
    through the encoding that travels between processes."""
    rng = random.Random(7)
    values = [to_us(rng.lognormvariate(3, 1.5)) for _ in range(20_000)]
    whole = new_histogram()
    parts = [new_histogram() for _ in range(4)]
    for i, v in enumerate(values):
        whole.record_value(v)
        parts[i % 4].record_value(v)
    merged = new_histogram()
    for part in parts:
        decode_into(merged, encode(part))
    assert merged.get_total_count() == whole.get_total_count() == len(values)
    assert [(b.value_iterated_to, b.count_at_value_iterated_to) for b in merged.get_recorded_iterator()] == \
        [(b.value_iterated_to, b.count_at_value_iterated_to) for b in whole.get_recorded_iterator()]


def test_percentiles_are_within_a_tenth_of_a_percent_above_the_true_value() -> None:
    rng = random.Random(11)
    values = sorted(to_us(rng.uniform(0.05, 30_000)) for _ in range(10_001))
    hist = new_histogram()
    for v in values:
        hist.record_value(v)
    for pct in (1, 50, 90, 95, 99, 99.9):
        true = values[max(1, math.floor(pct / 100 * len(values) + 0.5)) - 1]  # the rank HDR uses: rounded
        measured = hist.get_value_at_percentile(pct)
        assert true <= measured <= true * 1.001, (pct, true, measured)


def test_sequence_sets_count_ranges_and_their_overlap() -> None:
    s = SeqSet()
    assert all(s.add(n) for n in range(0, 100))      # in order: one range
    assert not s.add(42) and s.ranges() == [[0, 99]]
    s.add_range(150, 160)
    s.add(120)
    assert s.ranges() == [[0, 99], [120, 120], [150, 160]] and len(s) == 112
    s.add_range(100, 149)                              # fills the gaps: one range again
    assert s.ranges() == [[0, 160]] and len(s) == 161
    other = SeqSet([[10, 19], [155, 170]])
    assert s.count_between(150) == 11 and s.count_between(5, 9) == 5
    assert s.common_between(other, 0) == 16 and s.common_between(other, 15, 156) == 7


# Deliveries --------------------------------------------------------------------------------------


Events = list[tuple[float, Callable[[], object]]]


def _replay(events: Events, processes: list[Measurements], end: float) -> Measurements:
    """Play timed events, with every process reporting a delta once a second (the last one final)."""
    merged = Measurements(timeout=3.0)
    pending = sorted(events, key=lambda e: e[0])
    t = 0.0
    while t <= end:
        while pending and pending[0][0] <= t:
            pending.pop(0)[1]()
        for proc in processes:
            merged.merge(proc.take_delta(t, final=t >= end))
        t += 1.0
    return merged


def _send(proc: Measurements, conversation: int, t_start: float, t_done: float, accepted: bool = True) -> None:
    seq = proc.send_started(conversation, t_start)
    proc.send_finished(conversation, seq, accepted, message_key(proc.tag, conversation, seq), t_start, t_done, 13.0)


def test_lost_and_duplicated_deliveries_against_what_each_socket_should_get() -> None:
    p, r = Measurements(tag="p"), Measurements(tag="r")  # the sending process, the receiving one
    m1, m2 = "p.0.0", "p.0.1"  # m3 ("p.1.0") never arrives
    merged = _replay([
        (5.0, lambda: [r.socket_opened(k, c, 5.0) for k, c in (("a", 0), ("c", 1), ("gone", 1))]),
        (10.0, lambda: _send(p, 0, 10.0, 10.1)),                       # m1
        (10.5, lambda: r.message_received(m1, "a", 100, 10.5)),
        (15.0, lambda: r.socket_opened("b", 0, 15.0)),                 # b joins after m1
        (20.0, lambda: (_send(p, 0, 20.0, 20.1), _send(p, 1, 20.0, 20.1))),  # m2, m3
        (20.5, lambda: [r.message_received(m2, s, 100, 20.5) for s in ("a", "a", "b")]),  # m2 twice on a
        (21.0, lambda: r.socket_closed("gone", 21.0)),                 # before m3 was due (20.1 + 3 s)
        (30.0, lambda: _send(p, 0, 30.0, 30.1, accepted=False)),       # refused: expected nowhere
        (98.5, lambda: _send(p, 0, 98.5, 98.6)),                       # due after the end
    ], [p, r], end=100.0)
    d = merged.ledger.result(run_end=100.0)
    # m1 -> a (b joined later); m2 -> a, b; m3 -> c (never arrived); the last is unjudged for a and b.
    assert (d.messages, d.expected, d.lost, d.duplicates, d.unjudged, d.received) == (4, 4, 1, 1, 2, 4)
    assert d.loss_rate == pytest.approx(0.25)
    peak, per_second = merged.ledger.open_sockets(run_end=100.0)
    assert peak == 4 and per_second[21] == 3


def test_out_of_order_and_several_senders_per_conversation() -> None:
    senders = [Measurements(tag=f"s{i}") for i in range(2)]
    r = Measurements(tag="r")
    events: Events = [(1.0, lambda: r.socket_opened("x", 0, 1.0))]
    for n in range(10):
        for s in senders:
            events.append((2.0 + n, lambda s=s, n=n: _send(s, 0, 2.0 + n, 2.05 + n)))
    keys = [message_key(s.tag, 0, n) for n in range(10) for s in senders]
    order = [*keys[:5], keys[6], keys[5], *keys[7:-1]]  # two swapped, the last lost
    events.append((12.5, lambda: [r.message_received(k, "x", 50, 12.5) for k in order]))
    merged = _replay(events, [*senders, r], end=20.0)
    d = merged.ledger.result(run_end=20.0)
    assert (d.messages, d.expected, d.lost, d.out_of_order, d.duplicates) == (20, 20, 1, 0, 0)
    # Numbers count per sender: swapping two senders' messages is not out of order, one sender's is.
    r2 = Measurements(tag="r2")
    r2.socket_opened("y", 0, 1.0)
    for k in ("s0.0.0", "s0.0.2", "s0.0.1", "s0.0.1"):
        r2.message_received(k, "y", 5, 3.0)
    row = r2.take_delta(3.0)["sockets"]["y"]
    assert (row["n"], row["dup"], row["ooo"], row["got"]) == (4, 1, 1, {"s0:0": [[0, 2]]})


def test_a_delta_is_the_same_size_however_many_messages() -> None:
    sizes = []
    for messages in (100, 10_000):
        p, r = Measurements(tag="p"), Measurements(tag="r")
        for k in range(20):
            r.socket_opened(f"k{k}", k % 4, 1.0)
        for n in range(messages):
            conversation = n % 4
            _send(p, conversation, 2.0, 2.1)
            for k in range(conversation, 20, 4):
                r.message_received(message_key("p", conversation, n // 4), f"k{k}", 30, 2.2)
        sizes.append(len(json.dumps(p.take_delta(3.0))) + len(json.dumps(r.take_delta(3.0))))
    assert sizes[1] < sizes[0] * 1.2, sizes


# Generator health and the verdict ----------------------------------------------------------------


def _results(cpu: list[float], p95: float, limit: float) -> summary.LoadResults:
    m = Measurements()
    for i in range(50):
        m.request(SEND, p95, True, 201, 1001.0 + i / 10)
    m.request(WS_CONNECT, 5.0, True, 101, 1001.0)
    for i, pct in enumerate(cpu):
        m.cpu_sample("worker-1", 1000 + i, pct)
    m.meta.update({"t0": 1000.0, "stopped_at": 1000.0 + len(cpu), "send_after_s": 1, "send_for_s": 5})
    profile = parse_profile(f"name: t\nduration: 5s\nusers: {{listener: 1}}\nthresholds: ['http.p95_ms < {limit}']\n",
                            "t")
    now = datetime.now(UTC)
    return summary.build(m, summary.RunInfo(profile, "http://127.0.0.1:1", None, None, now, now, None, 1))


def decide(results):  # a load run alone, judged by the one verdict every command uses
    return evaluate([], loads=[results])


def test_verdict_pass_fail_and_a_saturated_generator() -> None:
    passed = decide(_results([20.0] * 10, 50, 200))
    assert passed.exit_code == 0 and passed.decision == "GO"
    failed = decide(_results([20.0] * 10, 250, 200))
    assert failed.exit_code == 1 and failed.decision == "NO-GO" and "http.p95_ms = 250" in failed.reason
    saturated = _results([20.0, 95.0, 97.0, 99.0, 98.0, 96.0, 40.0, 30.0, 20.0, 20.0], 250, 200)
    assert saturated.generator.saturated
    verdict = decide(saturated)  # its missed threshold is no evidence either way
    assert verdict.decision == "INCOMPLETE" and verdict.exit_code == 2
    assert "worker-1" in verdict.reason and "generator" in verdict.reason


def test_an_unmeasured_threshold_is_not_a_pass() -> None:
    results = _results([10.0] * 5, 50, 200)
    doc = results.model_dump(by_alias=True, mode="json")
    doc["thresholds"].append({"metric": "delivery.p95_ms", "op": "<", "value": 2000, "observed": None,
                              "passed": None})
    from msgops.loadresults import parse

    verdict = decide(parse(doc))
    assert verdict.decision == "INCOMPLETE" and verdict.exit_code == 2 and "delivery.p95_ms" in verdict.reason


def test_open_model_latency_counts_lateness_but_never_less_than_the_exchange() -> None:
    """A send that went out 30 ms after its intended start and took 5 ms waited 35 ms; one that went
    out 0.3 ms early (the timer's slack) is timed from its actual start, not its intended one."""
    assert open_model_latency_ms(5.0, intended=100.0, now=100.035) == pytest.approx(35.0)
    assert open_model_latency_ms(5.0, intended=100.0003, now=100.0047) == pytest.approx(5.0)  # 4.4 ms after it
    # Its message's delivery counts from the same start: the intended one, or the actual one if earlier.
    assert open_model_start(intended=100.0, started=100.030) == 100.0
    assert open_model_start(intended=100.0003, started=99.9997) == 99.9997
