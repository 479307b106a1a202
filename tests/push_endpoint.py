"""A push service on loopback for tests: it records each push, decrypts its payload (RFC 8291,
aes128gcm) with the subscriber's keys, and answers 201, or 410 for endpoints marked gone."""

from __future__ import annotations

import base64
import os
import queue
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Device:
    """A browser's subscription keys."""

    path: str
    private_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth_secret: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self, base_url: str) -> dict[str, Any]:
        public = self.private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                            serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": base_url + self.path, "keys": {"p256dh": b64(public), "auth": b64(self.auth_secret)}}


@dataclass
class Push:
    path: str
    headers: dict[str, str]
    plaintext: bytes


class PushEndpoint:
    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.gone: set[str] = set()
        self.received: queue.Queue[Push] = queue.Queue()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path in endpoint.gone:
                    self.send_response(410)
                    self.end_headers()
                    return
                device = endpoint.devices[self.path]
                plain = http_ece.decrypt(body, private_key=device.private_key, auth_secret=device.auth_secret,
                                         version="aes128gcm")
                endpoint.received.put(Push(self.path, {k.lower(): v for k, v in self.headers.items()}, plain))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def device(self) -> Device:
        device = Device(f"/push/{len(self.devices)}")
        self.devices[device.path] = device
        return device

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
