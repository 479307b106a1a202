"""The offline_push check of http.notifications: msgops plays the push service.

msgops listens on loopback as a web push endpoint, subscribes a probe user's "device" to it through
the route the target advertises (/health capabilities.push), has another user message them while
they have no open socket, and decrypts what arrives (RFC 8291, aes128gcm) with the device's keys.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import uuid
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from msgops import apimap
from msgops.probes.context import Context, NotRun
from msgops.probes.http.capabilities import feature
from msgops.probes.http.common import api_host, direct, is_loopback, require, send, trim, users
from msgops.results import Outcome, failed, passed

_WAIT_S = 10.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


class Device:
    """A browser's push subscription keys: a P-256 key pair and an auth secret."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                         serialization.PublicFormat.UncompressedPoint)
        self.auth = os.urandom(16)

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 / RFC 8188 aes128gcm, one record."""
        salt, (rs,), idlen = body[:16], struct.unpack(">I", body[16:20]), body[20]
        sender = body[21:21 + idlen]
        records = body[21 + idlen:]
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender)
        secret = self.key.exchange(ec.ECDH(), peer)
        ikm = _hkdf(self.auth, secret, b"WebPush: info\x00" + self.public + sender, 32)
        cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
        nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
        plain = AESGCM(cek).decrypt(nonce, records[:rs], None)
        return plain.rstrip(b"\x00")[:-1]  # the last record ends with the delimiter 0x02, then padding


class Receiver:
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def accept(request: web.Request) -> web.Response:
            await self.received.put((dict(request.headers), await request.read()))
            return web.Response(status=201)

        app = web.Application()
        app.router.add_post("/{tail:.*}", accept)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def offline_push(ctx: Context) -> Outcome:
    await feature(ctx, "push", "web push", "subscribe_push")
    if not is_loopback(api_host(ctx)):
        raise NotRun("offline_push needs the target to reach msgops' push endpoint on loopback: run it against "
                     "a target on this machine (msgops serve, or the service started locally)")
    receiver = Receiver()
    await receiver.start()
    try:
        sender, recipient = await users(ctx, "attendee", "attendee")
        device = Device()
        endpoint = f"{receiver.url}/push/{uuid.uuid4().hex}"
        answer = await apimap.call(ctx, recipient, "subscribe_push", endpoint=endpoint, p256dh=_b64(device.public),
                                   auth=_b64(device.auth))
        r = answer.response
        if r.status_code == 422:
            raise NotRun(f"the target refused msgops' plain-http push endpoint on loopback ({trim(r.text, 160)}): "
                         "allow http push endpoints for this run (the reference service: MSGOPS_PUSH_ALLOW_HTTP=1)")
        require(r, 200, 201, what="subscribe a device to web push")
        conv = await direct(ctx, sender, recipient)
        message = await send(ctx, sender, conv, f"msgops push probe {uuid.uuid4().hex[:8]}")
        evidence: dict[str, Any] = {"message_id": message["id"], "recipient_sockets": 0, "endpoint": endpoint}
        try:
            headers, body = await asyncio.wait_for(receiver.received.get(), _WAIT_S)
        except TimeoutError:
            return failed(f"no web push arrived within {_WAIT_S:.0f} s for direct message {message['id']} to an "
                          "offline member", **evidence)
        evidence["push"] = {"bytes": len(body), "content_encoding": headers.get("Content-Encoding"),
                            "authorization": trim(headers.get("Authorization", ""), 40)}
        try:
            payload = device.decrypt(body)
        except Exception as exc:  # any decryption failure is the target's wrong encryption
            return failed(f"the push for message {message['id']} does not decrypt with the device's keys "
                          f"(RFC 8291): {type(exc).__name__}", **evidence)
        evidence["payload"] = trim(payload.decode(errors="replace"), 300)
        if str(message["id"]) not in payload.decode(errors="replace"):
            return failed(f"a push arrived, but its payload does not name message {message['id']}", **evidence)
        with_vapid = headers.get("Authorization", "").lower().startswith(("vapid ", "webpush "))
        if not with_vapid:
            return failed("the push carries no VAPID authorization (RFC 8292)", **evidence)
        return passed("the offline member's device got an encrypted, VAPID-signed push naming the message",
                      **evidence)
    finally:
        await receiver.stop()


