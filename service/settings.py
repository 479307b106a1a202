"""Service configuration, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from service.attachments.config import AttachmentSettings
from service.notifications.config import PushSettings

# Defaults from the seed checklists: 10 messages/minute, 100 messages/hour, 5 conversations/hour,
# 3 communities/day. Edits, reactions, member additions and reports are limited too, so no write is
# unbounded.
DEFAULT_RATE_LIMITS = ("send_message=10/60,send_message_hourly=100/3600,"
                       "create_conversation=5/3600,create_community=3/86400,"
                       "edit_message=30/60,add_reaction=60/60,add_member=60/3600,report_message=10/3600")


@dataclass(frozen=True)
class RateLimit:
    max_hits: int
    window_seconds: int


def parse_rate_limits(spec: str) -> dict[str, RateLimit]:
    """`action=hits/seconds,...`; `off` disables every limit."""
    spec = spec.strip()
    if spec.lower() in ("", "off", "none", "0"):
        return {}
    limits: dict[str, RateLimit] = {}
    for part in spec.split(","):
        try:
            action, rate = part.split("=")
            hits, seconds = rate.split("/")
            limits[action.strip()] = RateLimit(int(hits), int(seconds))
        except ValueError:
            raise ValueError(
                f"MSGOPS_RATE_LIMITS: cannot read {part!r}; expected action=hits/seconds, e.g. send_message=10/60"
            ) from None
    return limits


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@dataclass(frozen=True)
class Settings:
    database_url: str
    jwt_secret: str | None = None
    jwt_audience: str = "authenticated"
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwks_url: str | None = None
    cors_origins: tuple[str, ...] = ("http://localhost:3000", "http://127.0.0.1:3000")
    rate_limits: dict[str, RateLimit] = field(default_factory=lambda: parse_rate_limits(DEFAULT_RATE_LIMITS))
    # None: the pool opens full (pool_max) at start-up. Grown on demand, it opens one connection at a
    # time while requests queue behind it, so the first burst of load waited for up to pool_max
    # backend start-ups (p99 of a 1,000 msg/s run: 280-340 ms opened on demand, 110-170 ms full).
    pool_min: int | None = None
    pool_max: int = 20
    pool_timeout_s: float = 5.0  # a request waits this long for a database connection, then 503
    hsts: bool = False
    environment: str = "development"
    log_level: str = "INFO"
    log_file: str | None = None  # JSON logs go here instead of stdout
    bus: str = "auto"  # memory | postgres | auto (memory only on a private database served by one process)
    database_private: bool = False  # set by `msgops serve` on its own embedded server with one worker
    jobs_enabled: bool = True
    archive_after_days: int = 90
    metrics_token: str | None = None  # when set, /metrics wants it as a bearer token
    max_body_bytes: int = 65_536  # a 5,000-character message, escaped as JSON, fits with room to spare
    header_timeout_s: float = 10.0  # a request head must be complete this long after the connection/last answer
    body_timeout_s: float = 10.0  # a request body may pause this long between chunks
    keepalive_timeout_s: int = 5  # an idle keep-alive connection is closed after this
    max_connections_per_client: int | None = None  # per client address; None: a quarter of the fd limit; 0: off
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    push: PushSettings = field(default_factory=PushSettings)

    @property
    def pool_min_size(self) -> int:
        """The connections the pool opens at start-up (pool_min, or pool_max when it is not set)."""
        return self.pool_max if self.pool_min is None else self.pool_min

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "database_url": env.get("DATABASE_URL", ""),
            "jwt_secret": env.get("MSGOPS_JWT_SECRET") or env.get("SUPABASE_JWT_SECRET") or None,
            "jwt_audience": env.get("MSGOPS_JWT_AUDIENCE", "authenticated"),
            "jwt_algorithms": _csv(env.get("MSGOPS_JWT_ALGORITHMS", "HS256")),
            "jwks_url": env.get("MSGOPS_JWKS_URL") or None,
            "cors_origins": _csv(env.get("MSGOPS_CORS_ORIGINS", "http://localhost:3000,http://127.0.0.1:3000")),
            "rate_limits": parse_rate_limits(env.get("MSGOPS_RATE_LIMITS", DEFAULT_RATE_LIMITS)),
            "pool_min": int(env["MSGOPS_POOL_MIN"]) if env.get("MSGOPS_POOL_MIN") else None,
            "pool_max": int(env.get("MSGOPS_POOL_MAX", "20")),
            "pool_timeout_s": float(env.get("MSGOPS_POOL_TIMEOUT", "5")),
            "hsts": env.get("MSGOPS_HSTS", "").lower() in ("1", "true", "yes"),
            "environment": env.get("MSGOPS_ENV", "development"),
            "log_level": env.get("MSGOPS_LOG_LEVEL", "INFO").upper(),
            "log_file": env.get("MSGOPS_LOG_FILE") or None,
            "bus": env.get("MSGOPS_BUS", "auto"),
            "database_private": env.get("MSGOPS_DATABASE_PRIVATE", "") == "1",
            "jobs_enabled": env.get("MSGOPS_JOBS", "on").lower() not in ("0", "off", "false"),
            "archive_after_days": int(env.get("MSGOPS_ARCHIVE_AFTER_DAYS", "90")),
            "metrics_token": env.get("MSGOPS_METRICS_TOKEN") or None,
            "max_body_bytes": int(env.get("MSGOPS_MAX_BODY_BYTES", "65536")),
            "header_timeout_s": float(env.get("MSGOPS_HEADER_TIMEOUT", "10")),
            "body_timeout_s": float(env.get("MSGOPS_BODY_TIMEOUT", "10")),
            "keepalive_timeout_s": int(env.get("MSGOPS_KEEPALIVE_TIMEOUT", "5")),
            "max_connections_per_client": (int(env["MSGOPS_MAX_CONNECTIONS_PER_CLIENT"])
                                           if env.get("MSGOPS_MAX_CONNECTIONS_PER_CLIENT") else None),
            "attachments": AttachmentSettings.from_env(),
            "push": PushSettings.from_env(),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
