"""msgops init: the kind of target detected from what really answers (the reference service, and a
Socket.IO chat service msgops did not build), and a file of each kind that msgops reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from msgops import init_target
from msgops.config import resolve
from tests.test_cli import msgops
from tests.test_foreign_target import start


def test_the_reference_service_is_detected(service, tmp_path: Path) -> None:
    found = init_target.detect(service.url)
    assert found.kind == "reference" and found.openapi
    assert any("capabilities" in line for line in found.evidence)
    proc = msgops("init", "--api-url", service.url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "msgops.yaml").read_text()
    assert text.startswith("# kind: reference") and f"api_url: {service.url}" in text


def test_a_socketio_service_msgops_did_not_build_is_detected() -> None:
    url, server = start()
    try:
        found = init_target.detect(url)
    finally:
        server.should_exit = True
    assert found.kind == "socketio" and found.socketio_path == "/ws", found.evidence
    assert any("Socket.IO handshake" in line for line in found.evidence)
    assert "  path: /ws\n" in init_target.render(found.kind, url, found)


def test_nothing_answering_is_a_custom_target() -> None:
    found = init_target.detect("http://127.0.0.1:1", timeout_s=1)
    assert found.kind == "custom" and found.evidence == ["nothing answered that msgops recognizes"]


@pytest.mark.parametrize("kind", list(init_target.KINDS))
def test_every_kind_writes_a_file_msgops_reads(kind: str, tmp_path: Path) -> None:
    proc = msgops("init", "--kind", kind, "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    target = resolve(tmp_path / "msgops.yaml", environ={})
    assert (target.personas is not None) == (kind != "reference")
    if kind == "socketio":
        assert target.realtime is not None and target.realtime["protocol"] == "socketio"


def test_an_unknown_kind_is_exit_3(tmp_path: Path) -> None:
    proc = msgops("init", "--kind", "mystery", cwd=tmp_path)
    assert proc.returncode == 3 and "--kind must be one of" in proc.stderr and "Traceback" not in proc.stderr
