"""Load users derived from a seed: every process computes the same users and tokens, each acts as its
own share of them, and the plan stays the same size however many users a run has."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from msgops.errors import UserError
from msgops.load.identities import Layout, LoadSigner, send_stride, signing_source
from msgops.load.plan import Plan
from msgops.tokens import Minting

SECRET = "a-test-secret-of-at-least-32-bytes!!"


def _plan(users: int, seed: str = "s33d", organizers: int = 3) -> Plan:
    signer = LoadSigner(Minting(), SECRET, ttl_s=600, label="msgops load t")
    return Plan(run_id="t", api_url="http://127.0.0.1:1", out_dir="/tmp", generators=2,
                layout=Layout(seed, users, organizers, group_size=10, communities=4), signing=signer.plan_entry())


def _worker(plan: Plan, key: str) -> tuple[Layout, LoadSigner]:
    """What a Locust process rebuilds from the plan as it travels (JSON) and the key it holds."""
    copy = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    return copy.layout, LoadSigner.from_plan(copy.signing, key)


def test_two_processes_derive_the_same_users_and_tokens_from_the_seed() -> None:
    plan = _plan(1000)
    (one, sign_one), (two, sign_two) = _worker(plan, SECRET), _worker(plan, SECRET)
    for n in (0, 1, 517, 999, 1000, 1002):
        assert one.identity(n) == two.identity(n)
        assert sign_one.token(one.user_id(n)) == sign_two.token(two.user_id(n))
    ids = {one.user_id(n) for n in range(one.total)}
    assert len(ids) == one.total  # distinct
    assert ids.isdisjoint(_plan(1000, seed="other").layout.user_id(n) for n in range(1003))
    claims = jwt.decode(sign_one.token(one.user_id(7)), SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == one.user_id(7) and claims["exp"] - claims["iat"] == 600


def test_private_key_tokens_are_minted_alike_on_every_process() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    config, found = signing_source({"source": "private_key", "key_env": "IDP_KEY", "kid": "k1"}, {"IDP_KEY": pem}, None)
    signer = LoadSigner(config, found, ttl_s=300, label="msgops load t")
    twin = LoadSigner.from_plan(json.loads(json.dumps(signer.plan_entry())), found)
    token = signer.token("user-1")
    assert token == twin.token("user-1")
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    assert jwt.decode(token, key.public_key(), algorithms=["RS256"], audience="authenticated")["sub"] == "user-1"


@pytest.mark.parametrize("generators", [1, 2, 3, 5])
def test_each_process_acts_as_its_own_share_of_the_users(generators: int) -> None:
    layout = Layout("s", members=103, organizers=7, group_size=10, communities=3)
    shares = [layout.partition(k, generators) for k in range(generators)]
    members = [set(layout.senders(k, generators)) for k in range(generators)]
    for a in range(generators):
        for b in range(a + 1, generators):
            assert members[a].isdisjoint(members[b])
            assert set(shares[a]).isdisjoint(shares[b])
    assert set().union(*shares) == set(range(layout.total))
    assert sum(len(s) for s in shares) == layout.total
    # Fewer organizers than processes: every process shares them all (and only those are shipped twice).
    few = Layout("s", members=20, organizers=1, group_size=2)
    assert all(few.organizer_share(k, 3) == range(20, 21) for k in range(3))


def test_the_layout_groups_users_as_provisioning_does() -> None:
    layout = Layout("s", members=7, organizers=2, group_size=3, communities=2)
    # 7 users in groups of 3: the last group of one joins the one before it.
    assert layout.conversations == 2
    assert [layout.conversation_of(n) for n in range(9)] == [0, 0, 0, 1, 1, 1, 1, -1, -1]
    assert [list(layout.members_of(c)) for c in range(2)] == [[0, 1, 2], [3, 4, 5, 6]]
    assert [layout.community_of(n) for n in range(9)] == [0, 1, 0, 1, 0, 1, 0, -1, -1]
    assert [layout.role(n) for n in (6, 7)] == ["attendee", "organizer"]


def test_the_plan_does_not_grow_with_the_number_of_users() -> None:
    small, large = (len(json.dumps(_plan(users).to_dict())) for users in (100, 1_000_000))
    assert small < 2000 and large - small < 20, (small, large)
    plan = _plan(1_000_000)
    assert plan.conversation_id(99_999) == plan.layout.conversation_id(99_999)  # derived, not listed


def test_a_target_whose_tokens_msgops_cannot_sign_is_refused_with_the_fix() -> None:
    with pytest.raises(UserError, match="MSGOPS_JWT_SECRET"):
        signing_source(None, {}, None)
    with pytest.raises(UserError, match="hs256 or private_key"):
        signing_source({"source": "token_command", "command": "print-token"}, {}, None)
    with pytest.raises(UserError, match="IDP_KEY"):
        signing_source({"source": "private_key", "key_env": "IDP_KEY"}, {}, None)
    assert signing_source({"source": "hs256", "secret_env": "MY_SECRET"}, {"MY_SECRET": "x" * 32}, None)[1] == "x" * 32


@pytest.mark.parametrize(("members", "group_size", "generators"),
                         [(400, 2, 1), (1000, 10, 1), (1000, 10, 2), (37, 3, 2), (12, 5, 1)])
def test_open_model_sends_take_turns_across_conversations(members: int, group_size: int, generators: int) -> None:
    """In plain order a conversation's members sent one after the other, milliseconds apart, each
    waiting for the room's seq the one before held: the stride keeps consecutive sends in different
    conversations, and still gives every user exactly one send per round."""
    layout = Layout("s33d", members, group_size=group_size)
    for index in range(generators):
        share = layout.senders(index, generators)
        n = len(share)
        picks = [share[k * send_stride(n) % n] for k in range(2 * n)]
        assert sorted(picks[:n]) == list(share) and picks[n:] == picks[:n]
        rooms = [layout.conversation_of(u) for u in picks]
        assert [k for k in range(len(rooms) - 1) if rooms[k] == rooms[k + 1]] == []
        plain = [layout.conversation_of(u) for u in share]
        assert any(plain[k] == plain[k + 1] for k in range(n - 1))  # what the stride avoids
