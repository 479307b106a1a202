"""One ASGI middleware for what every HTTP response needs: security headers, metrics, access log."""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import metrics

log = logging.getLogger("service.access")

_API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
# /docs renders Swagger UI, whose assets FastAPI loads from a CDN.
_DOCS_CSP = (b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
             b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https:; "
             b"frame-ancestors 'none'")
_COMMON = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# API answers are per-user: no shared cache may keep them.
_NO_STORE = (b"cache-control", b"no-store")
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


def _behind_tls(scope: Scope) -> bool:
    if scope.get("scheme") == "https":
        return True
    return any(k == b"x-forwarded-proto" and v == b"https" for k, v in scope.get("headers", []))


class HttpEdgeMiddleware:
    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        extra = [(b"content-security-policy", _DOCS_CSP if path in ("/docs", "/redoc") else _API_CSP), *_COMMON]
        if self.hsts or _behind_tls(scope):
            extra.append(_HSTS)
        status_holder: dict[str, Any] = {"status": 500}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append(_NO_STORE)
                message["headers"] = headers + extra
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            status = status_holder["status"]
            metrics.series(metrics.http_requests, scope["method"], template, str(status)).inc()
            metrics.series(metrics.http_latency, scope["method"], template).observe(elapsed)
            if log.isEnabledFor(logging.INFO):  # the record's dict is built on every request otherwise
                log.info("request", extra={"method": scope["method"], "route": template, "path": path,
                                           "status": status, "ms": round(elapsed * 1000, 2)})
