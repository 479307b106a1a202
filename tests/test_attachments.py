"""Attachments against a real service on loopback: local storage here, S3 in test_attachments_s3.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.attachments.config import AttachmentSettings
from service.attachments.names import sanitize_filename
from service.attachments.sniff import sniff
from service.storage.config import StorageSettings
from tests import media_samples as media
from tests.support import RunningService, User, start_service

MB = 1024 * 1024


def local_settings(root: Path, **overrides: Any) -> AttachmentSettings:
    values: dict[str, Any] = {"storage": StorageSettings(root=str(root), signing_key="k" * 32)}
    values.update(overrides)
    return AttachmentSettings(**values)


@pytest.fixture(scope="module")
def svc(new_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    root = tmp_path_factory.mktemp("attachments")
    running = start_service(new_database(), rate_limits={},
                            attachments=local_settings(root, max_image_side=2000, max_image_pixels=2_000_000,
                                                       unattached_grace_s=3600))
    yield running
    running.stop()


def group(svc: RunningService, owner: User, *members: User) -> str:
    r = svc.http.post("/conversations", headers=owner.headers,
                      json={"kind": "group", "title": "t", "member_ids": [str(m.id) for m in members]})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def upload(svc: RunningService, user: User, conv: str, data: bytes, filename: str = "f.bin",
           content_type: str = "application/octet-stream") -> httpx.Response:
    return svc.http.post(f"/conversations/{conv}/attachments", params={"filename": filename}, content=data,
                         headers={**user.headers, "Content-Type": content_type})


def root_of(svc: RunningService) -> Path:
    return Path(svc.settings.attachments.storage.root)


def stored_files(svc: RunningService) -> set[str]:
    return {str(p.relative_to(root_of(svc))) for p in root_of(svc).rglob("*") if p.is_file()}


def run_job(svc: RunningService, name: str = "cleanup_attachments") -> dict[str, Any]:
    r = svc.http.post(f"/admin/jobs/{name}/run", headers=svc.service_user().headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_sniffing_ignores_names_and_declared_types() -> None:
    assert sniff(media.png()[:64]).mime == "image/png"  # type: ignore[union-attr]
    assert sniff(media.wav()[:64]).mime == "audio/wav"  # type: ignore[union-attr]
    assert sniff(media.executable()[:64]) is None
    assert sanitize_filename("../../etc/passwd.png", ".png") == "passwd.png"
    assert sanitize_filename("photo.exe", ".jpg") == "photo.jpg"
    assert sanitize_filename("a\x00b<script>.png", ".png") == "ab_script.png"
    assert sanitize_filename("", ".pdf") == "file.pdf"


def test_image_upload_strips_exif_and_makes_a_thumbnail(svc: RunningService) -> None:
    alice, bob = svc.user(), svc.user()
    conv = group(svc, alice, bob)
    original = media.jpeg_with_exif(640, 480)
    assert media.GPS_TAG in media.exif_of(original)
    r = upload(svc, alice, conv, original, "../holiday photo.jpeg", "text/plain")
    assert r.status_code == 201, r.text
    a = r.json()
    assert (a["kind"], a["content_type"], a["width"], a["height"]) == ("image", "image/jpeg", 640, 480)
    assert a["filename"] == "holiday photo.jpg" and a["status"] == "ready"
    # A member gets signed URLs; the file has lost its EXIF, the thumbnail is small.
    got = svc.http.get(f"/attachments/{a['id']}", headers=bob.headers).json()
    file = httpx.get(got["url"])
    assert file.status_code == 200 and file.headers["content-type"] == "image/jpeg"
    assert "holiday%20photo.jpg" in file.headers["content-disposition"]
    assert media.exif_of(file.content) == {}
    thumb = httpx.get(got["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff" and len(thumb.content) < len(file.content)


def test_voice_message_gets_its_duration(svc: RunningService) -> None:
    alice = svc.user()
    conv = group(svc, alice)
    r = upload(svc, alice, conv, media.wav(1.5), "voice.webm")
    assert r.status_code == 201, r.text
    assert (r.json()["kind"], r.json()["duration_ms"], r.json()["filename"]) == ("audio", 1500, "voice.wav")


def test_refusals(svc: RunningService) -> None:
    alice = svc.user()
    conv = group(svc, alice)
    before = stored_files(svc)
    # An executable renamed .png, declared image/png: refused by content.
    r = upload(svc, alice, conv, media.executable(), "cat.png", "image/png")
    assert r.status_code == 415 and "allowed" in r.json()["detail"]
    # Over 10 MB: refused from Content-Length, and while streaming when there is none.
    r = upload(svc, alice, conv, b"\x89PNG\r\n\x1a\n" + b"\x00" * (10 * MB))
    assert r.status_code == 413, r.text

    def chunks() -> Iterator[bytes]:
        for _ in range(11):
            yield b"\x00" * MB

    r = svc.http.post(f"/conversations/{conv}/attachments", content=chunks(), headers=alice.headers)
    assert r.status_code == 413, r.text
    # Too many pixels on one side; a corrupt image; an empty file.
    assert upload(svc, alice, conv, media.png(2100, 10)).status_code == 422
    r = upload(svc, alice, conv, media.png(1500, 1500))  # the module's service allows 2 MP
    assert r.status_code == 422 and "pixels" in r.json()["detail"]
    assert upload(svc, alice, conv, media.png()[:40]).status_code == 415
    assert upload(svc, alice, conv, b"").status_code == 422
    assert stored_files(svc) == before
    assert svc.sql("select count(*) from public.attachments where conversation_id = %s", (conv,)) == [(0,)]


def test_only_members_get_signed_urls_and_urls_are_signed(svc: RunningService) -> None:
    alice, eve = svc.user(), svc.user()
    conv = group(svc, alice)
    a = upload(svc, alice, conv, media.png()).json()
    assert svc.http.get(f"/attachments/{a['id']}", headers=eve.headers).status_code == 404
    assert svc.http.get(f"/conversations/{conv}/attachments", headers=eve.headers).status_code == 404
    assert upload(svc, eve, conv, media.png()).status_code == 404
    assert svc.http.get(f"/attachments/{a['id']}").status_code == 401
    url = svc.http.get(f"/attachments/{a['id']}", headers=alice.headers).json()["url"]
    forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert httpx.get(forged).status_code == 403


def test_signed_urls_expire(new_database: Callable[..., str], tmp_path: Path) -> None:
    svc = start_service(new_database(), rate_limits={}, attachments=local_settings(tmp_path, url_ttl_s=2))
    try:
        alice = svc.user()
        a = upload(svc, alice, group(svc, alice), media.png()).json()
        assert httpx.get(a["url"]).status_code == 200  # a URL lives at least its TTL (whole seconds, rounded up)
        time.sleep(3.1)
        r = httpx.get(a["url"])
        assert r.status_code == 403 and "expired" in r.json()["detail"]
    finally:
        svc.stop()


def test_direct_to_storage_upload(svc: RunningService) -> None:
    alice = svc.user()
    conv = group(svc, alice)
    p = svc.http.post(f"/conversations/{conv}/attachments/presign", json={"filename": "scan.png"},
                      headers=alice.headers)
    assert p.status_code == 201, p.text
    aid = p.json()["attachment_id"]
    assert svc.http.post(f"/attachments/{aid}/confirm", headers=alice.headers).status_code == 409
    assert httpx.put(p.json()["upload_url"], content=b"\x00" * (10 * MB + 1)).status_code == 413
    assert httpx.put(p.json()["upload_url"], content=media.png(30, 20)).status_code == 204
    r = svc.http.post(f"/attachments/{aid}/confirm", headers=alice.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["width"], r.json()["filename"]) == ("ready", 30, "scan.png")
    # A presigned upload of an executable is refused at confirmation and leaves nothing behind.
    p = svc.http.post(f"/conversations/{conv}/attachments/presign", json={"filename": "x.png"},
                      headers=alice.headers).json()
    assert httpx.put(p["upload_url"], content=media.executable()).status_code == 204
    assert svc.http.post(f"/attachments/{p['attachment_id']}/confirm", headers=alice.headers).status_code == 415
    assert not any(p["attachment_id"] in f for f in stored_files(svc))


def test_attached_files_go_with_their_message(svc: RunningService) -> None:
    alice, bob = svc.user(), svc.user()
    conv = group(svc, alice, bob)
    a = upload(svc, alice, conv, media.jpeg_with_exif(100, 100)).json()
    msg = svc.http.post(f"/conversations/{conv}/messages", json={"content": "look"}, headers=alice.headers).json()
    bobs = svc.http.post(f"/conversations/{conv}/messages", json={"content": "mine"}, headers=bob.headers).json()
    assert svc.http.post(f"/attachments/{a['id']}/attach", json={"message_id": bobs["id"]},
                         headers=alice.headers).status_code == 409
    r = svc.http.post(f"/attachments/{a['id']}/attach", json={"message_id": msg["id"]}, headers=alice.headers)
    assert r.status_code == 200 and r.json()["message_id"] == msg["id"]
    listed = svc.http.get(f"/conversations/{conv}/attachments", params={"message_id": msg["id"]},
                          headers=bob.headers).json()
    assert [x["id"] for x in listed] == [a["id"]]
    url = listed[0]["url"]
    assert any(a["id"] in f for f in stored_files(svc))
    assert svc.http.delete(f"/messages/{msg['id']}", headers=alice.headers).status_code == 204
    assert svc.http.get(f"/attachments/{a['id']}", headers=bob.headers).status_code == 404
    assert run_job(svc)["affected"] >= 2  # the file and its thumbnail
    assert not any(a["id"] in f for f in stored_files(svc))
    assert httpx.get(url).status_code == 404


def test_cleanup_removes_never_attached_uploads_and_erased_accounts(svc: RunningService) -> None:
    alice, bob = svc.user(), svc.user()
    conv = group(svc, alice, bob)
    old = upload(svc, alice, conv, media.png()).json()
    fresh = upload(svc, alice, conv, media.png()).json()
    bobs = upload(svc, bob, conv, media.png()).json()
    svc.sql("update public.attachments set created_at = now() - interval '2 hours' where id = %s", (old["id"],))
    r = svc.http.delete(f"/admin/users/{bob.id}", headers=svc.service_user().headers)
    assert r.status_code in (200, 204), r.text
    run_job(svc)
    left = {str(r[0]) for r in svc.sql("select id from public.attachments where conversation_id = %s", (conv,))}
    assert left == {fresh["id"]}
    files = stored_files(svc)
    assert any(fresh["id"] in f for f in files)
    assert not any(old["id"] in f or bobs["id"] in f for f in files)
    assert svc.sql("select count(*) from msgops_meta.attachment_deletions") == [(0,)]


def test_cleanup_is_scheduled_daily_at_three() -> None:
    from service.jobs import JOBS

    assert JOBS["cleanup_attachments"].schedule.cron == "0 3 * * *"


def test_attachments_can_be_turned_off(new_database: Callable[..., str]) -> None:
    svc = start_service(new_database(), attachments=AttachmentSettings(enabled=False))
    try:
        alice = svc.user()
        r = upload(svc, alice, str(uuid.uuid4()), media.png())
        assert r.status_code == 404 and "turned off" in r.json()["detail"]
        assert svc.http.get("/health").json()["capabilities"]["attachments"] is None
    finally:
        svc.stop()
