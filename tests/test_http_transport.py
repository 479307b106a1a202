"""The probes' aiohttp transport behaves like httpx's own: the same request bytes reach the server,
the response keeps repeated headers, redirects are left to httpx, gzip is decoded once, and
network failures surface as the httpx exceptions the probes and the CLI already handle."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import httpx
import pytest

from msgops.embedded import free_port
from msgops.probes.http.transport import AiohttpTransport


class RawServer:
    """An HTTP/1.1 server on loopback that records each request head and body and answers a script."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, bytes]] = []
        self.answers: dict[bytes, bytes] = {}
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                target = head.split(b" ")[1]
                if target == b"/hang":
                    await asyncio.sleep(5)
                not_found = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
                writer.write(self.answers.get(target.split(b"?")[0], not_found))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    raw = RawServer()
    srv = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    raw.port = srv.sockets[0].getsockname()[1]
    async with srv:
        yield raw
        srv.close()


def client(base: str, **kwargs) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, transport=AiohttpTransport(), **kwargs)


async def test_request_bytes_and_response_headers_round_trip(server: RawServer):
    server.answers[b"/echo"] = (b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nset-cookie: a=1\r\n"
                                b"set-cookie: b=2\r\ncontent-length: 12\r\n\r\n{\"ok\": true}")
    async with client(f"http://127.0.0.1:{server.port}") as http:
        r = await http.post("/echo", params={"q": "' OR 1=1--"}, json={"content": "<b>hi</b>"},
                            headers={"Authorization": "Bearer t", "Origin": "https://evil.example"})
    head, body = server.requests[0]
    assert head.startswith(b"POST /echo?q=%27+OR+1%3D1-- HTTP/1.1\r\n")  # httpx's encoding, untouched
    lines = head.lower().split(b"\r\n")
    assert b"authorization: bearer t" in lines and b"origin: https://evil.example" in lines
    assert body == b'{"content":"<b>hi</b>"}'
    assert r.status_code == 201 and r.json() == {"ok": True}
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert r.elapsed.total_seconds() >= 0 and r.http_version == "HTTP/1.1"


async def test_redirects_are_httpx_s_to_follow_and_gzip_is_decoded_once(server: RawServer):
    payload = gzip.compress(b'{"page": 2}')
    server.answers[b"/old"] = b"HTTP/1.1 307 Temporary Redirect\r\nlocation: /new\r\ncontent-length: 0\r\n\r\n"
    server.answers[b"/new"] = (b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: "
                               + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    async with client(f"http://127.0.0.1:{server.port}") as http:
        first = await http.get("/old")
        followed = await http.get("/old", follow_redirects=True)
    assert first.status_code == 307 and first.headers["location"] == "/new"
    assert followed.status_code == 200 and followed.json() == {"page": 2}
    assert [h.split(b" ")[1] for h, _ in server.requests] == [b"/old", b"/old", b"/new"]


async def test_network_failures_are_httpx_exceptions(server: RawServer):
    async with client(f"http://127.0.0.1:{free_port()}") as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("/health")
    async with client(f"http://127.0.0.1:{server.port}", timeout=httpx.Timeout(5, read=0.2)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/hang")
