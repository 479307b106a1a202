"""http.attachments: file uploads as the seed checklists require them, observed from outside.

Uploads, signed URLs and attaching are operations of the target's API map (upload_attachment,
attachment_url, attach_attachment, delete_attachment); a target whose map lacks them is skipped. The
`/health` capability `attachments` may add the limits and a clean-up job. Each check uploads as fresh
probe users, into a conversation made for the run.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx

from msgops import apimap
from msgops.probes import probe
from msgops.probes.context import CannotEvaluate, Context, ProbeUser
from msgops.probes.http import media
from msgops.probes.http.capabilities import feature
from msgops.probes.http.common import SetupFailed, exchange, group, operation, send, target_of, trim, users
from msgops.results import Outcome, failed, passed

AttachmentCheck = Literal["size_limit", "type_sniffing", "member_only_urls", "url_expiry", "deleted_message_files",
                          "image_processing", "voice_duration"]
SEED_LIMIT_BYTES = 10 * 1024 * 1024  # seed 001: "File Size Limit 10MB"
_REFUSED = (400, 413, 415, 422)


async def _cap(ctx: Context) -> dict[str, Any]:
    return await feature(ctx, "attachments", "file attachments", "upload_attachment")


async def _upload(ctx: Context, user: ProbeUser, conv: str, data: bytes, filename: str,
                  content_type: str = "application/octet-stream") -> apimap.Answer:
    answer = await apimap.call(ctx, user, "upload_attachment", conversation_id=conv, file=data, filename=filename,
                               content_type=content_type)
    if answer.ok and answer.fields.get("id"):
        await _delete_after_run(ctx, user, str(answer["id"]))
    return answer


async def _delete_after_run(ctx: Context, user: ProbeUser, attachment_id: str) -> None:
    """Remove the probe's upload (row and stored files) when the run ends: checks leave nothing behind."""
    if await apimap.lookup(ctx, "delete_attachment") is None:
        ctx.leftovers.append(f"attachment {attachment_id} stays: the API map has no delete_attachment")
        return

    async def delete() -> None:
        await apimap.call(ctx, user, "delete_attachment", attachment_id=attachment_id)

    ctx.on_cleanup(delete)


async def _uploaded(ctx: Context, user: ProbeUser, conv: str, data: bytes, filename: str) -> dict[str, Any]:
    answer = await _upload(ctx, user, conv, data, filename)
    if not answer.ok:
        r = answer.response
        raise SetupFailed(f"could not upload a valid {filename}: {target_of(r)} answered {r.status_code} "
                             f"{trim(r.text, 200)}")
    return answer.fields


async def _get(ctx: Context, user: ProbeUser, attachment_id: str) -> apimap.Answer:
    return await apimap.call(ctx, user, "attachment_url", attachment_id=attachment_id)


async def _fetch(url: str) -> httpx.Response:
    """A signed URL, fetched as anyone holding it would: no credentials."""
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url)


async def _room(ctx: Context, members: int = 1) -> tuple[list[ProbeUser], str]:
    people = await users(ctx, *(["attendee"] * (members + 1)))
    conv = await group(ctx, people[0], title="msgops attachment probe", members=tuple(people[1:]))
    return people, conv


async def size_limit(ctx: Context, cap: dict[str, Any], limit_bytes: int) -> Outcome:
    (owner,), conv = await _room(ctx, 0)
    small = (await _upload(ctx, owner, conv, media.pdf(1024), "msgops-small.pdf")).response
    if small.status_code not in (200, 201):
        raise CannotEvaluate(f"the target refused a 1 KB PDF: {target_of(small)} answered {small.status_code} "
                             f"{trim(small.text, 200)}")
    big = (await _upload(ctx, owner, conv, media.pdf(limit_bytes + 1), "msgops-oversize.pdf")).response
    evidence = {"limit_bytes": limit_bytes, "advertised_max_bytes": cap.get("max_bytes"),
                "within_limit": exchange(small), "oversize": exchange(big)}
    if big.status_code != 413:
        return failed(f"an upload of {limit_bytes + 1} bytes (limit {limit_bytes}) answered {big.status_code}, "
                      f"not 413: {target_of(big)}", **evidence)
    return passed(f"an upload of {limit_bytes + 1} bytes was refused with 413; 1 KB was accepted", **evidence)


async def type_sniffing(ctx: Context) -> Outcome:
    (owner,), conv = await _room(ctx, 0)
    real = (await _upload(ctx, owner, conv, media.png(), "msgops-real.png", "image/png")).response
    if real.status_code not in (200, 201):
        raise CannotEvaluate(f"the target refused a valid PNG: {target_of(real)} answered {real.status_code}")
    fake = (await _upload(ctx, owner, conv, media.executable(), "msgops-probe.png", "image/png")).response
    evidence = {"valid_png": exchange(real), "executable_named_png": exchange(fake)}
    if fake.status_code not in _REFUSED:
        return failed(f"an executable named msgops-probe.png, declared image/png, answered {fake.status_code}: "
                      f"the type is taken from the name or header, not the content ({target_of(fake)})", **evidence)
    return passed(f"an executable named .png was refused ({fake.status_code}); a real PNG was accepted", **evidence)


async def member_only_urls(ctx: Context) -> Outcome:
    (owner, member), conv = await _room(ctx, 1)
    (outsider,) = await users(ctx, "attendee")
    made = await _uploaded(ctx, owner, conv, media.png(), "msgops-members.png")
    aid = str(made["id"])
    answer = await _get(ctx, member, aid)
    theirs = answer.response
    url = answer.fields.get("url") if answer.ok else None
    if not url:
        raise CannotEvaluate(f"a member got no signed URL: {target_of(theirs)} answered {theirs.status_code} "
                             f"{trim(theirs.text, 200)}")
    download = await _fetch(str(url))
    stranger = (await _get(ctx, outsider, aid)).response
    leaked = stranger.status_code < 300 or (str(url).split("?")[0] in stranger.text)
    tampered = await _fetch(_tamper(str(url)))
    evidence = {"attachment": aid, "member": exchange(theirs), "download": {"status": download.status_code},
                "outsider": exchange(stranger), "tampered_url": {"status": tampered.status_code}}
    if leaked:
        return failed(f"a non-member obtained attachment {aid}: {target_of(stranger)} answered "
                      f"{stranger.status_code}", **evidence)
    if download.status_code != 200:
        return failed(f"the member's signed URL for attachment {aid} answered {download.status_code}", **evidence)
    if tampered.status_code == 200:
        return failed(f"a signed URL with a changed signature still served attachment {aid}", **evidence)
    return passed(f"only members got a URL for attachment {aid} ({stranger.status_code} for an outsider); "
                  f"a tampered URL answered {tampered.status_code}", **evidence)


def _tamper(url: str) -> str:
    """The URL with its signature changed: a character a few places from the end flipped. Not the last
    one: in base64 the last character may carry unused bits, so changing it can leave the bytes as
    they were, and a correct server would then rightly serve the file."""
    at = max(0, len(url) - 5)
    old = url[at]
    new = "A" if old != "A" else "B"
    return url[:at] + new + url[at + 1:]


def _lifetime(url: str, body: dict[str, Any]) -> float | None:
    """Seconds from now until the URL expires, from the answer's url_expires_at or the URL itself."""
    query = {k.lower(): v for k, v in parse_qs(urlsplit(url).query).items()}
    if "x-amz-expires" in query:
        return float(query["x-amz-expires"][0])
    if "expires" in query:  # S3 v2 / GCS: a Unix time
        return float(query["expires"][0]) - time.time()
    expires_at = body.get("url_expires_at")
    if isinstance(expires_at, str):
        return datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp() - datetime.now(UTC).timestamp()
    return None


async def url_expiry(ctx: Context, max_ttl_s: int, wait_s: float) -> Outcome:
    (owner,), conv = await _room(ctx, 0)
    made = await _uploaded(ctx, owner, conv, media.png(), "msgops-expiry.png")
    body = (await _get(ctx, owner, str(made["id"]))).fields
    url = str(body.get("url") or "")
    if not url:
        raise CannotEvaluate("the target answered no signed URL for the uploader's own attachment")
    lifetime = _lifetime(url, body)
    evidence: dict[str, Any] = {"attachment": made["id"], "url": trim(url.split("?")[0], 120),
                                "lifetime_s": None if lifetime is None else round(lifetime, 1),
                                "max_ttl_s": max_ttl_s}
    if lifetime is None:
        return failed(f"the signed URL of attachment {made['id']} states no expiry (no url_expires_at, "
                      "X-Amz-Expires or Expires)", **evidence)
    if lifetime > max_ttl_s:
        return failed(f"the signed URL of attachment {made['id']} lives {lifetime:.0f} s, over {max_ttl_s} s",
                      **evidence)
    if lifetime <= wait_s:
        await asyncio.sleep(max(lifetime, 0) + 1.5)
        late = await _fetch(url)
        evidence["after_expiry"] = {"status": late.status_code}
        if late.status_code == 200:
            return failed(f"the signed URL of attachment {made['id']} still served the file "
                          f"{lifetime + 1.5:.0f} s after it said it expires", **evidence)
        return passed(f"the signed URL expired: {late.status_code} after its {lifetime:.0f} s", **evidence)
    return passed(f"signed URLs live {lifetime:.0f} s (at most {max_ttl_s} s)", **evidence)


async def deleted_message_files(ctx: Context, cap: dict[str, Any]) -> Outcome:
    (owner,), conv = await _room(ctx, 0)
    made = await _uploaded(ctx, owner, conv, media.png(), "msgops-deleted.png")
    aid = str(made["id"])
    message = await send(ctx, owner, conv, f"msgops attachment probe {uuid.uuid4().hex[:8]}")
    await operation(ctx, owner, "attach_attachment", "attach the upload to a message", attachment_id=aid,
                    message_id=str(message["id"]))
    url = str((await _get(ctx, owner, aid)).fields.get("url") or "")
    before = await _fetch(url) if url else None
    if before is None or before.status_code != 200:
        raise CannotEvaluate(f"the attachment's signed URL did not serve it before the deletion "
                             f"({before.status_code if before else 'no URL'})")
    await operation(ctx, owner, "delete_message", "delete the message", conversation_id=conv,
                    message_id=str(message["id"]))
    job = cap.get("cleanup_job")
    cleanup = None
    if isinstance(job, str):
        r = await ctx.http.post(f"/admin/jobs/{job}/run", headers=await ctx.personas.service_headers())
        cleanup = {"job": job, "status": r.status_code}
        if r.status_code != 200:
            raise CannotEvaluate(f"could not run the cleanup job {job}: POST /admin/jobs/{job}/run answered "
                                 f"{r.status_code} {trim(r.text, 200)}")
    after = await _fetch(url)
    listed = (await _get(ctx, owner, aid)).response
    evidence = {"attachment": aid, "message_id": message["id"], "before": before.status_code, "cleanup": cleanup,
                "after": after.status_code, "attachment_after": listed.status_code}
    if after.status_code == 200:
        return failed(f"attachment {aid}'s file is still served from storage after its message was deleted "
                      f"and the cleanup ran", **evidence)
    if listed.status_code == 200:
        return failed(f"attachment {aid} is still listed after its message was deleted", **evidence)
    return passed(f"the file of a deleted message is gone from storage ({after.status_code})", **evidence)


async def image_processing(ctx: Context) -> Outcome:
    (owner,), conv = await _room(ctx, 0)
    original = media.jpeg_with_exif()
    made = await _uploaded(ctx, owner, conv, original, "msgops-photo.jpg")
    body = (await _get(ctx, owner, str(made["id"]))).fields
    stored = await _fetch(str(body.get("url") or "")) if body.get("url") else None
    evidence = {"attachment": made["id"], "uploaded_has_exif": media.has_exif(original),
                "served": None if stored is None else {"status": stored.status_code, "bytes": len(stored.content)},
                "thumbnail_url": bool(body.get("thumbnail_url")), "width": body.get("width")}
    if stored is None or stored.status_code != 200:
        raise CannotEvaluate("the uploaded photo could not be downloaded through its signed URL")
    if media.has_exif(stored.content):
        return failed(f"attachment {made['id']} is served with the EXIF block it was uploaded with "
                      "(camera, GPS position)", **evidence)
    if not body.get("thumbnail_url"):
        return failed(f"image attachment {made['id']} has no thumbnail", **evidence)
    return passed("the photo is served without EXIF and has a thumbnail", **evidence)


async def voice_duration(ctx: Context) -> Outcome:
    (owner,), conv = await _room(ctx, 0)
    made = await _uploaded(ctx, owner, conv, media.wav(1.5), "msgops-voice.wav")
    duration = made.get("duration_ms")
    evidence = {"attachment": made["id"], "kind": made.get("kind"), "duration_ms": duration, "expected_ms": 1500}
    if not isinstance(duration, int | float) or abs(duration - 1500) > 100:
        return failed(f"voice message {made['id']} of 1.5 s reports duration_ms={duration}", **evidence)
    return passed(f"a 1.5 s voice message reports {duration} ms", **evidence)


@probe("http.attachments",
       what="Uploads files as probe users through the target's API map (upload_attachment, attachment_url, "
            "attach_attachment, delete_attachment) and checks one property: size_limit (413 over the limit), "
            "type_sniffing (an executable "
            "renamed .png is refused), member_only_urls (only members get signed URLs; a tampered URL fails), "
            "url_expiry (signed URLs are short-lived and stop working), deleted_message_files (a deleted "
            "message's file leaves storage), image_processing (EXIF removed, thumbnail), voice_duration.",
       why="Uploads are where a messaging service stores what users did not mean to publish: executables "
           "behind image names, GPS positions in photos, files readable by anyone with an old link.",
       example="type_sniffing: an MZ executable uploaded as cat.png with Content-Type image/png answers 201.",
       fix="Judge types by content against an allow-list, enforce the size limit while streaming, hand out "
           "short-lived signed URLs only after a membership check, and delete files with their messages.")
async def http_attachments(ctx: Context, check: AttachmentCheck, limit_bytes: int = SEED_LIMIT_BYTES,
                           max_ttl_s: int = 3600, wait_s: float = 10.0) -> Outcome:
    cap = await _cap(ctx)
    if check == "size_limit":
        return await size_limit(ctx, cap, limit_bytes)
    if check == "type_sniffing":
        return await type_sniffing(ctx)
    if check == "member_only_urls":
        return await member_only_urls(ctx)
    if check == "url_expiry":
        return await url_expiry(ctx, max_ttl_s, wait_s)
    if check == "deleted_message_files":
        return await deleted_message_files(ctx, cap)
    if check == "image_processing":
        return await image_processing(ctx)
    if check == "voice_duration":
        return await voice_duration(ctx)
    raise ValueError(f"unknown attachments check {check!r}")
