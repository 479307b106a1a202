"""public.erase_user under concurrency: users who share a community and several conversations, erased all
at once on their own connections (as a clean-up erases test users), never deadlock, and everything they
held is erased."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable

import psycopg
import pytest

pytestmark = pytest.mark.timeout(120)

USERS = 10
ROUNDS = 4  # fresh users each round: a lock-order bug shows up in one round or another


def _arrange(url: str) -> tuple[list[uuid.UUID], list[uuid.UUID], uuid.UUID]:
    """Ten users in one community and four overlapping group conversations, each with messages, mentions
    (notifications with an actor), reactions and a moderator's deletion; the creator of every conversation
    has left it, and a member was removed from each after writing there."""
    users = [uuid.uuid4() for _ in range(USERS)]
    with psycopg.connect(url, autocommit=True) as conn:
        for n, uid in enumerate(users):
            conn.execute("insert into public.profiles (id, display_name, email) values (%s, %s, %s)",
                         (uid, f"u{n}x{uid.hex[:6]}", f"{uid.hex[:8]}@erase.test"))
        community = conn.execute("insert into public.communities (name, created_by) values ('erase', %s) "
                                 "returning id", (users[0],)).fetchone()[0]
        conn.execute("insert into public.community_members (community_id, user_id) "
                     "select %s, u from unnest(%s::uuid[]) u on conflict do nothing", (community, users))
        conversations: list[uuid.UUID] = []
        for k in range(4):
            members = [users[(k * 2 + i) % USERS] for i in range(5)]
            conv = conn.execute("insert into public.conversations (kind, title, created_by) values ('group', 't', %s) "
                                "returning id", (members[0],)).fetchone()[0]
            conversations.append(conv)
            conn.execute("insert into public.conversation_members (conversation_id, user_id) "
                         "select %s, u from unnest(%s::uuid[]) u", (conv, members))
            for i, sender in enumerate(members):
                mention = members[(i + 1) % len(members)]
                name = conn.execute("select display_name from public.profiles where id = %s", (mention,)).fetchone()[0]
                message = conn.execute("insert into public.messages (conversation_id, sender_id, content) "
                                       "values (%s, %s, %s) returning id", (conv, sender, f"hi @{name}")).fetchone()[0]
                conn.execute("insert into public.message_reactions (message_id, user_id, emoji) values (%s, %s, 'ok')",
                             (message, members[(i + 2) % len(members)]))
                conn.execute("insert into public.community_messages (community_id, sender_id, content) "
                             "values (%s, %s, 'hello')", (community, sender))
            conn.execute("update public.messages set is_deleted = true, content = null, deleted_by = %s "
                         "where conversation_id = %s and sender_id = %s", (members[1], conv, members[2]))
            # the creator left; a member who wrote here was removed
            conn.execute("delete from public.conversation_members where conversation_id = %s and user_id = any(%s)",
                         (conv, [members[0], members[3]]))
    return users, conversations, community


def _erase_all(url: str, users: list[uuid.UUID]) -> list[str]:
    """Erase every user at once, each on its own connection; the errors, one line each."""
    claims = json.dumps({"role": "service_role", "sub": str(uuid.uuid4())})
    start = threading.Barrier(len(users))
    errors: list[str] = []

    def erase(uid: uuid.UUID) -> None:
        with psycopg.connect(url) as conn:
            conn.execute("select set_config('role', 'service_role', true), "
                         "set_config('request.jwt.claims', %s, true)", (claims,))
            start.wait()
            try:
                conn.execute("select public.erase_user(%s)", (uid,))
                conn.commit()
            except psycopg.Error as exc:
                errors.append(f"{exc.sqlstate} {str(exc).splitlines()[0]}")

    threads = [threading.Thread(target=erase, args=(uid,)) for uid in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_users_sharing_a_community_and_conversations_erased_at_once_never_deadlock(
        new_database: Callable[..., str]) -> None:
    url = new_database()
    for _ in range(ROUNDS):
        users, conversations, community = _arrange(url)
        errors = _erase_all(url, users)
        assert not errors, errors  # 40P01 deadlock_detected before the lock order was fixed
        with psycopg.connect(url) as conn:
            left = conn.execute(
                "select (select count(*) from public.profiles where id = any(%(u)s)),"
                " (select count(*) from public.conversations where id = any(%(c)s)),"
                " (select count(*) from public.communities where id = %(m)s),"
                " (select count(*) from public.messages where sender_id = any(%(u)s) or content is not null"
                "    and conversation_id = any(%(c)s)),"
                " (select count(*) from public.community_messages where community_id = %(m)s),"
                " (select count(*) from public.notifications where user_id = any(%(u)s) or actor_id = any(%(u)s)),"
                " (select count(*) from public.message_reactions where user_id = any(%(u)s))",
                {"u": users, "c": conversations, "m": community}).fetchone()
        assert left == (0, 0, 0, 0, 0, 0, 0), left
