"""What one service process holds: settings, the pool, the token verifier, the realtime bus."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from service.auth import TokenVerifier
from service.db import Database
from service.settings import Settings


@dataclass
class AppState:
    settings: Settings
    db: Database
    verifier: TokenVerifier
    started: float = field(default_factory=time.monotonic)
    known_users: set[uuid.UUID] = field(default_factory=set)  # profiles known to exist
    bus: Any = None  # service.realtime.bus.Bus, set at startup
    hub: Any = None  # service.realtime.hub.Hub, set at startup
    jobs: Any = None  # service.jobs.Scheduler, set at startup
    notifier: Any = None  # service.notifications.dispatch.Notifier, set at startup with realtime
    push: Any = None  # service.notifications.push.PushSender, when web push is configured
