"""Service configuration, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from service.attachments.config import AttachmentSettings
from service.notifications.config import PushSettings

# Defaults from the seed checklists: 10 messages/minute, 100 messages/hour, 5 conversations/hour,
# 3 communities/day.
DEFAULT_RATE_LIMITS = ("send_message=10/60,send_message_hourly=100/3600,"
                       "create_conversation=5/3600,create_community=3/86400")


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
    pool_min: int = 2
    pool_max: int = 20
    hsts: bool = False
    environment: str = "development"
    log_level: str = "INFO"
    log_file: str | None = None  # JSON logs go here instead of stdout
    bus: str = "auto"  # memory | postgres | auto (postgres when several workers share the database)
    jobs_enabled: bool = True
    archive_after_days: int = 90
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    push: PushSettings = field(default_factory=PushSettings)

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
            "pool_min": int(env.get("MSGOPS_POOL_MIN", "2")),
            "pool_max": int(env.get("MSGOPS_POOL_MAX", "20")),
            "hsts": env.get("MSGOPS_HSTS", "").lower() in ("1", "true", "yes"),
            "environment": env.get("MSGOPS_ENV", "development"),
            "log_level": env.get("MSGOPS_LOG_LEVEL", "INFO").upper(),
            "log_file": env.get("MSGOPS_LOG_FILE") or None,
            "bus": env.get("MSGOPS_BUS", "auto"),
            "jobs_enabled": env.get("MSGOPS_JOBS", "on").lower() not in ("0", "off", "false"),
            "archive_after_days": int(env.get("MSGOPS_ARCHIVE_AFTER_DAYS", "90")),
            "attachments": AttachmentSettings.from_env(),
            "push": PushSettings.from_env(),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
