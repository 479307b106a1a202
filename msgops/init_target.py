"""`msgops init`: which kind of target this is, asked or detected from what answers, and the
msgops.yaml that describes it.

Detection is a few GET requests to the API, each allowed to fail: `/health` (the reference service
lists its capabilities there), a Socket.IO handshake (`?EIO=4&transport=polling`) at the paths
servers commonly use (`/socket.io`, `/api/socketio` as in seed 003, `/ws`), `/openapi.json` (an API
map can be derived from it), and `/auth/v1/settings` (Supabase Auth). Nothing is sent that changes
the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import httpx

from msgops.config import INIT_TEMPLATE

Kind = Literal["reference", "socketio", "supabase", "custom"]
KINDS: dict[Kind, str] = {
    "reference": "the msgops reference service (or an API like it): HS256 tokens, WebSocket at /realtime",
    "socketio": "a backend with Socket.IO realtime (NestJS, Express, ...), tokens from your identity provider",
    "supabase": "a Supabase project: PostgREST, Supabase Auth users, Realtime",
    "custom": "another API: routes mapped by hand or from its OpenAPI, tokens from a command",
}


@dataclass
class Detection:
    """What the API answered, and the kind it suggests."""

    kind: Kind
    evidence: list[str] = field(default_factory=list)
    openapi: bool = False
    socketio_path: str | None = None


SOCKETIO_PATHS = ("/socket.io", "/api/socketio", "/ws", "/socketio")


def detect(api_url: str, timeout_s: float = 5.0) -> Detection:
    """Probe the API read-only and say which kind of target it looks like, with the evidence."""
    found: list[str] = []
    flags: dict[str, bool] = {}
    with httpx.Client(base_url=api_url.rstrip("/"), timeout=timeout_s, follow_redirects=False) as client:

        def get(path: str) -> httpx.Response | None:
            try:
                return client.get(path)
            except httpx.HTTPError:
                return None

        health = get("/health")
        if health is not None and health.status_code in (200, 503) and "json" in health.headers.get(
                "content-type", "") and isinstance(body := health.json(), dict) and "capabilities" in body:
            flags["reference"] = True
            found.append("GET /health lists capabilities, as the reference service does")
        socketio_path = None
        for candidate in SOCKETIO_PATHS:
            sio = get(f"{candidate}/?EIO=4&transport=polling")
            if sio is not None and sio.status_code == 200 and sio.text.startswith("0{"):
                flags["socketio"], socketio_path = True, candidate
                found.append(f"GET {candidate}/ answered a Socket.IO handshake")
                break
        spec = get("/openapi.json")
        if spec is not None and spec.status_code == 200 and "openapi" in spec.text[:200]:
            flags["openapi"] = True
            found.append("GET /openapi.json serves an OpenAPI document")
        auth = get("/auth/v1/settings")
        if auth is not None and auth.status_code in (200, 401) and "external" in auth.text:
            flags["supabase"] = True
            found.append("GET /auth/v1/settings answered like Supabase Auth")
    kind: Kind = ("reference" if flags.get("reference") else "supabase" if flags.get("supabase")
                  else "socketio" if flags.get("socketio") else "custom")
    if not found:
        found.append("nothing answered that msgops recognizes")
    return Detection(kind, found, flags.get("openapi", False), socketio_path)


_HEAD, _SEP, _TAIL = INIT_TEMPLATE.partition("cors:\n")

_SECTIONS: dict[Kind, str] = {
    "reference": "",
    "socketio": """\
personas:                               # test users: a token from your identity provider per persona
  source: token_command                 # or private_key (a staging IdP's key), tokens, hs256, supabase
  command: ["./scripts/msgops-token.sh"]  # prints a token; MSGOPS_PERSONA_NAME/_ID/_ROLE/_EMAIL are set
  # create: {request: "POST /internal/users", json: {id: "{id}", email: "{email}"}, as: service}
  # delete: {request: "DELETE /internal/users/{id}", as: service}

realtime:
  protocol: socketio
  path: /socket.io
  namespace: /messaging                 # seed 004's namespace; yours may differ
  auth: {token: "{token}"}              # the connect payload
  # events: {message_received: newMessage}   # msgops's event names -> yours

api:
  derive: openapi                       # read the routes from /openapi.json where it can
  # operations: {send_message: {request: "POST /rooms/{conversation_id}/messages", json: {text: "{content}"}}}

""",
    "supabase": """\
personas:                               # seeded test users signing in with Supabase Auth
  source: supabase                      # SUPABASE_URL and SUPABASE_ANON_KEY from the environment
  users:
    - {name: member_a, email: member-a@example.com, password_env: MEMBER_A_PASSWORD}
    - {name: member_b, email: member-b@example.com, password_env: MEMBER_B_PASSWORD}
    - {name: outsider, email: outsider@example.com, password_env: OUTSIDER_PASSWORD}

# schema:                               # `msgops discover` writes the database model here

""",
    "custom": """\
personas:
  source: token_command
  command: ["./scripts/msgops-token.sh"]  # prints a token for $MSGOPS_PERSONA_NAME

api:
  derive: openapi                       # or map each operation under operations:
  # operations:
  #   send_message: {request: "POST /api/rooms/{conversation_id}/posts", json: {text: "{content}"},
  #                  response: {id: post.id}}

""",
}


def render(kind: Kind, api_url: str | None = None, detection: Detection | None = None) -> str:
    """The msgops.yaml text for a target of `kind`."""
    head = _HEAD
    if api_url:
        head = head.replace("api_url: http://127.0.0.1:8000 ", f"api_url: {api_url} ", 1)
    if kind != "reference":
        head = head.replace("jwt_secret_env: MSGOPS_JWT_SECRET       # the variable holding the HS256 secret "
                            "(to mint probe users)",
                            "# jwt_secret_env: MSGOPS_JWT_SECRET     # only with a shared HS256 secret", 1)
    sections = _SECTIONS[kind]
    if detection is not None and detection.socketio_path and kind == "socketio":
        sections = sections.replace("  path: /socket.io\n", f"  path: {detection.socketio_path}\n", 1)
    intro = f"# kind: {kind} — {KINDS[kind]}\n"
    if detection is not None:
        intro += "".join(f"#   detected: {line}\n" for line in detection.evidence)
    return intro + head + sections + _SEP + _TAIL
