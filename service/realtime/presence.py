"""Presence: online / away / offline, in memory, never rows.

Each instance derives the status of the users connected to it (`Local`): online on connect or
heartbeat, away after `away_after` without a heartbeat, offline `grace` seconds after the last
socket dropped (so a reload or a network switch does not flap), or at once when the last socket
closed normally (code 1000: the client signed out or quit). It announces changes on the bus. Every instance
merges the announcements of all instances (`Directory`): a user is online if any instance says so.
An instance that stops announcing that it is alive has its users expire.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

Status = str  # "online" | "away" | "offline"
_RANK = {"offline": 0, "away": 1, "online": 2}


@dataclass
class _LocalUser:
    sockets: int
    last_beat: float
    status: Status
    offline_at: float | None = None


class Local:
    """Statuses of this instance's users. Methods return the changes to announce."""

    def __init__(self, away_after: float, grace: float) -> None:
        self.away_after = away_after
        self.grace = grace
        self.users: dict[uuid.UUID, _LocalUser] = {}

    def connect(self, user: uuid.UUID, now: float) -> Status | None:
        entry = self.users.get(user)
        if entry is None:
            self.users[user] = _LocalUser(1, now, "online")
            return "online"
        entry.sockets += 1
        entry.offline_at = None
        return self.beat(user, now)

    def beat(self, user: uuid.UUID, now: float) -> Status | None:
        entry = self.users.get(user)
        if entry is None:
            return None
        entry.last_beat = now
        if entry.status != "online":
            entry.status = "online"
            return "online"
        return None

    def disconnect(self, user: uuid.UUID, now: float, leaving: bool = False) -> Status | None:
        """`leaving`: the socket closed normally, so no reconnect is coming and offline is immediate."""
        entry = self.users.get(user)
        if entry is None:
            return None
        entry.sockets -= 1
        if entry.sockets > 0:
            return None
        if leaving:
            del self.users[user]
            return "offline"
        entry.sockets = 0
        entry.offline_at = now + self.grace
        return None

    def tick(self, now: float) -> list[tuple[uuid.UUID, Status]]:
        changes: list[tuple[uuid.UUID, Status]] = []
        for user, entry in list(self.users.items()):
            if entry.offline_at is not None and entry.offline_at <= now:
                del self.users[user]
                changes.append((user, "offline"))
            elif entry.status == "online" and now - entry.last_beat >= self.away_after:
                entry.status = "away"
                changes.append((user, "away"))
        return changes

    def snapshot(self) -> dict[str, Status]:
        return {str(u): e.status for u, e in self.users.items() if e.offline_at is None}


class Directory:
    """Every instance's announcements, merged. Methods return users whose merged status changed."""

    def __init__(self, instance_ttl: float) -> None:
        self.instance_ttl = instance_ttl
        self._by_user: dict[uuid.UUID, dict[str, Status]] = {}
        self._alive: dict[str, float] = {}

    def status(self, user: uuid.UUID) -> Status:
        per_instance = self._by_user.get(user)
        if not per_instance:
            return "offline"
        return max(per_instance.values(), key=lambda s: _RANK.get(s, 0))

    def announce(self, instance: str, user: uuid.UUID, status: Status, now: float) -> Status | None:
        before = self.status(user)
        self._alive[instance] = now
        per_instance = self._by_user.setdefault(user, {})
        if status == "offline":
            per_instance.pop(instance, None)
            if not per_instance:
                del self._by_user[user]
        else:
            per_instance[instance] = status
        after = self.status(user)
        return after if after != before else None

    def alive(self, instance: str, now: float) -> None:
        self._alive[instance] = now

    def drop_instance(self, instance: str) -> list[tuple[uuid.UUID, Status]]:
        self._alive.pop(instance, None)
        changes: list[tuple[uuid.UUID, Status]] = []
        for user in [u for u, per in self._by_user.items() if instance in per]:
            change = self.announce(instance, user, "offline", 0.0)
            if change is not None:
                changes.append((user, change))
        self._alive.pop(instance, None)
        return changes

    def expire(self, now: float, keep: str) -> list[tuple[uuid.UUID, Status]]:
        changes: list[tuple[uuid.UUID, Status]] = []
        for instance, seen in list(self._alive.items()):
            if instance != keep and now - seen > self.instance_ttl:
                changes.extend(self.drop_instance(instance))
        return changes
