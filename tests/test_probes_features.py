"""http.attachments and http.notifications: pass on the reference service, fail on a service broken in
exactly the checked way, skip on a target that does not offer the feature, not_run without an API."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

import pytest

from msgops import probes
from msgops.config import Target
from msgops.probes import Context
from msgops.probes.http.attachments import AttachmentCheck
from msgops.probes.http.notifications import NotificationCheck
from msgops.results import Outcome
from service.attachments import media as service_media
from service.attachments.config import AttachmentSettings
from service.attachments.sniff import PNG
from service.notifications.config import PushSettings
from service.notifications.push import PushSender
from service.routes import attachments as attachment_routes
from service.storage.config import StorageSettings
from service.storage.local import LocalStorage
from tests.support import JWT_SECRET, RunningService, start_service


async def run(svc: RunningService | None, kind: str, **params: Any) -> Outcome:
    implementation = probes.get(kind)
    assert implementation is not None
    target = Target(api_url=svc.url, jwt_secret=JWT_SECRET) if svc else Target(jwt_secret=JWT_SECRET)
    ctx = Context(target)
    try:
        from msgops.probes.context import NotRun, Skip

        try:
            return await implementation.fn(ctx, **params)
        except Skip as exc:
            return Outcome("skip", str(exc), {})
        except NotRun as exc:
            return Outcome("not_run", str(exc), {})
    finally:
        await ctx.close()


@pytest.fixture
def make(new_database: Callable[..., str], tmp_path: Path) -> Iterator[Callable[..., RunningService]]:
    started: list[RunningService] = []

    def start(sql: str | None = None, **attachment_overrides: Any) -> RunningService:
        attachments = AttachmentSettings(storage=StorageSettings(root=str(tmp_path / f"s{len(started)}"),
                                                                 signing_key="k" * 32), **attachment_overrides)
        svc = start_service(new_database(), rate_limits={}, attachments=attachments,
                            push=PushSettings(allow_http_endpoints=True))
        started.append(svc)
        if sql:
            svc.sql(sql)
        return svc

    yield start
    for svc in started:
        svc.stop()


@pytest.fixture(scope="module")
def reference(new_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    root = tmp_path_factory.mktemp("probe-attachments")
    svc = start_service(new_database(), rate_limits={},
                        attachments=AttachmentSettings(storage=StorageSettings(root=str(root), signing_key="k" * 32)),
                        push=PushSettings(allow_http_endpoints=True))
    yield svc
    svc.stop()


ATTACHMENT_CHECKS = get_args(AttachmentCheck)  # the probe's signature is the one list of its checks
NOTIFICATION_CHECKS = get_args(NotificationCheck)


def test_checklists_name_only_checks_the_probes_declare() -> None:
    from msgops.checklist import load_checklists

    named = {(i.check.kind, i.check.params["check"]) for c in load_checklists() for i in c.items
             if i.check and i.check.kind in ("http.attachments", "http.notifications")}
    assert named and all(check in (ATTACHMENT_CHECKS if kind == "http.attachments" else NOTIFICATION_CHECKS)
                         for kind, check in named)


@pytest.mark.parametrize("check", sorted(ATTACHMENT_CHECKS))
async def test_attachment_checks_pass_on_the_reference(reference: RunningService, check: str) -> None:
    outcome = await run(reference, "http.attachments", check=check)
    assert outcome.status == "pass", (outcome.message, outcome.evidence)
    root = Path(reference.settings.attachments.storage.root)
    assert not [p for p in root.rglob("*") if p.is_file()], "the probe left files in storage"


@pytest.mark.parametrize("check", sorted(NOTIFICATION_CHECKS))
async def test_notification_checks_pass_on_the_reference(reference: RunningService, check: str) -> None:
    outcome = await run(reference, "http.notifications", check=check)
    assert outcome.status == "pass", (outcome.message, outcome.evidence)


async def test_size_limit_fails_when_oversize_uploads_are_accepted(make: Callable[..., RunningService]) -> None:
    outcome = await run(make(max_bytes=20 * 1024 * 1024), "http.attachments", check="size_limit")
    assert outcome.status == "fail" and "not 413" in outcome.message and outcome.evidence["oversize"]


async def test_type_sniffing_fails_when_the_name_is_trusted(make: Callable[..., RunningService],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    svc = make()
    monkeypatch.setattr(attachment_routes, "process",
                        lambda path, settings: service_media.Processed(PNG, path.stat().st_size))
    outcome = await run(svc, "http.attachments", check="type_sniffing")
    assert outcome.status == "fail" and "msgops-probe.png" in outcome.message


async def test_member_only_urls_fail_when_outsiders_see_attachments(make: Callable[..., RunningService]) -> None:
    svc = make("drop policy attachments_select on public.attachments; "
               "create policy attachments_select on public.attachments for select to authenticated using (true)")
    outcome = await run(svc, "http.attachments", check="member_only_urls")
    assert outcome.status == "fail" and "non-member obtained attachment" in outcome.message


async def test_url_expiry_fails_on_long_lived_urls_and_waits_out_short_ones(
        make: Callable[..., RunningService]) -> None:
    outcome = await run(make(url_ttl_s=30 * 86400), "http.attachments", check="url_expiry")
    assert outcome.status == "fail" and "over 3600 s" in outcome.message
    outcome = await run(make(url_ttl_s=1), "http.attachments", check="url_expiry")
    assert outcome.status == "pass" and outcome.evidence["after_expiry"]["status"] == 403


async def test_deleted_message_files_fail_when_storage_keeps_them(make: Callable[..., RunningService],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    svc = make()

    async def keep(self: LocalStorage, key: str) -> None:
        return None

    monkeypatch.setattr(LocalStorage, "delete", keep)
    outcome = await run(svc, "http.attachments", check="deleted_message_files")
    assert outcome.status == "fail" and "still served from storage" in outcome.message


async def test_image_processing_fails_when_exif_is_kept(make: Callable[..., RunningService],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    svc = make()
    real = service_media.process

    def keep_exif(path: Path, settings: AttachmentSettings) -> service_media.Processed:
        original = path.with_name("original")
        shutil.copyfile(path, original)
        done = real(path, settings)
        shutil.copyfile(original, path)
        return done

    monkeypatch.setattr(attachment_routes, "process", keep_exif)
    outcome = await run(svc, "http.attachments", check="image_processing")
    assert outcome.status == "fail" and "EXIF" in outcome.message


async def test_voice_duration_fails_without_a_duration(make: Callable[..., RunningService],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    svc = make()
    real = service_media.process
    monkeypatch.setattr(attachment_routes, "process",
                        lambda path, settings: dataclasses.replace(real(path, settings), duration_ms=None))
    outcome = await run(svc, "http.attachments", check="voice_duration")
    assert outcome.status == "fail" and "duration_ms=None" in outcome.message


BROKEN_MENTIONS = """
create function public.broken_mentions() returns trigger language plpgsql security definer set search_path = ''
as $$ begin
  insert into public.notifications (user_id, kind, conversation_id, message_id, seq, actor_id)
  select p.id, 'mention', new.conversation_id, new.id, new.seq, new.sender_id from public.profiles p
   where p.display_name <> '' and new.content like '%@' || p.display_name || '%' and p.id <> new.sender_id
     and not exists (select 1 from public.conversation_members m
                      where m.conversation_id = new.conversation_id and m.user_id = p.id);
  return null;
end $$;
create trigger broken_mentions after insert on public.messages for each row execute function public.broken_mentions();
"""

BROKEN_MUTE = """
create function public.forget_mute() returns trigger language plpgsql as $$
begin new.muted_until := null; return new; end $$;
create trigger forget_mute before insert or update on public.conversation_notification_settings
  for each row execute function public.forget_mute();
"""


async def test_mention_of_a_non_member_notifying_fails(make: Callable[..., RunningService]) -> None:
    outcome = await run(make(BROKEN_MENTIONS), "http.notifications", check="mention_members_only")
    assert outcome.status == "fail" and "not in the conversation" in outcome.message


async def test_muted_room_notifying_fails(make: Callable[..., RunningService]) -> None:
    outcome = await run(make(BROKEN_MUTE), "http.notifications", check="muted_room_silent")
    assert outcome.status == "fail" and "is muted until" in outcome.message


async def test_offline_push_fails_when_no_push_is_sent(make: Callable[..., RunningService],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    svc = make()
    monkeypatch.setattr(PushSender, "_post", lambda self, sub, payload: 201)
    outcome = await run(svc, "http.notifications", check="offline_push")
    assert outcome.status == "fail" and "no web push arrived" in outcome.message


async def test_skips_targets_without_the_feature_and_not_run_without_an_api(
        new_database: Callable[..., str]) -> None:
    svc = start_service(new_database(), attachments=AttachmentSettings(enabled=False),
                        push=PushSettings(enabled=False))
    try:
        outcome = await run(svc, "http.attachments", check="size_limit")
        assert outcome.status == "skip" and "capabilities.attachments" in outcome.message
        outcome = await run(svc, "http.notifications", check="offline_push")
        assert outcome.status == "skip" and "web push" in outcome.message
    finally:
        svc.stop()
    outcome = await run(None, "http.attachments", check="size_limit")
    assert outcome.status == "not_run" and "MSGOPS_API_URL" in outcome.message


def test_a_tampered_signature_changes_its_bytes() -> None:
    """Flipping the last base64 character can leave the decoded signature as it was (unused bits): the
    probe changes one that carries data, whatever the signature ends with."""
    import base64
    import hashlib
    import hmac

    from msgops.probes.http.attachments import _tamper

    for n in range(64):
        sig = base64.urlsafe_b64encode(hmac.new(b"k", str(n).encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
        url = f"http://127.0.0.1:1/attachments/blob/eyJrIjoxfQ.{sig}"
        tampered_sig = _tamper(url).rsplit(".", 1)[1]
        assert base64.urlsafe_b64decode(tampered_sig + "=") != base64.urlsafe_b64decode(sig + "=")
