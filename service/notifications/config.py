"""Web push configuration: the VAPID key pair (from the environment, or made once per data directory)."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

_KEY_FILE = "vapid_private.pem"


@dataclass(frozen=True)
class PushSettings:
    enabled: bool = True
    vapid_private_pem: str = ""  # empty: a key pair for this process only
    subject: str = "mailto:admin@localhost"  # the VAPID `sub` claim: how a push service reaches the operator
    ttl_s: int = 86400  # how long a push service keeps an undelivered message
    allow_http_endpoints: bool = False  # plain-http push endpoints on loopback (local push servers, tests)

    @classmethod
    def from_env(cls) -> PushSettings:
        env = os.environ
        pem = env.get("MSGOPS_VAPID_PRIVATE_KEY", "").replace("\\n", "\n")
        enabled = env.get("MSGOPS_PUSH", "on").lower() not in ("0", "off", "false")
        if enabled and not pem:
            pem = vapid_private_pem(Path(env.get("MSGOPS_DATA_DIR", ".msgops")))
        return cls(enabled=enabled, vapid_private_pem=pem,
                   subject=env.get("MSGOPS_VAPID_SUBJECT", "mailto:admin@localhost"),
                   allow_http_endpoints=_allow_http(env))


def _allow_http(env: os._Environ[str]) -> bool:
    """MSGOPS_PUSH_ALLOW_HTTP; by default on in development (the default environment), off elsewhere."""
    explicit = env.get("MSGOPS_PUSH_ALLOW_HTTP")
    if explicit:
        return explicit.lower() in ("1", "true", "yes", "on")
    return env.get("MSGOPS_ENV", "development") == "development"


def new_private_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def vapid_private_pem(data_dir: Path) -> str:
    """The VAPID private key of the data directory, made once."""
    path = data_dir / _KEY_FILE
    if path.exists():
        return path.read_text()
    data_dir.mkdir(parents=True, exist_ok=True)
    pem = new_private_pem()
    path.write_text(pem)
    path.chmod(0o600)
    return pem


def public_key_b64(private_pem: str) -> str:
    """The applicationServerKey browsers subscribe with: the uncompressed P-256 point, base64url."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    raw = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
