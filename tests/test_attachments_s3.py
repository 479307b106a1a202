"""Attachments on S3-compatible storage: moto's standalone S3 server, a real HTTP server on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest

from msgops.embedded import free_port
from service.attachments.config import AttachmentSettings
from service.storage.config import StorageSettings
from tests import media_samples as media
from tests.support import RunningService, start_service
from tests.test_attachments import group, run_job, upload

BUCKET = "msgops-test-attachments"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def aws_env(s3_endpoint: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def s3_settings(endpoint: str, **overrides: Any) -> AttachmentSettings:
    storage = StorageSettings(backend="s3", bucket=BUCKET, endpoint_url=endpoint, region="us-east-1")
    return AttachmentSettings(storage=storage, **overrides)


@pytest.fixture(scope="module")
def svc(new_database: Callable[..., str], s3_endpoint: str, aws_env: None) -> Iterator[RunningService]:
    running = start_service(new_database(), rate_limits={}, attachments=s3_settings(s3_endpoint))
    yield running
    running.stop()


def keys(endpoint: str) -> set[str]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_upload_download_and_cleanup_on_s3(svc: RunningService, s3_endpoint: str) -> None:
    alice, bob, eve = svc.user(), svc.user(), svc.user()
    conv = group(svc, alice, bob)
    r = upload(svc, alice, conv, media.jpeg_with_exif(200, 100), "p.jpg")
    assert r.status_code == 201, r.text
    a = r.json()
    assert {f"conversations/{conv}/{a['id']}", f"conversations/{conv}/{a['id']}.thumb.jpg"} <= keys(s3_endpoint)
    got = svc.http.get(f"/attachments/{a['id']}", headers=bob.headers).json()
    assert got["url"].startswith(s3_endpoint) and "X-Amz-Signature" in got["url"]
    file = httpx.get(got["url"])
    assert file.status_code == 200 and media.exif_of(file.content) == {}
    assert svc.http.get(f"/attachments/{a['id']}", headers=eve.headers).status_code == 404
    # Put on a message, the message deleted, the cleanup job run: the objects are gone.
    msg = svc.http.post(f"/conversations/{conv}/messages", json={"content": "x"}, headers=alice.headers).json()
    assert svc.http.post(f"/attachments/{a['id']}/attach", json={"message_id": msg["id"]},
                         headers=alice.headers).status_code == 200
    assert svc.http.delete(f"/messages/{msg['id']}", headers=alice.headers).status_code == 204
    run_job(svc)
    assert not any(a["id"] in k for k in keys(s3_endpoint))
    assert httpx.get(got["url"]).status_code in (403, 404)  # S3 answers 403 for a missing key to some callers


def test_presigned_upload_to_the_bucket(svc: RunningService, s3_endpoint: str) -> None:
    alice = svc.user()
    conv = group(svc, alice)
    p = svc.http.post(f"/conversations/{conv}/attachments/presign", json={"filename": "memo.wav"},
                      headers=alice.headers).json()
    assert p["upload_url"].startswith(s3_endpoint)
    assert httpx.put(p["upload_url"], content=media.wav(2.0)).status_code == 200
    r = svc.http.post(f"/attachments/{p['attachment_id']}/confirm", headers=alice.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["kind"], r.json()["duration_ms"]) == ("audio", 2000)
    # Oversized in the bucket: refused at confirmation, and removed from the bucket.
    p = svc.http.post(f"/conversations/{conv}/attachments/presign", json={"filename": "big.png"},
                      headers=alice.headers).json()
    assert httpx.put(p["upload_url"], content=b"\x89PNG\r\n\x1a\n" + b"\x00" * (10 * 1024 * 1024)).status_code == 200
    assert svc.http.post(f"/attachments/{p['attachment_id']}/confirm", headers=alice.headers).status_code == 413
    assert not any(p["attachment_id"] in k for k in keys(s3_endpoint))


def test_presigned_urls_carry_the_configured_lifetime(new_database: Callable[..., str], s3_endpoint: str,
                                                      aws_env: None) -> None:
    svc = start_service(new_database(), rate_limits={}, attachments=s3_settings(s3_endpoint, url_ttl_s=1))
    try:
        alice = svc.user()
        a = upload(svc, alice, group(svc, alice), media.png()).json()
        # moto does not enforce presigned expiry; the lifetime signed into the URL is what the store enforces.
        assert httpx.get(a["url"]).status_code == 200 and "X-Amz-Expires=1&" in a["url"]
        p = svc.http.post(f"/conversations/{a['conversation_id']}/attachments/presign", json={"filename": "x"},
                          headers=alice.headers).json()
        assert "X-Amz-Expires=1&" in p["upload_url"]
    finally:
        svc.stop()
