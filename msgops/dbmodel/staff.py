"""Staff personas of the RLS matrix: a user holding each staff role the model knows, who is not in the room
the matrix acts on (a global moderator; a moderator of another room), and, for roles held per room, one
holding the role in that room. They are arranged as the owner, inside the caller's rolled-back transaction.

Which roles get a persona: those the schema's policies grant something (`Staff.grants`), or the first role
when none is granted anything (to show that holding it opens nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from msgops.dbmodel.arrange import Arranged, ArrangeError, Arranger, room_values
from msgops.dbmodel.model import Model, Staff

Scope = Literal["global", "elsewhere", "here"]


@dataclass(frozen=True)
class StaffPersona:
    name: str
    staff: Staff
    role: str
    scope: Scope  # global: the role is not per room; elsewhere / here: held in another room / in this one

    def describe(self) -> str:
        where = f"{self.staff.table}.{self.staff.role_column}"
        if self.scope == "global":
            return f"{self.role} ({where}) who is not in the room"
        return f"{self.role} of {'another room' if self.scope == 'elsewhere' else 'the room'} ({where})"


def staff_personas(model: Model) -> list[StaffPersona]:
    out: list[StaffPersona] = []
    for s in model.staff:
        granted = s.granted_roles
        roles = granted or tuple(r for r in s.roles[:1] if not r.startswith("("))
        for role in roles:
            if s.room is None:
                name = role if all(p.name != role for p in out) else f"{role}_{_bare(s.table)}"
                out.append(StaffPersona(name, s, role, "global"))
                continue
            out.append(StaffPersona(f"{role}_of_another_{_bare(s.room)}", s, role, "elsewhere"))
            if role in granted:
                out.append(StaffPersona(f"{role}_of_{_bare(s.room)}", s, role, "here"))
    return out


def _bare(table: str) -> str:
    return table.rsplit(".", 1)[-1].strip('"')


async def arrange_staff(arranger: Arranger, a: Arranged, model: Model) -> list[StaffPersona]:
    """Users for the staff personas, each given their role; a persona that cannot be arranged is left out
    with a note (and none of its rows)."""
    done: list[StaffPersona] = []
    for p in staff_personas(model):
        logged = len(arranger.log)
        try:
            async with arranger.conn.transaction():  # a savepoint: a persona half made is undone
                sub, key = await arranger.user(p.name)
                await _give_role(arranger, a, model, p, key)
        except (ArrangeError, psycopg.Error) as exc:
            del arranger.log[logged:]
            a.notes.append(f"staff persona {p.name} ({p.describe()}) could not be arranged: {exc}")
            continue
        a.subs[p.name], a.keys[p.name] = sub, key
        done.append(p)
    return done


def user_value(arranger: Arranger, table: str, column: str, key: Any) -> Any:
    return str(key) if arranger.cat.tables[table].columns[column].textual else key


async def _give_role(arranger: Arranger, a: Arranged, model: Model, p: StaffPersona, key: Any) -> None:
    s = p.staff
    value = user_value(arranger, s.table, s.user_column, key)
    if p.scope == "global":
        users = model.users
        if users is not None and s.table == users.table and s.user_column == users.key:
            t = arranger.cat.tables[s.table]
            update = sql.SQL("update {} set {} = {}::{} where {} = {}").format(
                sql.SQL(s.table), sql.Identifier(s.role_column), sql.Literal(p.role),
                sql.SQL(t.columns[s.role_column].type), sql.Identifier(s.user_column), sql.Literal(value))
            await arranger.conn.execute(update)
            arranger.log.append(update.as_string(arranger.conn))
        else:
            await arranger.insert(s.table, {s.user_column: value, s.role_column: p.role}, key, on_conflict=True)
        return
    assert s.room is not None
    membership = model.membership_of(s.room)
    room = model.room(s.room)
    if room is None or membership.room_column is None or s.room not in a.rooms:
        raise ArrangeError(f"no arranged room in {s.room}")
    if p.scope == "here":
        room_id = a.rooms[s.room]
    else:
        other, member = a.keys["other"], a.keys["member"]
        made = await arranger.insert(s.room, room_values(arranger.cat, model, s.room, other, member), other)
        room_id = made[room.key]
    await arranger.insert(s.table, {membership.room_column: room_id, s.user_column: value, s.role_column: p.role},
                          key, on_conflict=True)


__all__ = ["StaffPersona", "arrange_staff", "staff_personas"]
