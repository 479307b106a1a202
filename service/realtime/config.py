"""Realtime tunables. Defaults follow the seeds (10 s typing TTL); the environment overrides them,
which is also how tests shorten the timers."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _num(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}: expected a number, got {raw!r}") from None


@dataclass(frozen=True)
class RealtimeConfig:
    typing_ttl: float = 10.0         # a typing indicator expires this long after its last typing_start
    away_after: float = 60.0         # online -> away after this long without a heartbeat
    offline_grace: float = 2.0       # a quick reconnect within this does not flap offline/online
    auth_timeout: float = 5.0        # the auth frame must arrive within this
    max_frame_bytes: int = 16 * 1024  # larger client frames get `frame_too_large`
    outbox_frames: int = 2000        # a client further behind than this is disconnected (4008)
    max_backfill: int = 1000         # a resume further back than this must page through REST first
    coalesce_s: float = 0.002        # wait this long for more notifications before reading rows
    frames_per_second: float = 50.0  # per-socket inbound rate; bursts up to 2x are allowed
    instance_ttl: float = 30.0       # presence from an instance that went silent this long expires

    @classmethod
    def from_env(cls) -> RealtimeConfig:
        d = cls()
        return cls(
            typing_ttl=_num("MSGOPS_TYPING_TTL", d.typing_ttl),
            away_after=_num("MSGOPS_AWAY_AFTER", d.away_after),
            offline_grace=_num("MSGOPS_OFFLINE_GRACE", d.offline_grace),
            auth_timeout=_num("MSGOPS_WS_AUTH_TIMEOUT", d.auth_timeout),
            max_frame_bytes=int(_num("MSGOPS_WS_MAX_FRAME", d.max_frame_bytes)),
            outbox_frames=int(_num("MSGOPS_WS_OUTBOX", d.outbox_frames)),
            max_backfill=int(_num("MSGOPS_WS_MAX_BACKFILL", d.max_backfill)),
            coalesce_s=_num("MSGOPS_WS_COALESCE_MS", d.coalesce_s * 1000) / 1000,
            frames_per_second=_num("MSGOPS_WS_FRAMES_PER_SECOND", d.frames_per_second),
            instance_ttl=_num("MSGOPS_INSTANCE_TTL", d.instance_ttl),
        )
