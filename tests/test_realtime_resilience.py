"""Resume without gaps, slow consumers, shutdown, and several instances on one database."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import pytest

from tests.support import RunningService
from tests.test_realtime_helpers import Api, Client

pytestmark = pytest.mark.timeout(90)


async def _send_many(api: Api, user: object, conv: object, n: int, pause: float) -> None:
    for i in range(1, n + 1):
        await api.send(user, conv, f"message {i}")  # type: ignore[arg-type]
        await asyncio.sleep(pause)


async def test_resume_after_forced_disconnects_has_no_gap_and_no_duplicate(
        make_service: Callable[..., RunningService]) -> None:
    svc = make_service(rate_limits={})
    api = Api(svc)
    alice, bob = svc.user(), svc.user()
    conv = await api.group(alice, bob)
    total = 90
    sender = asyncio.create_task(_send_many(api, alice, conv, total, pause=0.01))
    seqs: list[int] = []
    contents: list[str] = []
    try:
        b = await Client.open(svc, bob)
        await b.join(conv, since_seq=0)
        drops = 0
        while not seqs or seqs[-1] < total:
            frame = await b.next("message_received", timeout=10)
            seqs.append(frame["seq"])
            contents.append(frame["message"]["content"])
            if len(seqs) in (15, 45):
                # Network loss: the TCP connection dies without a close handshake, while Alice keeps sending.
                b.ws.transport.abort()
                drops += 1
                await asyncio.sleep(0.3)
                b = await Client.open(svc, bob)
                resumed = await b.join(conv, since_seq=seqs[-1])
                assert resumed["since_seq"] == seqs[-1]
        await sender
        assert drops == 2
        assert seqs == list(range(1, total + 1))
        assert contents == [f"message {i}" for i in range(1, total + 1)]
        await b.nothing("message_received", within=0.3)
        await b.close()
    finally:
        sender.cancel()
        await api.aclose()


async def test_resume_too_far_back_is_refused_with_the_latest_seq(
        make_service: Callable[..., RunningService], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSGOPS_WS_MAX_BACKFILL", "5")
    svc = make_service(rate_limits={})
    api = Api(svc)
    alice, bob = svc.user(), svc.user()
    conv = await api.group(alice, bob)
    for i in range(8):
        await api.send(alice, conv, f"m{i}")
    b = await Client.open(svc, bob)
    try:
        await b.send(type="join_conversation", conversation_id=str(conv), since_seq=1)
        assert (await b.next("error"))["code"] == "resume_gap_too_large"
        ok = await b.join(conv, since_seq=3)
        got = [(await b.next("message_received"))["seq"] for _ in range(5)]
        assert ok["last_seq"] == 8 and got == [4, 5, 6, 7, 8]
    finally:
        await b.close()
        await api.aclose()


def _small_buffer_socket(svc: RunningService) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    host, port = svc.url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


def _shrink_server_side(svc: RunningService, client_port: int) -> None:
    """A slow link, server side: loopback would otherwise buffer megabytes (tcp_wmem autotuning)
    before the server ever sees back-pressure. Real socket options on the real socket."""
    for proto in list(svc.server.server_state.connections):
        client = getattr(proto, "client", None)
        if client and client[1] == client_port:
            transport = proto.transport
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
            transport.set_write_buffer_limits(high=16384)
            return
    raise AssertionError("the slow client's server-side connection was not found")


async def test_slow_consumer_is_disconnected_without_slowing_others(
        make_service: Callable[..., RunningService], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSGOPS_WS_OUTBOX", "20")
    svc = make_service(rate_limits={})
    api = Api(svc)
    alice, fast_user, slow_user = svc.user(), svc.user(), svc.user()
    conv = await api.group(alice, fast_user, slow_user)
    # The slow client stops reading after one frame, with a small receive buffer: the kernel
    # buffers fill, then the server's outbox for it.
    sock = _small_buffer_socket(svc)
    slow = await Client.open(svc, slow_user, max_queue=1, sock=sock)
    fast = await Client.open(svc, fast_user)
    try:
        await slow.join(conv)
        _shrink_server_side(svc, sock.getsockname()[1])
        await fast.join(conv)
        total = 150
        big = "x" * 4000
        started = time.monotonic()
        for i in range(total):
            await api.send(alice, conv, f"{i} {big}")
        got = [(await fast.next("message_received", timeout=10))["seq"] for _ in range(total)]
        assert got == list(range(1, total + 1))
        elapsed = time.monotonic() - started
        assert await slow.closed_with(timeout=15) == 4008
        received = [f for f in slow.seen if f["type"] == "message_received"]
        assert len(received) < total
        print(f"fast consumer got {total} in {elapsed:.2f}s; slow one got {len(received)} before 4008")
    finally:
        await fast.close()
        await slow.close()
        await api.aclose()


async def test_shutdown_closes_sockets_cleanly(make_service: Callable[..., RunningService]) -> None:
    svc = make_service()
    user = svc.user()
    client = await Client.open(svc, user)
    started = time.monotonic()
    stopping = asyncio.create_task(asyncio.to_thread(svc.stop))
    code = await client.closed_with(timeout=10)
    await stopping
    # The service's server drains realtime sockets before uvicorn would close them with 1012.
    assert code == 1001
    assert time.monotonic() - started < 10
    assert not svc.thread.is_alive()


async def test_drain_flushes_then_closes_with_1001(make_service: Callable[..., RunningService]) -> None:
    from service.realtime import lifecycle

    svc = make_service(rate_limits={})
    api = Api(svc)
    alice, bob = svc.user(), svc.user()
    conv = await api.group(alice, bob)
    b = await Client.open(svc, bob)
    try:
        await b.join(conv)
        await api.send(alice, conv, "last words")
        state = svc.server.config.app.state.msgops  # type: ignore[union-attr]
        loop = svc.server.servers[0].get_loop()
        drained = asyncio.run_coroutine_threadsafe(lifecycle.drain(state), loop)
        assert await b.closed_with(timeout=10) == 1001
        await asyncio.wrap_future(drained)
        assert [f["message"]["content"] for f in b.seen if f["type"] == "message_received"] == ["last words"]
        # New sockets are turned away while the server goes down.
        late = await Client.open(svc, None, auth=False)
        assert await late.closed_with(timeout=5) == 1001
    finally:
        await api.aclose()


async def test_two_instances_deliver_through_postgres(make_service: Callable[..., RunningService],
                                                      new_database: Callable[..., str]) -> None:
    url = new_database()
    one = make_service(database_url=url, bus="postgres", rate_limits={})
    two = make_service(database_url=url, bus="postgres", rate_limits={})
    api_one = Api(one)
    alice, bob, carol = one.user(), one.user(), one.user()
    conv = await api_one.group(alice, bob)
    b = await Client.open(two, bob)   # Bob is on instance two
    a = await Client.open(one, alice)  # Alice on instance one
    c = await Client.open(two, carol)  # Carol (not a member) on instance two
    try:
        health = two.http.get("/health").json()
        assert health["realtime_bus"] == "postgres"
        await b.join(conv)
        await a.join(conv)
        sent = await api_one.send(alice, conv, "across instances")
        got = await b.next("message_received")
        assert got["message"]["id"] == sent["id"]
        # Over the socket on instance two, received on instance one.
        await b.send(type="send_message", conversation_id=str(conv), content="and back", client_msg_id="x1")
        assert (await a.next("message_received", seq=2))["message"]["content"] == "and back"
        # Typing and presence cross too; the outsider hears none of it.
        await a.send(type="typing_start", conversation_id=str(conv))
        assert (await b.next("user_typing"))["user_id"] == str(alice.id)
        await b.next("user_online", user_id=alice.id)
        await c.drain(0.3)
        assert not [f for f in c.seen if f["type"] in ("message_received", "user_typing", "user_online")]
        # Removal through instance one stops delivery on instance two.
        await api_one.remove(alice, conv, bob)
        await api_one.send(alice, conv, "after removal")
        await a.next("message_received", seq=3)
        assert (await b.next("left"))["reason"] == "removed"
        await b.nothing("message_received", within=0.4, seq=3)
    finally:
        for client in (a, b, c):
            await client.close()
        await api_one.aclose()


async def test_postgres_bus_recovers_after_losing_its_connection(make_service: Callable[..., RunningService],
                                                                 new_database: Callable[..., str]) -> None:
    url = new_database()
    one = make_service(database_url=url, bus="postgres", rate_limits={})
    two = make_service(database_url=url, bus="postgres", rate_limits={})
    api = Api(one)
    alice, bob = one.user(), one.user()
    conv = await api.group(alice, bob)
    b = await Client.open(two, bob)
    try:
        await b.join(conv)
        await api.send(alice, conv, "before")
        await b.next("message_received", seq=1)
        killed = one.sql("select pg_terminate_backend(pid) from pg_stat_activity "
                         "where datname = current_database() and query ilike 'listen%%'")
        assert len(killed) == 2
        # Sent while instance two is not listening: the re-read after reconnecting delivers it.
        await api.send(alice, conv, "while away")
        await api.send(alice, conv, "after")
        assert (await b.next("message_received", seq=2, timeout=10))["message"]["content"] == "while away"
        assert (await b.next("message_received", seq=3, timeout=10))["message"]["content"] == "after"
        await b.nothing("message_received", within=0.3)
    finally:
        await b.close()
        await api.aclose()
