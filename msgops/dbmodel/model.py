"""The messaging model of a database: which tables are rooms, who is in a room, where messages live and
which table holds the users, each with the reason it was chosen (a foreign key, a column name).

It is data: `msgops discover` infers it from the catalog and writes it under `schema:` in msgops.yaml,
where a person corrects it; probes read it and never name tables of their own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

MembershipKind = Literal["table", "columns", "array", "none"]


@dataclass(frozen=True)
class UserTable:
    """Where users live. `key` is the column other tables reference; `auth_column` holds the auth user
    id (the JWT `sub`) when it is not the key itself (e.g. users.auth_id)."""

    table: str
    key: str
    auth_column: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Room:
    table: str
    key: str
    reason: str = ""


@dataclass(frozen=True)
class Membership:
    """Who is in a room: rows of a table (room column + user column), user columns on the room itself
    (buyer_id/seller_id), an array of user ids on the room, or nothing at all."""

    kind: MembershipKind
    room: str | None = None  # the room table
    table: str | None = None  # the membership table (kind "table")
    room_column: str | None = None  # in the membership table
    user_column: str | None = None  # in the membership table, or the array column (kind "array")
    user_columns: tuple[str, ...] = ()  # on the room (kind "columns")
    reason: str = ""


@dataclass(frozen=True)
class MessageTable:
    table: str
    sender: str
    content: str
    room: str | None = None  # the room table, if any
    room_column: str | None = None
    extra_users: tuple[str, ...] = ()  # other user columns (receiver_id, ...)
    reason: str = ""


@dataclass(frozen=True)
class Staff:
    """Who holds a staff role. `room` is set when the roles are held per room (a role column on the
    membership table: a moderator of one community); otherwise they are global (a role on the user or in
    a staff table). `grants` are what the schema's policies give each role, as "<command> <table> by
    <role>" (a policy for that command and table that reads this role column and names the role)."""

    table: str
    user_column: str
    role_column: str
    roles: tuple[str, ...] = ()
    room: str | None = None
    grants: tuple[str, ...] = ()
    reason: str = ""

    def may(self, op: str, table: str, role: str) -> bool:
        return f"{op} {table} by {role}" in self.grants

    @property
    def granted_roles(self) -> tuple[str, ...]:
        return tuple(r for r in self.roles if any(g.endswith(f" by {r}") for g in self.grants))


@dataclass(frozen=True)
class Model:
    users: UserTable | None = None
    rooms: tuple[Room, ...] = ()
    memberships: tuple[Membership, ...] = ()
    messages: tuple[MessageTable, ...] = ()
    staff: tuple[Staff, ...] = ()
    contact_columns: tuple[str, ...] = ()  # "schema.table.column" holding emails or phone numbers
    findings: tuple[str, ...] = field(default=())  # what discovery itself noticed (no membership, ...)

    def membership_of(self, room: str) -> Membership:
        for m in self.memberships:
            if m.room == room:
                return m
        return Membership("none", room=room, reason=f"nothing in the schema says who is in {room}")

    def room(self, table: str) -> Room | None:
        return next((r for r in self.rooms if r.table == table), None)

    @property
    def has_membership(self) -> bool:
        return any(m.kind != "none" for m in self.memberships)

    def to_mapping(self) -> dict[str, Any]:
        """The `schema:` section of msgops.yaml."""
        def clean(d: dict[str, Any]) -> dict[str, Any]:
            return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if v not in (None, (), "")}
        return {
            "users": clean(asdict(self.users)) if self.users else None,
            "rooms": [clean(asdict(r)) for r in self.rooms],
            "memberships": [clean(asdict(m)) for m in self.memberships],
            "messages": [clean(asdict(m)) for m in self.messages],
            "staff": [clean(asdict(s)) for s in self.staff],
            "contact_columns": list(self.contact_columns),
        }

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Model:
        """Read a `schema:` section (as written by `to_mapping`, possibly corrected by a person)."""
        def tup(d: dict[str, Any]) -> dict[str, Any]:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        try:
            return cls(
                users=UserTable(**data["users"]) if data.get("users") else None,
                rooms=tuple(Room(**tup(r)) for r in data.get("rooms") or []),
                memberships=tuple(Membership(**tup(m)) for m in data.get("memberships") or []),
                messages=tuple(MessageTable(**tup(m)) for m in data.get("messages") or []),
                staff=tuple(Staff(**tup(s)) for s in data.get("staff") or []),
                contact_columns=tuple(data.get("contact_columns") or ()),
            )
        except TypeError as exc:
            raise ValueError(f"schema: {exc}") from None
