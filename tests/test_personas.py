"""Personas: test users from any identity provider.

The reference service is configured as a foreign target would be — RS256 tokens verified through a
JWKS URL served on loopback, no shared secret given to msgops — and the HTTP and realtime probes act as
personas whose tokens come from a token_command, a private key, pre-issued tokens, or a Supabase Auth
password sign-in (a small GoTrue-compatible endpoint on loopback). Configuration mistakes are one line,
exit 3.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from msgops import api, personas, probes
from msgops.config import Target
from msgops.engine import RunOptions, run_items
from msgops.errors import UserError
from msgops.probes import Context
from service.auth import mint_token
from tests.support import JWT_SECRET, RunningService
from tests.support import run_probe as run
from tests.test_cli import assert_one_line_error, msgops

pytestmark = pytest.mark.timeout(300)
KID = "staging-2026"

TOKEN_SCRIPT = textwrap.dedent('''\
    """Prints an RS256 token for the persona msgops names in the environment (like a Clerk CLI call)."""
    import os, sys, time, jwt
    if os.environ.get("FAIL_TOKEN_COMMAND"):
        sys.exit("identity provider said no")
    key = open(sys.argv[1]).read()
    role = os.environ["MSGOPS_PERSONA_ROLE"]
    now = int(time.time())
    claims = {"sub": os.environ["MSGOPS_PERSONA_ID"] or "00000000-0000-4000-8000-000000000001",
              "role": "service_role" if role == "service_role" else "authenticated",
              "aud": "authenticated", "iat": now, "exp": now + 3600,
              "email": os.environ["MSGOPS_PERSONA_EMAIL"], "name": os.environ["MSGOPS_PERSONA_NAME"]}
    print(jwt.encode(claims, key, algorithm="RS256", headers={"kid": sys.argv[2]}))
''')


def pem(key: Any) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class _Serve(BaseHTTPRequestHandler):
    routes: dict[str, Callable[[bytes], tuple[int, Any]]] = {}

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        route = self.routes.get(self.path.split("?")[0])
        status, payload = route(body) if route else (404, {"error": "not found"})
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


def serve(routes: dict[str, Callable[[bytes], tuple[int, Any]]]) -> tuple[str, ThreadingHTTPServer]:
    """A real HTTP server on loopback answering `routes` (path -> body -> (status, JSON))."""
    handler = type("Handler", (_Serve,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(rsa_key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk.update(kid=KID, use="sig", alg="RS256")
    url, server = serve({"/.well-known/jwks.json": lambda _: (200, {"keys": [jwk]})})
    yield url + "/.well-known/jwks.json"
    server.shutdown()


@pytest.fixture(scope="module")
def rs256_service(jwks_url: str, new_database: Callable[..., str],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The reference verifying RS256 tokens through a JWKS URL, with no shared secret at all (otherwise
    its production settings: seed rate limits, INFO logs)."""
    from tests.support import start_service

    svc = start_service(new_database(), jwt_secret=None, jwt_algorithms=("RS256",), jwks_url=jwks_url,
                        log_level="INFO", log_file=str(tmp_path_factory.mktemp("logs") / "service.log"))
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def token_command(rsa_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("idp")
    (folder / "key.pem").write_text(pem(rsa_key))
    (folder / "idp_token.py").write_text(TOKEN_SCRIPT)
    return [sys.executable, str(folder / "idp_token.py"), str(folder / "key.pem"), KID]


def foreign(svc: RunningService, personas_config: dict[str, Any], env: dict[str, str] | None = None,
            realtime: dict[str, Any] | None = None) -> Target:
    return Target(api_url=svc.url, database_url=svc.database_url, jwt_secret=None, personas=personas_config,
                  env=env or {}, realtime=realtime)


# --- the reference as a foreign target -------------------------------------------------------------

def test_http_and_realtime_checks_run_as_token_command_personas(rs256_service, token_command):
    """Every HTTP and realtime item of the built-in checklists, with RS256 tokens printed by a command, no
    shared secret, and realtime over Socket.IO: only checks that forge tokens are not run; nothing errors."""
    target = foreign(rs256_service, {"source": "token_command", "command": token_command},
                     realtime={"protocol": "socketio", "namespace": "/messaging"})
    _, _, items = api.select_items(target)
    items = [i for i in items if i.check and i.check.family in ("http", "realtime")]
    assert personas.describe(target) and "printed by" in str(personas.describe(target))

    async def go() -> list[Any]:
        await personas.verify(target)
        ctx = Context(target)
        try:
            return await run_items(items, ctx, RunOptions(concurrency=8, timeout_s=90))
        finally:
            await ctx.close()
            assert ctx.leftovers == []

    results = asyncio.run(go())
    by_status: dict[str, list[str]] = {}
    for r in results:
        by_status.setdefault(r.status, []).append(f"{r.id} {r.message[:160]}")
    assert not by_status.get("error"), by_status["error"]
    # Latency budgets depend on the machine's load (speed is measured in benchmarks, not asserted here).
    assert not [f for f in by_status.get("fail", []) if "ms budget" not in f], by_status["fail"]
    for line in by_status.get("not_run", []):  # never for want of test users; forged tokens need a key
        assert "test users" not in line and ("personas" not in line or "signing key" in line), line
    assert len(by_status["pass"]) >= 60, {k: len(v) for k, v in by_status.items()}
    # every probe user was erased through the target's admin endpoint
    rows = rs256_service.sql("select count(*) from public.profiles where email like 'msgops-probe-%'")
    assert rows[0][0] == 0


def test_a_private_key_with_its_kid_signs_every_token_case(rs256_service, rsa_key):
    target = foreign(rs256_service, {"source": "private_key", "key_env": "STAGING_IDP_KEY", "kid": KID},
                     {"STAGING_IDP_KEY": pem(rsa_key).replace("\n", "\\n")})
    outcome, _ = asyncio.run(run(target, "http.auth_required", cases=["missing", "expired", "invalid_signature",
                                                                      "alg_none", "wrong_audience", "malformed"]))
    assert outcome.status == "pass", outcome
    outcome, _ = asyncio.run(run(target, "realtime.auth_required"))
    assert outcome.status == "pass" and "expired" in json.dumps(outcome.evidence), outcome


def test_a_token_command_cannot_forge_tokens_so_those_cases_are_not_run(rs256_service, token_command):
    target = foreign(rs256_service, {"source": "token_command", "command": token_command})
    with pytest.raises(probes.NotRun, match="signing key"):
        asyncio.run(run(target, "http.auth_required", cases=["expired"]))
    outcome, _ = asyncio.run(run(target, "http.auth_required", cases=["missing", "alg_none", "malformed"]))
    assert outcome.status == "pass", outcome


def test_pre_issued_tokens_of_fixed_personas(rs256_service, rsa_key):
    ids = {name: uuid.uuid4() for name in ("a", "b", "c", "d")}
    env = {f"TOKEN_{n.upper()}": jwt.encode({"sub": str(i), "role": "authenticated", "aud": "authenticated",
                                             "exp": 2_000_000_000, "email": f"{n}@fixed.test"},
                                            rsa_key, algorithm="RS256", headers={"kid": KID})
           for n, i in ids.items()}
    config = {"source": "tokens", "create": {"request": "GET /conversations"},
              "users": [{"name": f"member_{n}", "token_env": f"TOKEN_{n.upper()}"} for n in ids]}
    target = foreign(rs256_service, config, env)
    outcome, ctx = asyncio.run(run(target, "realtime.no_leak"))
    assert outcome.status == "pass", outcome
    assert ctx.leftovers == []  # fixed personas are kept by design
    # a check that needs more distinct personas than listed is not run, with the fix
    config["users"] = config["users"][:1]
    with pytest.raises(probes.NotRun, match="needs 2 distinct personas with the role attendee"):
        asyncio.run(run(foreign(rs256_service, config, env), "realtime.delivery"))


def test_supabase_password_sign_in(make_service):
    """Seeded users sign in at <SUPABASE_URL>/auth/v1/token?grant_type=password; the API accepts the tokens."""
    svc = make_service(rate_limits={})
    seeded = {"ana@example.test": ("pw-ana", uuid.uuid4()), "ben@example.test": ("pw-ben", uuid.uuid4())}

    def sign_in(body: bytes) -> tuple[int, Any]:
        form = json.loads(body)
        password, uid = seeded.get(form.get("email"), ("", None))
        if uid is None or form.get("password") != password:
            return 400, {"error": "invalid_grant", "error_description": "Invalid login credentials"}
        token = mint_token(JWT_SECRET, uid, extra={"email": form["email"]})
        return 200, {"access_token": token, "token_type": "bearer", "user": {"id": str(uid)}}

    url, server = serve({"/auth/v1/token": sign_in})
    try:
        env = {"SUPABASE_URL": url, "SUPABASE_ANON_KEY": "anon", "ANA_PW": "pw-ana", "BEN_PW": "pw-ben"}
        config = {"source": "supabase", "create": {"request": "GET /conversations"},
                  "users": [{"name": "ana", "email": "ana@example.test", "password_env": "ANA_PW"},
                            {"name": "ben", "email": "ben@example.test", "password_env": "BEN_PW"}]}
        target = Target(api_url=svc.url, database_url=svc.database_url, personas=config, env=env)
        outcome, _ = asyncio.run(run(target, "realtime.delivery"))
        assert outcome.status == "pass", outcome
        asyncio.run(personas.verify(target))
        with pytest.raises(UserError, match=r"users\[ana\]: Supabase Auth refused .*Invalid login credentials"):
            asyncio.run(personas.verify(Target(api_url=svc.url, personas=config, env={**env, "ANA_PW": "wrong"})))
    finally:
        server.shutdown()


def test_without_personas_or_a_secret_user_checks_are_not_run(rs256_service):
    target = Target(api_url=rs256_service.url, database_url=rs256_service.database_url)
    with pytest.raises(probes.NotRun, match="configure personas"):
        asyncio.run(run(target, "realtime.delivery"))


# --- configuration mistakes: one line naming the fix -------------------------------------------------

def _error(config: dict[str, Any], env: dict[str, str] | None = None) -> str:
    target = Target(api_url="http://127.0.0.1:9", personas=config, env=env or {})
    with pytest.raises(UserError) as caught:
        personas.describe(target)
        asyncio.run(personas.verify(target))
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 3
    return message


def test_configuration_mistakes_are_one_line_with_the_fix(tmp_path: Path):
    assert "unknown source 'clerk'" in _error({"source": "clerk"})
    assert "say where tokens come from" in _error({"command": "x"})
    assert "personas.comand: unknown setting" in _error({"source": "token_command", "comand": "x"})
    assert "export the PEM" in _error({"source": "private_key", "key_env": "NOPE"})
    assert "does not hold an unencrypted PEM private key" in _error(
        {"source": "private_key", "key_env": "K"}, {"K": "-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n-----END"})
    ec_key = pem(ec.generate_private_key(ec.SECP256R1()))
    assert "RS256 needs an RSA key" in _error({"source": "private_key", "key_env": "K"}, {"K": ec_key})
    assert "TOKEN_A is not set" in _error({"source": "tokens", "users": [{"name": "a", "token_env": "TOKEN_A"}]})
    assert "token_env is required" in _error({"source": "tokens", "users": [{"name": "a"}]})
    assert "unknown placeholder {uid}" in _error({"source": "hs256", "delete": {"request": "DELETE /u/{uid}"}},
                                                 {"MSGOPS_JWT_SECRET": "s"})
    assert 'expected "METHOD /path"' in _error({"source": "hs256", "create": {"request": "FETCH users"}},
                                               {"MSGOPS_JWT_SECRET": "s"})
    assert "no database is configured" in _error({"source": "hs256", "create": {"sql": "select 1"}},
                                                 {"MSGOPS_JWT_SECRET": "s"})
    script = tmp_path / "tok.py"
    script.write_text("import sys\nsys.exit('the IdP is down')\n")
    assert "exited 1 for persona" in _error({"source": "token_command", "command": [sys.executable, str(script)]})
    assert "the IdP is down" in _error({"source": "token_command", "command": [sys.executable, str(script)]})
    script.write_text("print('')\n")
    assert "printed nothing for persona" in _error({"source": "token_command",
                                                    "command": [sys.executable, str(script)]})
    assert "not found" in _error({"source": "token_command", "command": ["/no/such/idp-cli"]})


def test_msgops_check_stops_on_a_bad_persona_configuration_with_exit_3(tmp_path: Path):
    (tmp_path / "msgops.yaml").write_text("api_url: http://127.0.0.1:9\npersonas:\n  source: private_key\n"
                                          "  key_env: STAGING_KEY\n")
    proc = msgops("check", "--checklist", "004-spec-msg-001", cwd=tmp_path, env={"STAGING_KEY": "not a pem"})
    assert_one_line_error(proc, 3, "personas.key_env", "PEM")
