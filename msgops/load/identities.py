"""The run's users, derived from a seed: every process computes the same ids, conversations and tokens.

User n (0-based) has the id made from the seed and n; the first `members` users talk in
conversations of `group_size` consecutive users (a last group of one joins the group before it)
and are spread over the communities in turn; the `organizers` after them belong to no
conversation. Conversation and community ids come from the seed too when msgops chose them
(provisioning in the database); the API chooses its own, and then the plan lists them.

Each generator process acts as its own share of the users (`partition`): user n belongs to
process n mod G. A process that can sign tokens (`LoadSigner`: the personas source hs256 or
private_key, its key in MSGOPS_LOAD_SIGNING_KEY) mints them for the users it acts as; one that
cannot (a worker on a machine without the key) receives only its share's tokens from the master.
So the plan is the same small document whatever the number of users.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from msgops.errors import UserError
from msgops.tokens import Minting

KEY_ENV = "MSGOPS_LOAD_SIGNING_KEY"  # the signing key, for the Locust processes on this machine


def new_seed() -> str:
    return secrets.token_hex(16)


@lru_cache(maxsize=1 << 16)  # a send names its conversation by id: one digest per conversation, not per request
def seeded_uuid(seed: str, kind: str, n: int) -> str:
    digest = hashlib.sha256(f"msgops-load:{seed}:{kind}:{n}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


@dataclass
class Identity:
    id: str
    token: str
    role: str = "attendee"
    conversation: int = -1      # index of the user's conversation; -1: none (organizers)
    community: int = -1         # index of the user's community; -1: none


@dataclass(frozen=True)
class Layout:
    seed: str
    members: int            # users 0 .. members-1, in conversations
    organizers: int = 0     # users members .. members+organizers-1
    group_size: int = 2
    communities: int = 0

    @property
    def total(self) -> int:
        return self.members + self.organizers

    @property
    def conversations(self) -> int:
        groups = math.ceil(self.members / self.group_size)
        if groups > 1 and self.members - (groups - 1) * self.group_size < 2:
            groups -= 1  # a group of one cannot talk: it joins the one before
        return groups

    def user_id(self, n: int) -> str:
        return seeded_uuid(self.seed, "user", n)

    def conversation_id(self, c: int) -> str:
        return seeded_uuid(self.seed, "conversation", c)

    def community_id(self, k: int) -> str:
        return seeded_uuid(self.seed, "community", k)

    def role(self, n: int) -> str:
        return "attendee" if n < self.members else "organizer"

    def conversation_of(self, n: int) -> int:
        return min(n // self.group_size, self.conversations - 1) if n < self.members else -1

    def community_of(self, n: int) -> int:
        return n % self.communities if self.communities and n < self.members else -1

    def members_of(self, c: int) -> range:
        start = c * self.group_size
        return range(start, self.members if c == self.conversations - 1 else start + self.group_size)

    def identity(self, n: int, token: str = "") -> Identity:
        return Identity(self.user_id(n), token, self.role(n), self.conversation_of(n), self.community_of(n))

    # Who acts as whom ----------------------------------------------------------------------------

    @staticmethod
    def _share(start: int, stop: int, index: int, generators: int) -> range:
        if stop - start < generators:  # fewer users than processes: every process shares all of them
            return range(start, stop)
        return range(start + index, stop, generators)

    def senders(self, index: int = 0, generators: int = 1) -> range:
        """The members process `index` of `generators` acts as."""
        return self._share(0, self.members, index, max(1, generators))

    def organizer_share(self, index: int = 0, generators: int = 1) -> range:
        return self._share(self.members, self.total, index, max(1, generators))

    def partition(self, index: int, generators: int) -> list[int]:
        """Every user process `index` may act as."""
        return [*self.senders(index, generators), *self.organizer_share(index, generators)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def send_stride(n: int) -> int:
    """The step an open-model stream takes through its n users: send k goes to user (k * stride) % n.

    The users of one conversation are numbered together, so taken in plain order a conversation of
    g members got g sends in a row, a few milliseconds apart, each waiting for the one before to
    commit its room's seq: bursts the workload would not have. A step of about 0.618 n (coprime to
    n, so every user still sends exactly once per n sends, keeping each under a per-user rate
    limit) puts consecutive sends, and any few in a row, far apart in the numbering."""
    if n < 3:
        return 1
    stride = round(n * 0.6180339887)
    while math.gcd(stride, n) != 1:
        stride += 1
    return stride


# Tokens ------------------------------------------------------------------------------------------------


class LoadSigner:
    """Mints the load users' tokens as the target's signing personas source (hs256 or private_key) does."""

    def __init__(self, minting: Minting, key: str, ttl_s: int, label: str, issued_at: int | None = None) -> None:
        self.minting, self.ttl_s, self.label = minting, ttl_s, label
        self._key = minting.prepare(key)
        # One issue time for the run: every process mints the same token for the same user.
        self.issued_at = int(time.time()) if issued_at is None else issued_at

    def token(self, sub: str, role: str = "authenticated") -> str:
        claims: dict[str, Any] = {"iat": self.issued_at, "exp": self.issued_at + self.ttl_s}
        if role == "authenticated":
            claims.update(email=f"load-{sub}@load.invalid", name=self.label)
        return self.minting.mint(self._key, sub, role, self.ttl_s, claims)

    def plan_entry(self) -> dict[str, Any]:
        """What a process needs, besides the key, to sign as this signer does."""
        return {"minting": self.minting.to_dict(), "ttl_s": self.ttl_s, "label": self.label,
                "issued_at": self.issued_at}

    @classmethod
    def from_plan(cls, entry: dict[str, Any], key: str) -> LoadSigner:
        return cls(Minting.from_dict(entry["minting"]), key, int(entry["ttl_s"]), str(entry["label"]),
                   int(entry["issued_at"]))


def signing_source(personas: Mapping[str, Any] | None, env: Mapping[str, str],
                   jwt_secret: str | None) -> tuple[Minting, str]:
    """How to mint load users (the target's personas source, checked: its key set and parsing) and the
    key; UserError when the target has no source msgops can sign with."""
    from msgops.personas import model

    if personas is None:
        if not jwt_secret:
            raise UserError("no way to mint load users: set MSGOPS_JWT_SECRET (the target's HS256 secret) or "
                            "configure personas: source hs256 or private_key in msgops.yaml")
        return Minting(), jwt_secret
    parsed = model.parse(personas)
    if isinstance(parsed, model.HS256Source):
        key = env.get(parsed.secret_env) or jwt_secret
        if not key:
            raise UserError(f"no way to mint load users: set {parsed.secret_env} to the target's HS256 secret")
    elif isinstance(parsed, model.PrivateKeySource):
        key = env.get(parsed.key_env, "").strip()
        if not key:
            raise UserError(f"no way to mint load users: set {parsed.key_env} to the PEM private key of the "
                            "target's identity provider")
        from msgops.personas import tokens as persona_tokens

        persona_tokens.private_key(parsed, {parsed.key_env: key})  # a key that does not parse fails here
    else:
        raise UserError(f"load users need tokens msgops can sign; personas source {parsed.source} cannot: "
                        "use source hs256 or private_key for load runs")
    return parsed.minting(), key
