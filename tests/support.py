"""Test support: a real service on a loopback port, users with real tokens, direct SQL access."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import uvicorn

from msgops import probes
from msgops.config import Target
from msgops.embedded import free_port
from msgops.probes.context import Context, ProbeUser
from msgops.results import Outcome
from service import serving
from service.app import create_app
from service.auth import mint_token
from service.server import DrainingServer
from service.settings import Settings

JWT_SECRET = "test-secret-0123456789abcdef0123456789abcdef"



# A user with a token: the same shape the probes use for the users they create.
User = ProbeUser


@dataclass
class RunningService:
    """A service instance serving real HTTP/WebSocket on 127.0.0.1."""

    url: str
    database_url: str
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def user(self, role: str = "attendee", email: str | None = None, ttl: int = 3600) -> User:
        """A new user with a profile row (created by the service on first request) and an app role."""
        uid = uuid.uuid4()
        extra = {"email": email or f"user-{uid.hex[:8]}@example.test"}
        token = mint_token(JWT_SECRET, uid, ttl=ttl, extra=extra)
        r = self.http.get("/conversations", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        if role != "attendee":
            self.sql("update public.profiles set role = %s where id = %s", (role, uid))
        return User(uid, token, role)

    def service_user(self) -> User:
        uid = uuid.uuid4()
        return User(uid, mint_token(JWT_SECRET, uid, role="service_role"), "service_role")

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run SQL as the database owner (bypasses RLS): for arranging and inspecting state."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def stop(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_service(database_url: str, **overrides: Any) -> RunningService:
    values: dict[str, Any] = {"database_url": database_url, "jwt_secret": JWT_SECRET, "log_level": "WARNING",
                              "jobs_enabled": False, "database_private": True,
                              "pool_min": 2}  # many services share one test server: open small pools
    values.update(overrides)
    settings = Settings(**values)
    app = create_app(settings)
    port = free_port()
    config = serving.config(app, settings, host="127.0.0.1", port=port, lifespan="on")
    server = DrainingServer(config, app.state.msgops)
    return RunningService(f"http://127.0.0.1:{port}", database_url, settings, server, run_in_thread(server))


def run_in_thread(server: uvicorn.Server, what: str = "test service") -> threading.Thread:
    """Start `server` on a daemon thread and return once it accepts connections."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.02)
    return thread


async def run_probe(target: Target, kind: str, **params: Any) -> tuple[Outcome, Context]:
    """Probe `kind` once against `target`: its outcome, and the context (users made, leftovers)."""
    ctx = Context(target)
    implementation = probes.get(kind)
    assert implementation is not None
    try:
        return await implementation.fn(ctx, **params), ctx
    finally:
        await ctx.close()
