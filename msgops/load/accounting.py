"""Lost and duplicated deliveries: what each socket should have received against what it did.

A socket is expected to receive a message when it had joined the message's conversation before
the send started and stayed open until `timeout` after the send completed. A (message, socket)
pair whose deadline falls after the run's end cannot be judged and is left out. Deliveries the
sender never learnt about (a send that timed out but was stored) are not expected and not lost.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Deliveries:
    messages: int      # accepted sends
    expected: int      # (message, socket) pairs that must arrive
    received: int      # deliveries of load messages, duplicates included
    lost: int          # expected pairs never received
    duplicates: int    # deliveries beyond the first of a (message, socket) pair
    unjudged: int      # pairs whose deadline fell after the end of the run

    @property
    def loss_rate(self) -> float | None:
        return self.lost / self.expected if self.expected else None


def count(sent: list[list[Any]], opened: list[list[Any]], closed: list[list[Any]], received: list[list[Any]],
          run_end: float, timeout: float) -> Deliveries:
    close_at = {sock: t for sock, t in closed}
    by_conversation: dict[int, list[tuple[str, float, float]]] = defaultdict(list)
    for sock, conversation, joined in opened:
        by_conversation[int(conversation)].append((sock, float(joined), close_at.get(sock, float("inf"))))
    got = Counter((str(key), str(sock)) for key, sock in received)
    expected = lost = unjudged = 0
    for key, conversation, t_start, t_done in sent:
        deadline = float(t_done) + timeout
        for sock, joined, closes in by_conversation.get(int(conversation), ()):
            if joined > float(t_start) or closes < deadline:
                continue  # not listening for the whole time this message was due
            if deadline > run_end and not got[(str(key), sock)]:
                unjudged += 1
                continue
            expected += 1
            if not got[(str(key), sock)]:
                lost += 1
    duplicates = sum(n - 1 for n in got.values() if n > 1)
    return Deliveries(messages=len(sent), expected=expected, received=sum(got.values()), lost=lost,
                      duplicates=duplicates, unjudged=unjudged)


def peak_open(opened: list[list[Any]], closed: list[list[Any]], run_end: float) -> tuple[int, dict[int, int]]:
    """Peak concurrently open sockets, and the number open at the end of each second."""
    changes: list[tuple[float, int]] = [(float(t), 1) for _, _, t in opened]
    changes += [(float(t), -1) for _, t in closed]
    changes.sort(key=lambda c: (c[0], c[1]))  # a close and an open at the same instant: close first
    level = peak = 0
    per_second: dict[int, int] = {}
    for t, delta in changes:
        if t > run_end:
            break
        level += delta
        peak = max(peak, level)
        per_second[int(t)] = level
    return peak, per_second
