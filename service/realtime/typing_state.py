"""Typing indicators: memory only, expiring `ttl` seconds after the last typing_start.

Two tables. `Typists` is kept by the instance the typist is connected to: it throttles what goes on
the bus (clients send typing_start on every keystroke) and announces the stop when the TTL runs
out. `Watchers` is kept by every instance for the rooms its clients watch: it turns bus events into
`user_typing` transitions and expires entries itself if the typist's instance goes silent.
"""

from __future__ import annotations

import uuid
from typing import Any

Key = tuple[Any, uuid.UUID]  # (room key, user)


class Typists:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._deadline: dict[Key, float] = {}
        self._announced: dict[Key, float] = {}

    def start(self, key: Key, now: float) -> bool:
        """Record a keystroke; True when the bus should hear about it (new, or a refresh is due)."""
        self._deadline[key] = now + self.ttl
        last = self._announced.get(key)
        if last is None or now - last >= self.ttl / 2:
            self._announced[key] = now
            return True
        return False

    def stop(self, key: Key) -> bool:
        """True when the key was typing (the bus should hear the stop)."""
        self._announced.pop(key, None)
        return self._deadline.pop(key, None) is not None

    def expired(self, now: float) -> list[Key]:
        gone = [k for k, deadline in self._deadline.items() if deadline <= now]
        for k in gone:
            self.stop(k)
        return gone


class Watchers:
    # A typist's instance refreshes every ttl/2 and announces the stop itself; this longer deadline
    # only matters when that instance is gone.
    SAFETY = 1.5

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._deadline: dict[Key, float] = {}

    def start(self, key: Key, now: float, ttl: float | None = None) -> bool:
        """True on the transition to typing (watchers should be told)."""
        new = key not in self._deadline
        self._deadline[key] = now + (ttl or self.ttl) * self.SAFETY
        return new

    def stop(self, key: Key) -> bool:
        return self._deadline.pop(key, None) is not None

    def expired(self, now: float) -> list[Key]:
        gone = [k for k, deadline in self._deadline.items() if deadline <= now]
        for k in gone:
            del self._deadline[k]
        return gone
