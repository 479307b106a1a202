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
from msgops.load.identities import Identity, Layout, LoadSigner, new_seed
from msgops.load.profile import Profile

CONCURRENCY = 32
T = TypeVar("T")
# Tables force RLS even for their owner; service_role bypasses it (and holds every table privilege).
_AS_SERVICE = "select set_config('role', 'service_role', true)"


@dataclass
class Provisioned:
    layout: Layout
    conversations: list[str]
    communities: list[str] = field(default_factory=list)
    via: str = "api"

    @property
    def ids_from_seed(self) -> bool:
        """True when conversation and community ids are the layout's own (nothing to ship in the plan)."""
        return self.via == "database"

    def user_ids(self) -> list[str]:
        return [self.layout.user_id(n) for n in range(self.layout.total)]


@dataclass
class Provisioner:
    api_url: str
    signer: LoadSigner
    run_id: str
    database_url: str | None = None
    seed: str = field(default_factory=new_seed)

    def mint(self, sub: str, role: str = "authenticated") -> str:
        return self.signer.token(sub, role)

    def identity(self, layout: Layout, n: int) -> Identity:
        """User n, with a token."""
        ident = layout.identity(n)
        ident.token = self.mint(ident.id)
        return ident

    def layout(self, profile: Profile, organizers: int) -> Layout:
        users = profile.provision.users + (profile.provision.users % 2 if profile.provision.group_size == 2 else 0)
        return Layout(self.seed, users, organizers, profile.provision.group_size,
                      min(profile.provision.communities, users))

    # Public -------------------------------------------------------------------------------------

    async def provision(self, profile: Profile, organizers: int,
                        progress: Callable[[str], None] | None = None) -> Provisioned:
        layout = self.layout(profile, organizers)
        if profile.provision.via == "database":
            return await self._via_database(layout, progress)
        return await self._via_api(layout, progress)

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

    async def _via_api(self, layout: Layout, progress: Callable[[str], None] | None) -> Provisioned:
        service = {"Authorization": f"Bearer {self.mint(str(uuid.uuid4()), 'service_role')}"}

        def auth(n: int) -> dict[str, str]:
            return {"Authorization": f"Bearer {self.mint(layout.user_id(n))}"}

        async with self._client() as http:
            if progress:
                progress(f"creating {layout.total} users through the API")

            async def create_user(n: int) -> None:
                self._expect(await http.get("/conversations", headers=auth(n)), "GET /conversations", 200)
                role = layout.role(n)
                if role != "attendee":
                    self._expect(await http.put(f"/admin/users/{layout.user_id(n)}/role", json={"role": role},
                                                headers=service), "PUT /admin/users/{id}/role", 200)

            await self._bounded([create_user(n) for n in range(layout.total)])
            if progress:
                progress(f"creating {layout.conversations} conversations")

            async def create_conversation(c: int) -> str:
                owner, *others = layout.members_of(c)
                ids = [layout.user_id(n) for n in others]
                body: dict[str, Any] = ({"kind": "direct", "user_id": ids[0]} if len(ids) == 1 else
                                        {"kind": "group", "title": f"load {self.run_id}", "member_ids": ids})
                created = self._expect(await http.post("/conversations", json=body, headers=auth(owner)),
                                       "POST /conversations", 200, 201)
                return str(created["id"])

            conversations = await self._bounded([create_conversation(c) for c in range(layout.conversations)])
            community_ids: list[str] = []
            if layout.communities:
                if progress:
                    progress(f"creating {layout.communities} communities")

                async def create_community(n: int) -> str:
                    created = self._expect(await http.post("/communities", json={
                        "name": f"load {self.run_id} {n}"}, headers=auth(n)), "POST /communities", 201)
                    return str(created["id"])

                community_ids = await self._bounded([create_community(n) for n in range(layout.communities)])

                async def join(n: int) -> None:
                    self._expect(await http.post(f"/communities/{community_ids[layout.community_of(n)]}/join",
                                                 headers=auth(n)), "POST /communities/{id}/join", 200, 201)

                await self._bounded([join(n) for n in range(layout.communities, layout.members)])
        return Provisioned(layout, conversations, community_ids, "api")

    async def _cleanup_api(self, provisioned: Provisioned) -> int:
        service = {"Authorization": f"Bearer {self.mint(str(uuid.uuid4()), 'service_role')}"}
        async with self._client() as http:

            async def erase(user_id: str) -> bool:
                try:
                    r = await http.delete(f"/admin/users/{user_id}", headers=service)
                except httpx.HTTPError:
                    return False
                return r.status_code in (200, 204)

            done = await self._bounded([erase(u) for u in provisioned.user_ids()])
        return sum(done)

    # Directly in the database ---------------------------------------------------------------------

    def _need_db(self) -> str:
        if not self.database_url:
            raise UserError("this profile provisions directly in the database (provision.via: database): "
                            "set DATABASE_URL or pass --database-url")
        return self.database_url

    async def _via_database(self, layout: Layout, progress: Callable[[str], None] | None) -> Provisioned:
        url = self._need_db()
        if progress:
            progress(f"creating {layout.total} users and {layout.conversations} conversations in the database")
        conversations = [layout.conversation_id(c) for c in range(layout.conversations)]
        communities = layout.communities
        community_ids = [layout.community_id(k) for k in range(communities)]
        user_ids = [layout.user_id(n) for n in range(layout.total)]
        roles = [layout.role(n) for n in range(layout.total)]
        conv_rows: list[tuple[str, str, str | None, str | None]] = []
        member_rows: list[tuple[str, str, str]] = []
        for c, conv in enumerate(conversations):
            ids = [user_ids[n] for n in layout.members_of(c)]
            direct = len(ids) == 2
            key = f"{min(ids)}:{max(ids)}" if direct else None
            conv_rows.append((conv, "direct" if direct else "group", None if direct else f"load {self.run_id}", key))
            member_rows += [(conv, uid, "owner" if n == 0 else "member") for n, uid in enumerate(ids)]
        try:
            async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
                await conn.execute(_AS_SERVICE)
                await conn.execute(
                    "insert into public.profiles (id, email, display_name, role) "
                    "select * from unnest(%s::uuid[], %s::text[], %s::text[], %s::text[])",
                    (user_ids, [f"load-{u}@load.invalid" for u in user_ids],
                     [f"msgops load {self.run_id}"] * len(user_ids), roles))
                await conn.execute(
                    "insert into public.conversations (id, kind, title, direct_key, created_by) "
                    "select c.id, c.kind, c.title, c.key, m.user_id "
                    "from unnest(%s::uuid[], %s::text[], %s::text[], %s::text[]) as c(id, kind, title, key) "
                    "join unnest(%s::uuid[], %s::uuid[]) as m(conv, user_id) on m.conv = c.id",
                    ([r[0] for r in conv_rows], [r[1] for r in conv_rows], [r[2] for r in conv_rows],
                     [r[3] for r in conv_rows], conversations,
                     [user_ids[layout.members_of(c)[0]] for c in range(len(conversations))]))
                await conn.execute(
                    "insert into public.conversation_members (conversation_id, user_id, role) "
                    "select * from unnest(%s::uuid[], %s::uuid[], %s::text[])",
                    ([r[0] for r in member_rows], [r[1] for r in member_rows], [r[2] for r in member_rows]))
                if community_ids:
                    owners = user_ids[:communities]
                    await conn.execute(  # the add_community_owner trigger makes each creator its owner
                        "insert into public.communities (id, name, created_by) "
                        "select * from unnest(%s::uuid[], %s::text[], %s::uuid[])",
                        (community_ids, [f"load {self.run_id} {n}" for n in range(communities)], owners))
                    joins = [(community_ids[layout.community_of(n)], user_ids[n])
                             for n in range(communities, layout.members)]
                    await conn.execute(
                        "insert into public.community_members (community_id, user_id) "
                        "select * from unnest(%s::uuid[], %s::uuid[])",
                        ([j[0] for j in joins], [j[1] for j in joins]))
        except psycopg.Error as exc:
            raise UserError(f"provisioning in the database failed: {str(exc).strip().splitlines()[0]}", 2) from None
        return Provisioned(layout, conversations, community_ids, "database")

    async def _cleanup_database(self, provisioned: Provisioned) -> int:
        url = self._need_db()
        users = provisioned.user_ids()
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
