"""An httpx transport that sends requests with aiohttp.

The probes speak httpx (its Request and Response types are in every HTTP probe), but httpx's own
async transport costs about 2 ms of CPU per request on loopback, and a full check sends hundreds
of requests from one process. aiohttp's HTTP/1.1 client costs about a quarter of that. This
transport only moves bytes: httpx still builds the request, follows (or not) redirects, decodes
the body and keeps cookies, so a probe sees exactly what it would with httpx's transport.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
from yarl import URL


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    t: dict[str, Any] = request.extensions.get("timeout") or {}
    return aiohttp.ClientTimeout(total=None, connect=t.get("connect"), sock_connect=t.get("connect"),
                                 sock_read=t.get("read"))


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, max_connections: int = 64) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # Idle connections are dropped before common servers close them (uvicorn after 5 s), so a
                # request never goes out on a connection the server is closing ("Server disconnected").
                connector=aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=4),
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
                auto_decompress=False,  # httpx decodes Content-Encoding itself
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
                trust_env=True,  # HTTP(S)_PROXY, NO_PROXY and netrc, as httpx honours them
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        try:
            async with self._client().request(
                request.method, URL(str(request.url), encoded=True),  # httpx already encoded it
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
                data=body or None, allow_redirects=False, timeout=_timeout(request), compress=None,
            ) as response:
                # A stream, not content=: httpx then closes it and stamps `elapsed` as with its own transport.
                stream = httpx.ByteStream(await response.read())
                return httpx.Response(response.status, headers=list(response.raw_headers), stream=stream,
                                      request=request, extensions={"http_version": b"HTTP/1.1"})
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
