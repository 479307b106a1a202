"""Seed objects by meaning: what a table or index named in a seed checklist stands for in the target's
discovered model.

The seeds name the reference's objects ("RLS enabled on all 6 tables", `idx_messages_conversation_created`).
On a schema that has them (most named objects exist) the names are checked literally. On another schema
each name is read as its role — the room table, its membership, its message table, an index serving a
room's message page — and checked on the model's counterpart; a name with no counterpart is not
applicable, with the reason, never a failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from msgops.dbmodel.model import Model
from msgops.dbmodel.target import target_model
from msgops.probes.context import Context, Skip

# seed table -> (role, family): family 0 is the seeds' conversations, 1 their communities
SEED_TABLES: dict[str, tuple[str, int]] = {
    "conversations": ("room", 0), "conversation_members": ("membership", 0), "messages": ("message", 0),
    "communities": ("room", 1), "community_members": ("membership", 1), "community_messages": ("message", 1),
}
# seed tables with no role in the messaging model (the role-based seeds' broadcasts, reports, audit, ...):
# on another schema they are not applicable unless the schema has a table of that very name
SEED_ONLY = frozenset({"profiles", "message_reactions", "broadcasts", "broadcast_quotas", "broadcast_permissions",
                       "reported_messages", "audit_log", "rate_limit_counters", "app_roles", "dm_permissions"})
# seed index -> the family whose message page it serves
SEED_PAGE_INDEXES: dict[str, int] = {"idx_messages_conversation_created": 0,
                                     "idx_community_messages_community_created": 1}
# seed index -> the hot query it serves, judged on that query's plan over the model
SEED_PLAN_INDEXES: dict[str, str] = {"idx_messages_search": "search", "idx_conversation_members_user": "unread_counts"}
_COMMUNITY_WORDS = ("communit", "channel", "team", "group", "server", "space")


@dataclass(frozen=True)
class Family:
    room: str | None
    membership: str | None
    message: str | None
    room_column: str | None

    def table(self, role: str) -> str | None:
        return {"room": self.room, "membership": self.membership, "message": self.message}[role]


def families(model: Model) -> list[Family]:
    """The model's rooms, each with its membership table and message table, conversations-like first."""
    out: list[Family] = []
    for room in sorted(model.rooms, key=lambda r: any(w in r.table for w in _COMMUNITY_WORDS)):
        m = model.membership_of(room.table)
        msg = next((x for x in model.messages if x.room == room.table), None)
        out.append(Family(room.table, m.table if m.kind == "table" else None, msg.table if msg else None,
                          msg.room_column if msg else None))
    if not out:
        for msg in model.messages:
            out.append(Family(None, None, msg.table, msg.room_column))
    if len(out) == 1 and out[0].room and any(w in out[0].room for w in _COMMUNITY_WORDS):
        out.insert(0, Family(None, None, None, None))  # a channels-only schema: nothing like the seeds' DMs
    return out


def counterpart(name: str, model: Model) -> tuple[str | None, str]:
    """(the model's table for a seed table name, why) — None with the reason when there is none."""
    bare = name.split(".")[-1]
    if bare not in SEED_TABLES:
        return None, f"{name} is not a messaging table of the seeds"
    role, index = SEED_TABLES[bare]
    fams = families(model)
    if index >= len(fams):
        return None, f"{name}: the schema has no {'second ' if index else ''}kind of room"
    table = fams[index].table(role)
    if table is None:
        what = {"room": "room table", "membership": "membership table", "message": "message table"}[role]
        return None, f"{name}: the schema has no {what} for {fams[index].room or fams[index].message or 'its rooms'}"
    return table, f"{name} is the {role} table here: {table}"


def model_tables(model: Model) -> list[str]:
    """Every messaging table of the model (rooms, membership tables, message tables, a public user table)."""
    names: list[str] = []
    for f in families(model):
        names += [t for t in (f.room, f.membership, f.message) if t]
    if model.users and model.users.table.startswith("public."):
        names.append(model.users.table)
    return list(dict.fromkeys(names))


def literal(present: int, named: int) -> bool:
    """Check the names literally when the schema has most of them (it is the seeds' schema)."""
    return named > 0 and present * 2 >= named


async def resolve_tables(ctx: Context, names: list[tuple[str, str]], every_model_table: bool = False
                         ) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The tables to check for `names`: the names themselves on the seeds' schema, and names that are not the
    seeds'; otherwise each seed name's counterpart in the model (or, with `every_model_table`, every
    messaging table of the model), and why. Raises Skip when nothing in the schema answers to the names."""
    seed_named = [(s, t) for s, t in names if s == "public" and t in SEED_TABLES]
    seed_only = [(s, t) for s, t in names if s == "public" and t in SEED_ONLY]
    if not (seed_named or seed_only) or await seed_schema(ctx):
        return names, {}
    model = await target_model(ctx)
    why: dict[str, str] = {}
    chosen = [f"{s}.{t}" for s, t in names if (s, t) not in seed_named and (s, t) not in seed_only]
    if seed_only:
        from msgops.probes.db.catalog import fetch

        rows = await fetch(ctx, "select t from unnest(%s::text[]) t where to_regclass('public.' || t) is not null",
                           ([t for _, t in seed_only],))
        present = {r["t"] for r in rows}
        for s, t in seed_only:
            if t in present:
                chosen.append(f"{s}.{t}")
            else:
                why[f"{s}.{t}"] = (f"not applicable: {s}.{t} is a table of the seeds' own design with no "
                                   "counterpart in the messaging model")
    for s, t in seed_named:
        table, reason = counterpart(f"{s}.{t}", model)
        why[f"{s}.{t}"] = reason if table else f"not applicable: {reason}"
        if table:
            chosen.append(table)
    if every_model_table:
        chosen += model_tables(model)
    if not chosen:
        raise Skip("not applicable: none of " + ", ".join(f"{s}.{t}" for s, t in names) + " has a counterpart "
                   "in this schema (" + "; ".join(why.values()) + ")")
    return [_split(c) for c in dict.fromkeys(chosen)], why


def _split(name: str) -> tuple[str, str]:
    schema, _, table = name.partition(".")
    return schema.strip('"'), table.strip('"')


_PAGE_INDEXES = """
select format('%%I.%%I', n.nspname, c.relname) as index, pg_get_indexdef(c.oid) as definition
  from pg_index i
  join pg_class c on c.oid = i.indexrelid
  join pg_namespace n on n.oid = c.relnamespace
  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
 where i.indrelid = to_regclass(%s) and a.attname = %s and i.indisvalid
"""


async def page_index(ctx: Context, name: str) -> tuple[str | None, str]:
    """For a seed index that serves a room's message page: an index of the model's message table that
    leads with its room column (None with the reason when there is no such table, or no such index). A seed
    index that serves search or unread counts is judged on the plan of the model's query instead."""
    from msgops.probes.db.catalog import fetch

    if query := SEED_PLAN_INDEXES.get(name.split(".")[-1]):
        return await plan_index(ctx, name, query)
    family = SEED_PAGE_INDEXES.get(name.split(".")[-1])
    if family is None:
        return None, f"not applicable: {name} has no meaning msgops knows beyond its name"
    fams = families(await target_model(ctx))
    if family >= len(fams) or not fams[family].message or not fams[family].room_column:
        return None, f"not applicable: {name} serves a message page of a kind of room this schema does not have"
    table, column = fams[family].message, fams[family].room_column
    rows = await fetch(ctx, _PAGE_INDEXES, (table, column))
    if rows:
        return str(rows[0]["index"]), f"{rows[0]['index']} serves {table}'s page by {column}: {rows[0]['definition']}"
    return None, f"no index on {table} leads with {column}: every page of a room scans the table"


async def plan_index(ctx: Context, name: str, query: str) -> tuple[str | None, str]:
    """For a seed index that serves a hot query (search, unread counts): the index the model's query plan
    uses (None with the reason when the query is not applicable, or no index serves it)."""
    from msgops.probes.db.plans import judge, nodes, observe

    seen = (await observe(ctx)).get(query)
    if isinstance(seen, Skip) or seen is None:
        return None, f"not applicable: {name} serves {query}: {str(seen).removeprefix('not applicable: ')}"
    plan = nodes(seen["document"]["Plan"])
    problems = judge(seen["query"], plan, seen.get("leading"))
    if problems:
        return None, f"no index serves {query} ({'; '.join(problems)}): expected {seen['query'].expected_index}"
    used = sorted({str(n["index"]) for n in plan if "index" in n})
    return (used[0] if used else "(no index needed)"), f"{', '.join(used) or 'no index needed'}: {query} planned " \
        "without a scan"


async def seed_schema(ctx: Context) -> bool:
    """Is this the seeds' own schema (most of their messaging tables exist)?"""
    from msgops.probes.db.catalog import fetch

    seed = sorted(SEED_TABLES)
    rows = await fetch(ctx, "select count(*) as n from unnest(%s::text[]) t where to_regclass('public.' || t) "
                            "is not null", (seed,))
    return literal(int(rows[0]["n"]), len(seed))
