"""Reading URL-valued variables: URLs, plus libpq keyword/value strings for PostgreSQL."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from psycopg.conninfo import conninfo_to_dict

POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})
TLS_SSLMODES = frozenset({"require", "verify-ca", "verify-full"})


@dataclass(frozen=True)
class Location:
    scheme: str
    host: str
    port: int | None
    form: str  # "url" or "conninfo"
    params: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        """For evidence: never the user, password or query values other than sslmode."""
        out: dict[str, object] = {"scheme": self.scheme, "host": self.host, "form": self.form}
        if self.port is not None:
            out["port"] = self.port
        if "sslmode" in self.params:
            out["sslmode"] = self.params["sslmode"]
        return out


def parse(value: str, allow_conninfo: bool = False) -> Location:
    """A URL with a scheme and a host; ValueError says what is wrong (never echoing the value)."""
    if "://" not in value:
        if allow_conninfo and "=" in value:
            return _conninfo(value)
        raise ValueError("has no scheme (expected scheme://host...)")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"cannot be parsed as a URL ({exc})") from None
    if any(c.isspace() for c in value):
        raise ValueError("contains whitespace")
    if not parts.scheme:
        raise ValueError("has no scheme")
    host = parts.hostname or ""
    params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if not host and not (parts.scheme.lower() in POSTGRES_SCHEMES and "host" in params):
        raise ValueError("has no host")
    return Location(parts.scheme.lower(), host or params.get("host", ""), port, "url", params)


def _conninfo(value: str) -> Location:
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(value).items() if v is not None}
    except Exception:
        raise ValueError("is neither a URL nor a PostgreSQL keyword/value connection string") from None
    if not params.get("host") and not params.get("hostaddr"):
        raise ValueError("is a PostgreSQL connection string without a host")
    port = params.get("port")
    return Location("postgresql", params.get("host") or params["hostaddr"], int(port) if port else None,
                    "conninfo", params)


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost") or host.startswith("/"):  # "/..." = Unix socket
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
