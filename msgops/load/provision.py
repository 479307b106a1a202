"""Provisioning: the users, tokens, conversations and communities a run needs, and their removal.

Through the API by default (what a real client does; works against any deployment given its JWT
secret), or directly in the database when the profile says `provision.via: database` (thousands of
users in a second or two; needs DATABASE_URL). Either way everything created is removed after the
run: through DELETE /admin/users/{id} (erasure: memberships, messages, emptied conversations), or
with the same deletes in SQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import psycopg

from msgops.errors import UserError
from msgops.load.plan import Identity
from msgops.load.profile import Profile

CONCURRENCY = 32
T = TypeVar("T")
# Tables force RLS even for their owner; service_role bypasses it (and holds every table privilege).
_AS_SERVICE = "select set_config('role', 'service_role', true)"


@dataclass
class Provisioned:
    identities: list[Identity]
    conversations: list[str]
    communities: list[str] = field(default_factory=list)
    via: str = "api"


@dataclass
class Provisioner:
    api_url: str
    secret: str
    run_id: str
    token_ttl_s: int
    database_url: str | None = None

    def mint(self, sub: str, role: str = "authenticated") -> str:
        from msgops.tokens import mint_token

        extra = None if role == "service_role" else {"email": f"load-{sub}@load.invalid",
                                                     "name": f"msgops load {self.run_id}"}
        return mint_token(self.secret, sub, role=role, ttl=self.token_ttl_s, extra=extra)

    def _new_identities(self, profile: Profile, organizers: int) -> list[Identity]:
        users = profile.provision.users + (profile.provision.users % 2 if profile.provision.group_size == 2 else 0)
        ids = [str(uuid.uuid4()) for _ in range(users + organizers)]
        out = [Identity(i, self.mint(i)) for i in ids[:users]]
        out += [Identity(i, self.mint(i), role="organizer") for i in ids[users:]]
        return out

    @staticmethod
    def _groups(members: list[int], size: int) -> list[list[int]]:
        groups = [members[i:i + size] for i in range(0, len(members), size)]
        if len(groups) > 1 and len(groups[-1]) < 2:  # a group of one cannot talk: fold it into the previous
            groups[-2].extend(groups.pop())
        return groups

    # Public -------------------------------------------------------------------------------------

    async def provision(self, profile: Profile, organizers: int,
                        progress: Callable[[str], None] | None = None) -> Provisioned:
        identities = self._new_identities(profile, organizers)
        members = [i for i, ident in enumerate(identities) if ident.role != "organizer"]
        groups = self._groups(members, profile.provision.group_size)
        communities = min(profile.provision.communities, len(members))
        if profile.provision.via == "database":
            return await self._via_database(identities, groups, communities, progress)
        return await self._via_api(identities, groups, communities, progress)

    async def cleanup(self, provisioned: Provisioned) -> int:
        """Remove everything the run created; returns how many users were erased."""
        if provisioned.via == "database":
            return await self._cleanup_database(provisioned)
        return await self._cleanup_api(provisioned)

    # Through the API ----------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.api_url, timeout=30,
                                 limits=httpx.Limits(max_connections=CONCURRENCY))

    @staticmethod
    async def _bounded(jobs: list[Awaitable[T]]) -> list[T]:
        """At most CONCURRENCY at once: the target serves the run's users too, not only us."""
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(job: Awaitable[T]) -> T:
            async with gate:
                return await job

        return list(await asyncio.gather(*(one(j) for j in jobs)))

    @staticmethod
    def _expect(r: httpx.Response, what: str, *ok: int) -> dict[str, Any]:
        if r.status_code not in ok:
            hint = ""
            if r.status_code == 401:
                hint = " (the target does not accept our tokens: check MSGOPS_JWT_SECRET)"
            elif r.status_code == 429:
                hint = " (rate limited: provision fewer users per owner, or run the target with MSGOPS_RATE_LIMITS=off)"
            raise UserError(f"provisioning failed: {what} answered {r.status_code}{hint}: {r.text[:200]}", 2)
        return r.json() if r.content else {}

    async def _via_api(self, identities: list[Identity], groups: list[list[int]], communities: int,
                       progress: Callable[[str], None] | None) -> Provisioned:
        service = {"Authorization": f"Bearer {self.mint(str(uuid.uuid4()), 'service_role')}"}

        def auth(ident: Identity) -> dict[str, str]:
            return {"Authorization": f"Bearer {ident.token}"}

        async with self._client() as http:
            if progress:
                progress(f"creating {len(identities)} users through the API")

            async def create_user(ident: Identity) -> None:
                self._expect(await http.get("/conversations", headers=auth(ident)), "GET /conversations", 200)
                if ident.role != "attendee":
                    self._expect(await http.put(f"/admin/users/{ident.id}/role", json={"role": ident.role},
                                                headers=service), "PUT /admin/users/{id}/role", 200)

            await self._bounded([create_user(i) for i in identities])
            if progress:
                progress(f"creating {len(groups)} conversations")

            async def create_conversation(group: list[int]) -> str:
                owner, others = identities[group[0]], [identities[g].id for g in group[1:]]
                body: dict[str, Any] = ({"kind": "direct", "user_id": others[0]} if len(group) == 2 else
                                        {"kind": "group", "title": f"load {self.run_id}", "member_ids": others})
                created = self._expect(await http.post("/conversations", json=body, headers=auth(owner)),
                                       "POST /conversations", 200, 201)
                return str(created["id"])

            conversations = await self._bounded([create_conversation(g) for g in groups])
            community_ids: list[str] = []
            if communities:
                if progress:
                    progress(f"creating {communities} communities")

                async def create_community(n: int) -> str:
                    created = self._expect(await http.post("/communities", json={
                        "name": f"load {self.run_id} {n}"}, headers=auth(identities[n])), "POST /communities", 201)
                    return str(created["id"])

                community_ids = await self._bounded([create_community(n) for n in range(communities)])
                members = [i for g in groups for i in g]

                async def join(n: int, index: int) -> None:
                    self._expect(await http.post(f"/communities/{community_ids[index]}/join",
                                                 headers=auth(identities[n])),
                                 "POST /communities/{id}/join", 200, 201)

                await self._bounded([join(n, k % communities) for k, n in enumerate(members) if k >= communities])
        return self._assemble(identities, groups, conversations, community_ids, "api")

    async def _cleanup_api(self, provisioned: Provisioned) -> int:
        service = {"Authorization": f"Bearer {self.mint(str(uuid.uuid4()), 'service_role')}"}
        async with self._client() as http:

            async def erase(ident: Identity) -> bool:
                try:
                    r = await http.delete(f"/admin/users/{ident.id}", headers=service)
                except httpx.HTTPError:
                    return False
                return r.status_code in (200, 204)

            done = await self._bounded([erase(i) for i in provisioned.identities])
        return sum(done)

    # Directly in the database ---------------------------------------------------------------------

    def _need_db(self) -> str:
        if not self.database_url:
            raise UserError("this profile provisions directly in the database (provision.via: database): "
                            "set DATABASE_URL or pass --database-url")
        return self.database_url

    async def _via_database(self, identities: list[Identity], groups: list[list[int]], communities: int,
                            progress: Callable[[str], None] | None) -> Provisioned:
        url = self._need_db()
        if progress:
            progress(f"creating {len(identities)} users and {len(groups)} conversations in the database")
        conversations = [str(uuid.uuid4()) for _ in groups]
        community_ids = [str(uuid.uuid4()) for _ in range(communities)]
        conv_rows: list[tuple[str, str, str | None, str | None]] = []
        member_rows: list[tuple[str, str, str]] = []
        for conv, group in zip(conversations, groups, strict=True):
            ids = [identities[g].id for g in group]
            direct = len(group) == 2
            key = f"{min(ids)}:{max(ids)}" if direct else None
            conv_rows.append((conv, "direct" if direct else "group", None if direct else f"load {self.run_id}", key))
            member_rows += [(conv, uid, "owner" if n == 0 else "member") for n, uid in enumerate(ids)]
        members = [i for g in groups for i in g]
        try:
            async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
                await conn.execute(_AS_SERVICE)
                await conn.execute(
                    "insert into public.profiles (id, email, display_name, role) "
                    "select * from unnest(%s::uuid[], %s::text[], %s::text[], %s::text[])",
                    ([i.id for i in identities], [f"load-{i.id}@load.invalid" for i in identities],
                     [f"msgops load {self.run_id}"] * len(identities), [i.role for i in identities]))
                await conn.execute(
                    "insert into public.conversations (id, kind, title, direct_key, created_by) "
                    "select c.id, c.kind, c.title, c.key, m.user_id "
                    "from unnest(%s::uuid[], %s::text[], %s::text[], %s::text[]) as c(id, kind, title, key) "
                    "join unnest(%s::uuid[], %s::uuid[]) as m(conv, user_id) on m.conv = c.id",
                    ([r[0] for r in conv_rows], [r[1] for r in conv_rows], [r[2] for r in conv_rows],
                     [r[3] for r in conv_rows], conversations, [identities[g[0]].id for g in groups]))
                await conn.execute(
                    "insert into public.conversation_members (conversation_id, user_id, role) "
                    "select * from unnest(%s::uuid[], %s::uuid[], %s::text[])",
                    ([r[0] for r in member_rows], [r[1] for r in member_rows], [r[2] for r in member_rows]))
                if community_ids:
                    owners = [identities[members[n]].id for n in range(communities)]
                    await conn.execute(  # the add_community_owner trigger makes each creator its owner
                        "insert into public.communities (id, name, created_by) "
                        "select * from unnest(%s::uuid[], %s::text[], %s::uuid[])",
                        (community_ids, [f"load {self.run_id} {n}" for n in range(communities)], owners))
                    joins = [(community_ids[k % communities], identities[n].id)
                             for k, n in enumerate(members) if k >= communities]
                    await conn.execute(
                        "insert into public.community_members (community_id, user_id) "
                        "select * from unnest(%s::uuid[], %s::uuid[])",
                        ([j[0] for j in joins], [j[1] for j in joins]))
        except psycopg.Error as exc:
            raise UserError(f"provisioning in the database failed: {str(exc).strip().splitlines()[0]}", 2) from None
        return self._assemble(identities, groups, conversations, community_ids, "database")

    async def _cleanup_database(self, provisioned: Provisioned) -> int:
        url = self._need_db()
        users = [i.id for i in provisioned.identities]
        async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
            await conn.execute(_AS_SERVICE)
            # Conversations first: their messages go with them (on delete cascade).
            await conn.execute("delete from public.conversations where id = any(%s::uuid[])",
                               (provisioned.conversations,))
            await conn.execute("delete from public.communities where id = any(%s::uuid[])",
                               (provisioned.communities,))
            await conn.execute("delete from public.rate_limit_counters where user_id = any(%s::uuid[])", (users,))
            cur = await conn.execute("delete from public.profiles where id = any(%s::uuid[])", (users,))
            return cur.rowcount

    # ------------------------------------------------------------------------------------------------

    @staticmethod
    def _assemble(identities: list[Identity], groups: list[list[int]], conversations: list[str],
                  communities: list[str], via: str) -> Provisioned:
        for index, group in enumerate(groups):
            for member in group:
                identities[member].conversation = index
        members = [i for g in groups for i in g]
        if communities:
            for k, n in enumerate(members):
                identities[n].community = k % len(communities)
        return Provisioned(identities, conversations, communities, via)
