"""Lost, duplicated and out-of-order deliveries, counted from ranges of sequence numbers.

Every generator process numbers its sends per conversation (a *stream*: process tag and
conversation; message key `<tag>.<conversation>.<seq>`). Workers never ship single messages:

- `Senders` (where messages are sent) keeps per stream the accepted sequence numbers as ranges,
  the highest number started (`started`) and the highest below which every send has finished
  (`done`), and when the stream's first send started;
- `Sockets` (where they are received) keeps per socket its conversation, join and close times, and
  per stream the received numbers as ranges, with counts of deliveries, duplicates and deliveries
  that arrived after a later-numbered one (out of order);
- `Ledger` (the master, or the local runner) merges what each process sends once a second and
  decides, per socket and stream, which numbers the socket had to receive.

So a report is O(active streams + sockets with news), and the master's state O(streams + sockets),
whatever the number of messages.

A socket must receive a message when it had joined the conversation before the send started and
stayed open until `timeout` after the send completed (a pair due after the run's end is not
judged, unless it arrived). Join and close times are matched to sequence numbers through the
sender's once-a-second reports, conservatively: a stream whose first send started after the join
is expected whole (the usual case: sockets join before the send window); otherwise the socket
expects what its sender started after its first report at or after the join; a socket closed
early expects what its senders had finished `timeout` before the close. Sends that fall between a
report and the event they are matched to are not judged either way.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from msgops.load.seqset import SeqSet

TAIL_MARGIN_S = 10.0     # senders keep their last (timeout + this) seconds of sends for the end of the run
HISTORY_MARGIN_S = 30.0  # the master keeps `done` marks this long past the timeout, to place closes


def message_key(tag: str, conversation: int, seq: int) -> str:
    return f"{tag}.{conversation}.{seq}"


def parse_key(key: str) -> tuple[str, int, int] | None:
    """(process tag, conversation, seq) of a message key; None for a key not made by message_key."""
    parts = key.rsplit(".", 2)
    if len(parts) != 3:
        return None
    try:
        return parts[0], int(parts[1]), int(parts[2])
    except ValueError:
        return None


# Where messages are sent -------------------------------------------------------------------------


@dataclass
class _Outgoing:
    next_seq: int = 0
    inflight: set[int] = field(default_factory=set)
    accepted: SeqSet = field(default_factory=SeqSet)  # since the last report
    first_start: float | None = None
    done: int = -1
    changed: bool = False


class Senders:
    """One process's sends, per conversation."""

    def __init__(self) -> None:
        self._streams: dict[int, _Outgoing] = {}
        self._tail: deque[tuple[float, int, int]] = deque()  # (t_done, conversation, seq) of accepted sends
        self.accepted = 0

    def start(self, conversation: int, t: float) -> int:
        """A send begins: its sequence number in the conversation."""
        s = self._streams.get(conversation)
        if s is None:
            s = self._streams[conversation] = _Outgoing(first_start=t)
        seq = s.next_seq
        s.next_seq += 1
        s.inflight.add(seq)
        s.changed = True
        return seq

    def finish(self, conversation: int, seq: int, accepted: bool, t_done: float, keep_s: float) -> None:
        """A send ended: accepted (stored by the target) or not (failed, timed out, abandoned)."""
        s = self._streams[conversation]
        s.inflight.discard(seq)
        s.done = (min(s.inflight) if s.inflight else s.next_seq) - 1
        s.changed = True
        if accepted:
            s.accepted.add(seq)
            self.accepted += 1
            self._tail.append((t_done, conversation, seq))
            while self._tail and self._tail[0][0] < t_done - keep_s:
                self._tail.popleft()

    def take_report(self, final: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for conversation, s in self._streams.items():
            if not s.changed:
                continue
            out[str(conversation)] = {"accepted": s.accepted.ranges(), "started": s.next_seq - 1, "done": s.done,
                                      "first_start": s.first_start}
            s.accepted, s.changed = SeqSet(), False
        report: dict[str, Any] = {"streams": out}
        if final:
            report["tail"] = [[c, seq, round(t, 6)] for t, c, seq in self._tail]
        return report


# Where messages are received ---------------------------------------------------------------------


@dataclass
class _Incoming:
    conversation: int
    joined: float
    closed: float | None = None
    got: dict[str, SeqSet] = field(default_factory=dict)   # stream -> every number received
    new: dict[str, SeqSet] = field(default_factory=dict)   # stream -> numbers since the last report
    top: dict[str, int] = field(default_factory=dict)      # stream -> highest number received
    deliveries: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    reported: bool = False
    changed: bool = True


class Sockets:
    """One process's listening sockets and what each received."""

    def __init__(self) -> None:
        self._sockets: dict[str, _Incoming] = {}
        self.level = 0                                # sockets open in this process
        self._levels: dict[int, list[int]] = {}       # epoch second -> [opens, closes, level at start, most]

    def _change(self, t: float, delta: int) -> None:
        row = self._levels.get(int(t))
        if row is None:
            row = self._levels[int(t)] = [0, 0, self.level, self.level]
        row[0 if delta > 0 else 1] += 1
        self.level += delta
        row[3] = max(row[3], self.level)

    def opened(self, sock: str, conversation: int, t: float) -> None:
        self._sockets[sock] = _Incoming(conversation, t)
        self._change(t, 1)

    def closed(self, sock: str, t: float) -> None:
        s = self._sockets.get(sock)
        if s is not None and s.closed is None:
            s.closed, s.changed = t, True
            self._change(t, -1)

    def received(self, sock: str, key: str) -> None:
        s = self._sockets.get(sock)
        parsed = parse_key(key)
        if s is None or parsed is None:
            return
        tag, conversation, seq = parsed
        stream = f"{tag}:{conversation}"
        s.deliveries += 1
        s.changed = True
        got = s.got.get(stream)
        if got is None:
            got = s.got[stream] = SeqSet()
        if not got.add(seq):
            s.duplicates += 1
            return
        new = s.new.get(stream)
        if new is None:
            new = s.new[stream] = SeqSet()
        new.add(seq)
        if seq < s.top.get(stream, -1):
            s.out_of_order += 1
        else:
            s.top[stream] = seq

    def take_levels(self) -> dict[str, list[int]]:
        """Per second since the last report: opens, closes, and how far the count rose above its start."""
        out = {str(sec): [o, c, most - start] for sec, (o, c, start, most) in self._levels.items()}
        self._levels = {}
        return out

    def take_report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, s in self._sockets.items():
            if not s.changed:
                continue
            row: dict[str, Any] = {"n": s.deliveries, "dup": s.duplicates, "ooo": s.out_of_order,
                                   "got": {k: v.ranges() for k, v in s.new.items()}}
            if not s.reported:
                row.update(conversation=s.conversation, joined=s.joined)
            if s.closed is not None:
                row["closed"] = s.closed
            out[key] = row
            s.deliveries = s.duplicates = s.out_of_order = 0
            s.new, s.reported, s.changed = {}, True, False
        return out


# The master ----------------------------------------------------------------------------------------


@dataclass
class _Stream:
    accepted: SeqSet = field(default_factory=SeqSet)
    first_start: float = math.inf
    started: int = -1
    done: deque[tuple[float, int]] = field(default_factory=deque)  # (report time, done) while recent
    done_floor: tuple[float, int] = (-math.inf, -1)
    tail: list[tuple[int, float]] = field(default_factory=list)    # (seq, t_done): the final reports'


@dataclass
class _Socket:
    conversation: int
    joined: float
    closed: float | None = None
    got: dict[str, SeqSet] = field(default_factory=dict)
    since: dict[str, int] = field(default_factory=dict)  # sender tag -> first number it had to receive
    until: dict[str, int] = field(default_factory=dict)  # sender tag -> last (closed sockets)


@dataclass(frozen=True)
class Deliveries:
    messages: int      # accepted sends
    expected: int      # (message, socket) pairs that must arrive
    received: int      # deliveries of load messages, duplicates included
    lost: int          # expected pairs never received
    duplicates: int    # deliveries beyond the first of a (message, socket) pair
    unjudged: int      # pairs whose deadline fell after the end of the run
    out_of_order: int = 0  # deliveries after a later-started message of the same sender and conversation

    @property
    def loss_rate(self) -> float | None:
        return self.lost / self.expected if self.expected else None


class Ledger:
    """The whole run's deliveries and sockets, merged from every process's reports."""

    def __init__(self, timeout: float = 3.0) -> None:
        self.timeout = timeout
        self._streams: dict[str, dict[int, _Stream]] = {}   # tag -> conversation -> stream
        self._sockets: dict[str, _Socket] = {}
        self._last_report: dict[str, float] = {}             # tag -> time of its latest report
        self._pending: dict[str, list[str]] = {}             # tag -> sockets not yet placed in its streams
        self.deliveries = self.duplicates = self.out_of_order = 0
        self.opened = self.closed = 0
        # epoch second -> per reporting process [opens, closes, most open above the second's start]
        self.levels: dict[int, list[list[int]]] = {}

    @property
    def accepted(self) -> int:
        return sum(len(s.accepted) for streams in self._streams.values() for s in streams.values())

    def merge(self, tag: str, t: float, senders: dict[str, Any], sockets: dict[str, Any],
              levels: dict[str, list[int]]) -> None:
        streams = self._streams.setdefault(tag, {})
        history_s = self.timeout + HISTORY_MARGIN_S
        for conversation, row in senders.get("streams", {}).items():
            s = streams.get(int(conversation))
            if s is None:
                s = streams[int(conversation)] = _Stream()
            s.accepted.update(row["accepted"])
            s.started = max(s.started, int(row["started"]))
            if row.get("first_start") is not None:
                s.first_start = min(s.first_start, float(row["first_start"]))
            if not s.done or s.done[-1][1] != int(row["done"]):
                s.done.append((t, int(row["done"])))
            while len(s.done) > 1 and s.done[0][0] < t - history_s:
                s.done_floor = s.done.popleft()
        for conversation, seq, t_done in senders.get("tail", []):
            s = streams.get(int(conversation))
            if s is None:
                s = streams[int(conversation)] = _Stream()
            s.tail.append((int(seq), float(t_done)))
        first_report = tag not in self._last_report
        self._last_report[tag] = max(t, self._last_report.get(tag, -math.inf))
        if first_report:
            self._pending[tag] = [k for k in self._sockets if not self._place_join(k, tag)]
        for key, row in sockets.items():
            self._merge_socket(key, row)
        still = []
        for key in self._pending.get(tag, []):
            if not self._place_join(key, tag):
                still.append(key)
        self._pending[tag] = still
        for sec, (opens, closes, peak) in levels.items():
            self.levels.setdefault(int(sec), []).append([int(opens), int(closes), int(peak)])

    def _merge_socket(self, key: str, row: dict[str, Any]) -> None:
        s = self._sockets.get(key)
        if s is None:
            if "joined" not in row:
                return  # a report about a socket whose opening was never reported
            s = self._sockets[key] = _Socket(int(row["conversation"]), float(row["joined"]))
            self.opened += 1
            for tag in self._last_report:
                if not self._place_join(key, tag):
                    self._pending.setdefault(tag, []).append(key)
        for stream, ranges in row.get("got", {}).items():
            got = s.got.get(stream)
            if got is None:
                got = s.got[stream] = SeqSet()
            got.update(ranges)
        self.deliveries += int(row.get("n", 0))
        self.duplicates += int(row.get("dup", 0))
        self.out_of_order += int(row.get("ooo", 0))
        if row.get("closed") is not None and s.closed is None:
            s.closed = float(row["closed"])
            self.closed += 1
            for tag, streams in self._streams.items():
                stream = streams.get(s.conversation)
                if stream is not None:
                    s.until[tag] = self._done_before(stream, s.closed - self.timeout)

    def _place_join(self, key: str, tag: str) -> bool:
        """Fix the first number of `tag`'s stream that socket `key` had to receive; False: not yet known."""
        s = self._sockets[key]
        if tag in s.since:
            return True
        stream = self._streams.get(tag, {}).get(s.conversation)
        if stream is not None and stream.first_start >= s.joined:
            s.since[tag] = 0  # the stream began after the join: all of it
        elif self._last_report.get(tag, -math.inf) >= s.joined:
            s.since[tag] = stream.started + 1 if stream is not None else 0
        else:
            return False
        return True

    @staticmethod
    def _done_before(stream: _Stream, t: float) -> int:
        done = stream.done_floor[1] if stream.done_floor[0] <= t else -1
        for at, mark in stream.done:
            if at > t:
                break
            done = mark
        return done

    def result(self, run_end: float) -> Deliveries:
        expected = lost = unjudged = 0
        for key, s in self._sockets.items():
            if s.joined > run_end:
                continue
            for tag, streams in self._streams.items():
                stream = streams.get(s.conversation)
                if stream is None:
                    continue
                if tag not in s.since:
                    self._place_join(key, tag) or s.since.setdefault(tag, stream.started + 1)
                first = s.since[tag]
                got = s.got.get(f"{tag}:{s.conversation}", SeqSet())
                if s.closed is not None:
                    last = s.until.get(tag, -1)
                    due = stream.accepted.count_between(first, last)
                    expected += due
                    lost += due - stream.accepted.common_between(got, first, last)
                    continue
                due = stream.accepted.count_between(first)
                late = sum(1 for seq, t_done in stream.tail
                           if seq >= first and t_done + self.timeout > run_end and seq not in got)
                expected += due - late
                unjudged += late
                lost += due - late - stream.accepted.common_between(got, first)
        return Deliveries(messages=self.accepted, expected=expected, received=self.deliveries, lost=lost,
                          duplicates=self.duplicates, unjudged=unjudged, out_of_order=self.out_of_order)

    def open_sockets(self, run_end: float) -> tuple[int, dict[int, int]]:
        """Peak concurrently open sockets, and the number open at the end of each second.

        Each process reports per second its opens, closes and how far above the second's start its
        own count rose; the peak within a second is the most one process's rise guarantees with every
        other process's closes counted first (exact when one process's sockets changed that second)."""
        level = peak = 0
        per_second: dict[int, int] = {}
        for sec in sorted(self.levels):
            if sec > run_end:
                break
            rows = self.levels[sec]
            closes = sum(r[1] for r in rows)
            rise = max(r[2] - (closes - r[1]) for r in rows)
            peak = max(peak, level + rise)
            level += sum(r[0] - r[1] for r in rows)
            peak = max(peak, level)
            per_second[sec] = level
        return peak, per_second

    def summary(self, run_end: float) -> dict[str, Any]:
        """The run's deliveries and sockets, as final.json carries them."""
        peak, per_second = self.open_sockets(run_end)
        return {"deliveries": self.result(run_end).__dict__, "opened": self.opened, "closed": self.closed,
                "peak_open": peak, "open_by_second": {str(k): v for k, v in per_second.items()}}

