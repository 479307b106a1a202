"""What the notification trigger costs the send transaction, beside the same sends without it.

    python bench/notification_trigger.py [--sends 1000] [--members 10] [--rounds 3]

On an embedded PostgreSQL: one group and one community of `members` people each, every member
following the room (the costliest case: each send writes a notification per member) or on the defaults
(mentions only: nothing written for a plain message). Each case runs the send transaction of the API
(set_config + send_room_message + COMMIT) `sends` times on one connection, with the room's notification
trigger (`messages_record_notifications`, `community_messages_record_notifications`) enabled, then
disabled (the baseline), and prints sends/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msgops.embedded import EmbeddedPostgres  # noqa: E402
from service.migrate import migrate  # noqa: E402

SEND = ("select id from public.send_room_message(%s, %s, %s, %s, null, "
        "array[]::text[], array[]::integer[], array[]::integer[])")
# kind of room -> its message table and notification trigger, its settings table and room column
ROOMS = {"conversation": ("messages", "messages_record_notifications", "conversation_notification_settings",
                          "conversation_id"),
         "community": ("community_messages", "community_messages_record_notifications",
                       "community_notification_settings", "community_id")}


def setup(conn: psycopg.Connection, members: int) -> tuple[dict[str, uuid.UUID], list[uuid.UUID], list[str]]:
    people = [uuid.uuid4() for _ in range(members)]
    names = [f"member{i}" for i in range(members)]
    for uid, name in zip(people, names, strict=True):
        conn.execute("insert into public.profiles (id, display_name) values (%s, %s)", (uid, name))
    conv = conn.execute("insert into public.conversations (kind, title, created_by) values ('group', 'bench', %s) "
                        "returning id", (people[0],)).fetchone()[0]  # type: ignore[index]
    for uid in people:
        conn.execute("insert into public.conversation_members (conversation_id, user_id) values (%s, %s)",
                     (conv, uid))
    community = conn.execute("insert into public.communities (name, created_by) values ('bench', %s) returning id",
                             (people[0],)).fetchone()[0]  # type: ignore[index]
    for uid in people[1:]:  # the creator is its owner already
        conn.execute("insert into public.community_members (community_id, user_id) values (%s, %s)",
                     (community, uid))
    conn.commit()
    return {"conversation": conv, "community": community}, people, names


def run(conn: psycopg.Connection, kind: str, room: uuid.UUID, sender: uuid.UUID, sends: int, content: str) -> float:
    claims = json.dumps({"sub": str(sender), "role": "authenticated"})
    t0 = time.perf_counter()
    for _ in range(sends):
        with conn.transaction():
            conn.execute("select set_config('role', 'authenticated', true), "
                         "set_config('request.jwt.claims', %s, true)", (claims,))
            conn.execute(SEND, (kind, room, content, uuid.uuid4().hex)).fetchone()
    return sends / (time.perf_counter() - t0)


def main(sends: int, members: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="msgops-trigger-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp), settings={"fsync": "off", "synchronous_commit": "off"})
        url = server.start()
        try:
            migrate(url)
            with psycopg.connect(url, autocommit=True) as conn:
                rooms, people, names = setup(conn, members)
                cases = [("plain message, rooms on defaults", "hello everyone", False),
                         ("message with one @mention", f"hello @{names[1]}", False),
                         ("plain message, everyone follows the room", "hello everyone", True)]
                print(f"{sends} sends per run, {rounds} runs each way (median), rooms of {members}, one connection")
                for kind, room in rooms.items():
                    table, trigger, settings, column = ROOMS[kind]
                    for label, content, follow in cases:
                        conn.execute(f"delete from public.{settings}")
                        if follow:
                            for uid in people:
                                conn.execute(f"insert into public.{settings} (user_id, {column}, level) "
                                             "values (%s, %s, 'all')", (uid, room))
                        run(conn, kind, room, people[0], 200, content)  # warm up
                        on: list[float] = []
                        off: list[float] = []
                        for r in range(rounds):  # alternate which goes first: the table grows as it runs
                            for enabled in ((True, False) if r % 2 == 0 else (False, True)):
                                state = "enable" if enabled else "disable"
                                conn.execute(f"alter table public.{table} {state} trigger {trigger}")
                                (on if enabled else off).append(run(conn, kind, room, people[0], sends, content))
                        conn.execute(f"alter table public.{table} enable trigger {trigger}")
                        with_trigger, without = statistics.median(on), statistics.median(off)
                        print(f"{kind:>12} {label:>41}: {with_trigger:7.0f} sends/s with the trigger, "
                              f"{without:7.0f} without ({(1 - with_trigger / without) * 100:+.0f}% cost)")
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sends", type=int, default=1000)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    main(args.sends, args.members, args.rounds)
