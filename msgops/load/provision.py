"""Provisioning: the users, tokens, conversations and communities a run needs, and their removal.

Through the API by default (what a real client does): users come to exist and get their roles the way
msgops.yaml `personas:` says (`create`, `grant_role`), conversations and communities are made with the
API map's operations (`create_direct`, `create_group`, `create_community`, `join_community`; the
reference's map by default), and after the run users are erased with `personas.delete` (on the
reference, DELETE /admin/users/{id}: memberships, messages, emptied conversations go too). A target that
offers no way to erase is said so in the run's output. Or directly in the reference's tables when the
profile says `provision.via: database` (thousands of users in a second or two; needs DATABASE_URL),
removed with the same deletes in SQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import psycopg

from msgops import apimap
from msgops.apimap import ApiMap
from msgops.errors import UserError
from msgops.load.identities import Identity, Layout, LoadSigner, new_seed
from msgops.load.operations import missing, prepare
from msgops.load.profile import Profile
from msgops.personas import model as personas_model
from msgops.personas.model import Action, SourceConfig

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
    api: ApiMap = field(default_factory=lambda: apimap.parse(None))  # the reference's by default
    people: SourceConfig = field(default_factory=lambda: personas_model.parse({"source": "hs256"}))
    leftovers: list[str] = field(default_factory=list)  # what cleanup could not remove, one line each

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
        self.check(profile)
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
    def _expect(r: httpx.Response, what: str, *ok: int) -> None:
        if r.status_code not in ok:
            hint = ""
            if r.status_code == 401:
                hint = " (the target does not accept our tokens: check MSGOPS_JWT_SECRET)"
            elif r.status_code == 429:
                hint = " (rate limited: provision fewer users per owner, or run the target with MSGOPS_RATE_LIMITS=off)"
            raise UserError(f"provisioning failed: {what} answered {r.status_code}{hint}: {r.text[:200]}", 2)

    async def _act(self, http: httpx.AsyncClient, what: str, action: Action | None, layout: Layout, n: int) -> None:
        """One personas action (create, grant_role, delete) for user n: a request as the user or as the
        service, or SQL on the configured database."""
        if action is None:
            return
        uid = layout.user_id(n)
        values = {"id": uid, "name": f"load-{n}", "email": f"load-{uid}@load.invalid", "role": layout.role(n)}
        if action.sql is not None:
            try:
                async with await psycopg.AsyncConnection.connect(self._need_db(), autocommit=True) as conn:
                    await conn.execute(action.sql.encode(), values)
            except psycopg.Error as exc:
                raise UserError(f"provisioning failed: personas.{what} SQL: "
                                f"{str(exc).strip().splitlines()[0][:200]}", 2) from None
            return
        token = self.mint(str(uuid.uuid4()), "service_role") if action.as_ == "service" else self.mint(uid)
        path = action.path
        for key, value in values.items():
            path = path.replace("{" + key + "}", quote(value, safe=""))
        body = _fill_persona(action.json_body, values) if action.json_body is not None else None
        r = await http.request(action.method, path, json=body, headers={"Authorization": f"Bearer {token}"})
        self._expect(r, f"personas.{what} ({action.method} {action.path})", *range(200, 300))

    async def _call(self, http: httpx.AsyncClient, name: str, token: str, /, **values: Any) -> dict[str, Any]:
        """Operation `name` of the API map as the holder of `token`; its answer's fields under msgops's names."""
        op = self.api.get(name)
        if op is None:
            raise missing(name, "provisioning")
        prepared = prepare(name, op, frozenset(k for k, v in values.items() if v is not None))
        r = await http.request(op.method, prepared.url(values), json=prepared.json(values),
                               headers={"Authorization": f"Bearer {token}"})
        if not prepared.accepted(r.status_code):
            self._expect(r, f"{name} ({op.method} {prepared.name})")
        try:
            data = r.json() if r.content else {}
        except ValueError:
            data = {}
        return apimap.read(op, data)

    def needed(self, profile: Profile) -> list[str]:
        """The operations provisioning this profile uses (checked before anything is made); a map without
        create_direct makes conversations of two with create_group."""
        if profile.provision.via == "database":
            return []
        ops = ["create_direct" if profile.provision.group_size == 2 else "create_group"]
        if profile.provision.communities:
            ops += ["create_community", "join_community"]
        return ops

    def check(self, profile: Profile) -> None:
        """UserError (exit 3) before anything is made when this target cannot be provisioned for `profile`."""
        if profile.provision.via == "database" and self.api.defaults == "none":
            raise UserError("provision.via: database writes the reference service's tables, and this target's API "
                            "map has defaults: none: use provision.via: api for this target")
        for name in self.needed(profile):
            if self.api.get(name) is None and not (name == "create_direct" and self.api.get("create_group")):
                raise missing(name, f"provisioning this profile ({profile.name})")

    async def _via_api(self, layout: Layout, progress: Callable[[str], None] | None) -> Provisioned:
        def token(n: int) -> str:
            return self.mint(layout.user_id(n))

        async with self._client() as http:
            if progress:
                progress(f"creating {layout.total} users through the API")

            async def create_user(n: int) -> None:
                await self._act(http, "create", self.people.create_action, layout, n)
                if layout.role(n) != self.people.base_role:
                    await self._act(http, "grant_role", self.people.grant_action, layout, n)

            await self._bounded([create_user(n) for n in range(layout.total)])
            if progress:
                progress(f"creating {layout.conversations} conversations")
            direct_ok = self.api.get("create_direct") is not None

            async def create_conversation(c: int) -> str:
                owner, *others = layout.members_of(c)
                ids = [layout.user_id(n) for n in others]
                if len(ids) == 1 and (direct_ok or self.api.get("create_group") is None):
                    created = await self._call(http, "create_direct", token(owner), user_id=ids[0])
                else:
                    created = await self._call(http, "create_group", token(owner), title=f"load {self.run_id}",
                                               member_ids=ids)
                return self._id(created, "create_direct" if len(ids) == 1 and direct_ok else "create_group")

            conversations = await self._bounded([create_conversation(c) for c in range(layout.conversations)])
            community_ids: list[str] = []
            if layout.communities:
                if progress:
                    progress(f"creating {layout.communities} communities")

                async def create_community(n: int) -> str:
                    created = await self._call(http, "create_community", token(n), name=f"load {self.run_id} {n}")
                    return self._id(created, "create_community")

                community_ids = await self._bounded([create_community(n) for n in range(layout.communities)])

                async def join(n: int) -> None:
                    await self._call(http, "join_community", token(n),
                                     community_id=community_ids[layout.community_of(n)])

                await self._bounded([join(n) for n in range(layout.communities, layout.members)])
        return Provisioned(layout, conversations, community_ids, "api")

    @staticmethod
    def _id(fields: dict[str, Any], name: str) -> str:
        value = fields.get("id")
        if value is None or value == "":
            raise UserError(f"provisioning failed: the answer to {name} has no id: map it with "
                            f"api.operations.{name}.response: {{id: <dotted path>}} in msgops.yaml", 2)
        return str(value)

    async def _cleanup_api(self, provisioned: Provisioned) -> int:
        action = self.people.delete_action
        total = provisioned.layout.total
        if action is None:
            self.leftovers.append(f"{total} load users (and their conversations) made for this run remain in the "
                                  "target: it offers no way to erase them to msgops (configure personas.delete)")
            return 0
        async with self._client() as http:

            async def erase(n: int) -> bool:
                try:
                    await self._act(http, "delete", action, provisioned.layout, n)
                except (UserError, httpx.HTTPError):
                    return False
                return True

            done = sum(await self._bounded([erase(n) for n in range(total)]))
        if done < total:
            self.leftovers.append(f"{total - done} of {total} load users could not be erased "
                                  f"({action.describe()})")
        return done

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


def _fill_persona(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, v in values.items():
            value = value.replace("{" + key + "}", v)
        return value
    if isinstance(value, dict):
        return {k: _fill_persona(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_persona(v, values) for v in value]
    return value
