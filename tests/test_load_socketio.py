"""`msgops load` over Socket.IO: the listeners connect to the reference's /messaging namespace instead of
/realtime when msgops.yaml says `realtime: {protocol: socketio}`, and delivery latency is measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from msgops.loadresults import load_results
from tests.test_load_run import run_load

pytestmark = pytest.mark.timeout(300)


def test_smoke_profile_over_socketio_reports_delivery_latency(make_service: Any, tmp_path: Path) -> None:
    svc = make_service()
    target = tmp_path / "msgops.yaml"
    target.write_text("realtime:\n  protocol: socketio\n  namespace: /messaging\n")
    code, output, out = run_load(tmp_path, svc.url, "--profile", "smoke", "--target", str(target))
    assert code == 0, output
    results = load_results(out)
    m = results.metrics
    assert m["ws.connections"] == 60 and m["delivery.loss_rate"] == 0, m
    assert m["delivery.expected"] == 90 * 4 and m["delivery.p95_ms"] is not None
    assert results.target.realtime == "Socket.IO (/socket.io, namespace /messaging)"  # which protocol carried it
    assert '"realtime": "Socket.IO' in out.read_text()


def test_listeners_really_use_socketio(make_service: Any, tmp_path: Path) -> None:
    """A namespace the server does not have: every listener fails to connect (so the run is not a pass)."""
    svc = make_service()
    target = tmp_path / "msgops.yaml"
    target.write_text("realtime:\n  protocol: socketio\n  namespace: /nope\n")
    code, output, out = run_load(tmp_path, svc.url, "--profile", "smoke", "--target", str(target))
    assert code != 0, output
    m = load_results(out).metrics
    assert m["ws.connections"] == 0 and m["ws.connect_failures"], m
