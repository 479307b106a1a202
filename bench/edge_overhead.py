"""What the service's edge middleware costs per request, beside a bare ASGI app in the same run.

    python bench/edge_overhead.py [--requests 200000]

Calls an ASGI app that answers 200 at once, in-process (no sockets, no server), as:
- `bare`:        the app alone (the baseline);
- `request id`:  behind RequestIdMiddleware (GET: an id made, set in the log context, sent back);
- `edge GET`:    behind both edge middlewares (a GET has no body: no token check);
- `edge POST`:   behind both, a POST with a JSON body and a bearer token (verified from the cache) and
                 the body counted while it is read.
It prints microseconds per request for each, and the difference from the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from service.auth import TokenVerifier, mint_token
from service.limits import BodyGuardMiddleware
from service.request_id import RequestIdMiddleware

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["method"] == "POST":
        while (await receive()).get("more_body"):
            pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


def scope(method: str, token: str) -> dict[str, Any]:
    headers = [(b"host", b"x"), (b"authorization", f"Bearer {token}".encode())]
    if method == "POST":
        headers += [(b"content-type", b"application/json"), (b"content-length", b"40")]
    return {"type": "http", "method": method, "path": "/conversations/x/messages", "headers": headers}


async def run(handler: Any, method: str, token: str, n: int) -> float:
    body = {"type": "http.request", "body": b'{"content": "hello there, how are you?"}', "more_body": False}

    async def receive() -> dict[str, Any]:
        return body

    async def send(message: dict[str, Any]) -> None:
        pass

    s = scope(method, token)
    started = time.perf_counter()
    for _ in range(n):
        await handler(dict(s), receive, send)
    return (time.perf_counter() - started) / n * 1e6


async def main(n: int) -> None:
    verifier = TokenVerifier(SECRET, "authenticated", ("HS256",))
    token = mint_token(SECRET, uuid.uuid4())
    verifier.verify(token)  # as in the service: the first request of a token fills the cache
    edge = RequestIdMiddleware(BodyGuardMiddleware(app, verifier=verifier, max_body_bytes=65536))
    variants = [("bare", app, "GET"), ("request id", RequestIdMiddleware(app), "GET"),
                ("edge GET", edge, "GET"), ("bare POST", app, "POST"), ("edge POST", edge, "POST")]
    await run(edge, "POST", token, 1000)  # warm up
    results = {name: await run(handler, method, token, n) for name, handler, method in variants}
    for name, us in results.items():
        base = results["bare POST" if name.endswith("POST") else "bare"]
        print(f"{name:>12}: {us:6.2f} µs/request   (+{us - base:5.2f} µs over its baseline)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().requests))
