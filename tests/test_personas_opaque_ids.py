"""User ids are opaque strings: Clerk's `user_2N...`, Auth0's `auth0|...`, Firebase's 28-character uids work
as well as UUIDs, in the personas configuration, in the tokens msgops reads, and through the checks of a
chat service whose identity provider issues them (tests/foreign_chat)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import uvicorn

from msgops.config import Target
from msgops.errors import UserError
from msgops.personas import model
from msgops.personas.tokens import subject
from tests.foreign_chat import app as foreign
from tests.test_foreign_target import run, start

pytestmark = pytest.mark.timeout(120)

CLERK = "user_2NNEqL2nrIRdJ194ndJqAHwEfxC"
AUTH0 = "auth0|6543a1b2c3d4e5f601234567"
FIREBASE = "kX9bLq2RzT5uWv8yA1cD3eF6gH7j"

# A stand-in for a Clerk session-token command: the subject is a Clerk-style id derived from the persona.
CLERK_COMMAND = """
import hashlib, os, time, jwt
name = os.environ["MSGOPS_PERSONA_NAME"]
digest = hashlib.sha256(name.encode()).hexdigest()
sub = "user_2" + "".join(c.upper() if i % 3 == 0 else c for i, c in enumerate(digest[:26]))
now = int(time.time())
print(jwt.encode({"sub": sub, "aud": "authenticated", "iat": now, "exp": now + 600, "sid": "sess_x",
                  "email": os.environ.get("MSGOPS_PERSONA_EMAIL", "")}, os.environ["FOREIGN_CHAT_SECRET"],
                 algorithm="HS256"))
"""


def test_persona_configuration_accepts_any_identity_providers_user_ids():
    users = [{"name": "clerk", "id": CLERK, "token_env": "A"}, {"name": "auth0", "id": AUTH0, "token_env": "B"},
             {"name": "firebase", "id": FIREBASE, "token_env": "C"},
             {"name": "numeric", "id": 1234567, "token_env": "D"}]
    config = model.parse({"source": "tokens", "users": users})
    assert [u.id for u in config.users] == [CLERK, AUTH0, FIREBASE, "1234567"]
    for bad in ("", "user 2N"):
        with pytest.raises(UserError, match=r"personas\.users\.0\.id") as caught:
            model.parse({"source": "tokens", "users": [{"name": "a", "id": bad, "token_env": "A"}]})
        assert "\n" not in str(caught.value) and caught.value.exit_code == 3


def test_the_subject_of_a_token_is_read_as_the_identity_provider_wrote_it():
    for sub in (CLERK, AUTH0, FIREBASE, "4b7c5a8e-2f0d-4d5e-9c1a-0e3f2b6a7d91"):
        assert subject(jwt.encode({"sub": sub}, "k" * 32, algorithm="HS256")) == sub
    assert subject("opaque-not-a-jwt") is None
    assert subject(jwt.encode({"aud": "x"}, "k" * 32, algorithm="HS256")) is None


@pytest.fixture
def clerk_chat(tmp_path: Path) -> Iterator[Any]:
    script = tmp_path / "clerk_token.py"
    script.write_text(CLERK_COMMAND)
    servers: list[uvicorn.Server] = []

    def make(**breaks: Any) -> Target:
        url, server = start(foreign.Breaks(**breaks))
        servers.append(server)
        personas = {**foreign.PERSONAS, "source": "token_command", "command": [sys.executable, str(script)]}
        personas.pop("secret_env")
        return Target(api_url=url, personas=personas, api=foreign.API, realtime=foreign.REALTIME,
                      env={"FOREIGN_CHAT_SECRET": foreign.SECRET})

    yield make
    for server in servers:
        server.should_exit = True


def test_realtime_delivery_with_clerk_user_ids(clerk_chat):
    outcome, _ = asyncio.run(run(clerk_chat(), "realtime.delivery"))
    assert outcome.status == "pass", outcome
    assert "user_2" in json.dumps(outcome.evidence), outcome.evidence  # the recipient, named by its Clerk id
    assert outcome.evidence["protocol"] == "socketio (namespace /chat)"


def test_no_email_leak_with_clerk_user_ids_passes_and_fails_when_broken(clerk_chat):
    outcome, _ = asyncio.run(run(clerk_chat(), "http.no_email_leak"))
    assert outcome.status == "pass", outcome
    broken, _ = asyncio.run(run(clerk_chat(leak_email=True), "http.no_email_leak"))
    assert broken.status == "fail" and "authorEmail" in broken.message + repr(broken.evidence), broken
