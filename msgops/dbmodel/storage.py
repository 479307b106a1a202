"""Supabase Storage in the RLS matrix: the buckets, the path convention each bucket's policies key on, and
one file per convention arranged as the owner (inside the caller's rolled-back transaction) for the
personas to list, read, overwrite and delete.

A policy on storage.objects names its bucket (`bucket_id = 'attachments'`) and usually ties the file to
the caller through its path: a folder holding the user id (`(storage.foldername(name))[1] =
auth.uid()::text`, `split_part(name, '/', 1)`, `(string_to_array(name, '/'))[1]`), a folder or file name
holding a room id (checked against a membership table or a function), a fixed template
(`name = 'public/' || auth.uid() || '.jpg'`), or the object's owner. Each convention found gives one file,
owned by `other`, in `other`'s folder or in the arranged room's; a bucket whose policies name none gets a
file in `other`'s first folder, Supabase's documented layout.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import AsyncClientCursor, AsyncConnection

Keyed = Literal["user", "room"]

_PATH = (r"(?:\(\s*storage\.foldername\(\s*(?:\w+\.)?name\s*\)\s*\)\s*\[\s*(\d+)\s*\]"
         r"|\(\s*string_to_array\(\s*(?:\w+\.)?name\s*,\s*'/'(?:::text)?\s*\)\s*\)\s*\[\s*(\d+)\s*\]"
         r"|split_part\(\s*(?:\w+\.)?name\s*,\s*'/'(?:::text)?\s*,\s*(\d+)\s*\))")
_UID = r"auth\.uid\(\)"
_TEMPLATE = re.compile(r"name\s*=\s*\(*\s*'([^']*)'(?:::text)?\s*\|\|\s*\(*\s*(?:select\s+)?auth\.uid\(\)"
                       r"(?:\s+as\s+\w+)?\s*\)*"
                       r"(?:\s*::\s*text)?\s*\)*\s*\|\|\s*'([^']*)'", re.IGNORECASE)
_FILENAME = re.compile(r"storage\.filename\(\s*(?:\w+\.)?name\s*\)", re.IGNORECASE)
_BUCKET = re.compile(r"bucket_id\s*=\s*'([^']+)'")

_BUCKETS = """
select b.id, coalesce(b.public, false) as public from storage.buckets b order by b.id
"""
_POLICIES = """
select policyname as name, lower(cmd) as cmd, concat_ws(' ', qual, with_check) as text
  from pg_policies where schemaname = 'storage' and tablename = 'objects'
"""


@dataclass(frozen=True)
class Convention:
    keyed: Keyed  # whose id the path holds
    folder: int  # 1-based folder; 0: the file name itself
    prefix: str = ""  # a fixed template around the id (name = 'public/' || auth.uid() || '.jpg')
    suffix: str = ""
    reason: str = ""

    def path(self, key: str, tag: str) -> str:
        if self.prefix or self.suffix:
            return f"{self.prefix}{key}{self.suffix}"
        if self.folder == 0:
            return f"{key}.jpg"
        return "/".join([*(["msgops"] * (self.folder - 1)), key, f"msgops-{tag}.txt"])


@dataclass(frozen=True)
class Bucket:
    id: str
    public: bool
    conventions: tuple[Convention, ...]
    exists: bool = True  # a row in storage.buckets (otherwise only named by a policy)

    @property
    def object(self) -> str:
        return f"storage.objects bucket {self.id}"


@dataclass(frozen=True)
class StoredFile:
    """A file arranged in a bucket: whose it is, and who must be able to read it (the control)."""

    bucket: Bucket
    name: str
    convention: Convention
    owner: str  # persona
    reader: str  # persona the convention says may read it


@dataclass
class Storage:
    files: list[StoredFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    owner_columns: tuple[str, ...] = ()  # owner (uuid) and owner_id (text), where storage.objects has them

    def insert(self) -> str:
        """An upload's row: bucket, path and, where the table has them, the owner's id."""
        cols = ["bucket_id", "name", *self.owner_columns]
        values = ["%(bucket)s", "%(name)s", *("%(me)s::uuid" if c == "owner" else "%(me)s::text"
                                             for c in self.owner_columns)]
        return f"insert into storage.objects ({', '.join(cols)}) values ({', '.join(values)})"


def conventions(texts: list[str]) -> tuple[Convention, ...]:
    """The path conventions a bucket's policies (their USING and WITH CHECK texts) key on."""
    found: dict[tuple[Keyed, int, str, str], Convention] = {}
    for text in texts:
        flat = " ".join(text.split())
        for m in _TEMPLATE.finditer(flat):
            found.setdefault(("user", -1, m[1], m[2]), Convention("user", -1, m[1], m[2],
                                                                 f"name = '{m[1]}' || auth.uid() || '{m[2]}'"))
        for m in re.finditer(_PATH, flat, re.IGNORECASE):
            n = int(next(g for g in m.groups() if g))
            near = re.search(rf"{_UID}[^,()]*\)*\s*(?:::\s*text)?\s*=\s*{re.escape(m[0])}"
                             rf"|{re.escape(m[0])}\s*=\s*\(*\s*(?:select\s+)?\(*\s*{_UID}", flat, re.IGNORECASE)
            keyed: Keyed = "user" if near else "room"
            found.setdefault((keyed, n, "", ""), Convention(keyed, n, reason=f"{m[0]} holds the {keyed} id"))
        if _FILENAME.search(flat) and not _TEMPLATE.search(flat):
            found.setdefault(("room", 0, "", ""), Convention("room", 0, reason="storage.filename(name) holds the "
                                                                              "room id"))
    return tuple(found.values())


async def read_buckets(conn: AsyncConnection[Any]) -> list[Bucket]:
    """Buckets with their conventions; nothing when the database has no Supabase Storage."""
    cur = await conn.execute("select to_regclass('storage.objects') is not null and "
                             "to_regclass('storage.buckets') is not null")
    row = await cur.fetchone()
    if not row or not _first(row):
        return []
    cur = await conn.execute(_BUCKETS)
    rows = [(_first(r), _second(r)) for r in await cur.fetchall()]
    cur = await conn.execute(_POLICIES)
    policies = [(_first(r), _third(r) or "") for r in await cur.fetchall()]
    named = {b for _, text in policies for b in _BUCKET.findall(text)}
    out: list[Bucket] = []
    for bucket_id, public in [*rows, *((b, False) for b in sorted(named - {r[0] for r in rows}))]:
        texts = [text for _, text in policies if f"'{bucket_id}'" in text]
        found = conventions(texts) or (Convention("user", 1, reason="no path convention in the policies: "
                                                                   "Supabase's <user id>/<file> layout"),)
        out.append(Bucket(bucket_id, bool(public), found, exists=any(r[0] == bucket_id for r in rows)))
    return out


async def arrange_storage(conn: AsyncConnection[Any], subs: dict[str, uuid.UUID], room: Any,
                          log: list[str]) -> Storage:
    """One file per bucket and convention, owned by `other`: in their folder (user-keyed) or in the arranged
    room's (room-keyed, `member` shares the room). Inserted as the owner; `log` gets the statements."""
    cur = await conn.execute("select attname from pg_attribute where attrelid = to_regclass('storage.objects') "
                             "and attname in ('owner', 'owner_id') and not attisdropped order by attname")
    done = Storage(owner_columns=tuple(_first(r) for r in await cur.fetchall()))
    owner = subs["other"]
    mogrify = AsyncClientCursor(conn).mogrify
    for bucket in await read_buckets(conn):
        if not bucket.exists:
            statement = mogrify("insert into storage.buckets (id, name, public) values (%s, %s, false) "
                                "on conflict do nothing", (bucket.id, bucket.id))
            await conn.execute(statement)
            log.append(statement)
        for c in bucket.conventions:
            if c.keyed == "room" and room is None:
                done.notes.append(f"{bucket.object}: its files are kept under a room id ({c.reason}), and no room "
                                  "could be arranged")
                continue
            key = str(owner) if c.keyed == "user" else str(room)
            name = c.path(key, uuid.uuid4().hex[:8])
            statement = mogrify(done.insert(), {"bucket": bucket.id, "name": name, "me": str(owner)})
            try:
                async with conn.transaction():  # a savepoint: one file refused leaves the others
                    await conn.execute(statement)
            except psycopg.Error as exc:
                done.notes.append(f"{bucket.object}: could not store {name} [{exc.sqlstate}] "
                                  f"{exc.diag.message_primary}")
                continue
            log.append(statement)
            done.files.append(StoredFile(bucket, name, c, "other", "other" if c.keyed == "user" else "member"))
    return done


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def _second(row: Any) -> Any:
    return list(row.values())[1] if isinstance(row, dict) else row[1]


def _third(row: Any) -> Any:
    return list(row.values())[2] if isinstance(row, dict) else row[2]


__all__ = ["Bucket", "Convention", "Storage", "StoredFile", "arrange_storage", "conventions", "read_buckets"]
