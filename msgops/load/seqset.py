"""A set of sequence numbers kept as sorted, disjoint, inclusive ranges.

Deliveries are counted by sequence number: a sender numbers its messages 0, 1, 2 ... per
conversation and a socket that misses nothing holds one range however many it received. Adding
the next number in order, the common case, is O(1); anything else is a binary search.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

INF = 1 << 62


class SeqSet:
    __slots__ = ("_count", "_hi", "_lo")

    def __init__(self, ranges: Iterable[Iterable[int]] = ()) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []
        self._count = 0
        for lo, hi in ranges:
            self.add_range(int(lo), int(hi))

    def __len__(self) -> int:
        return self._count

    def __contains__(self, n: int) -> bool:
        i = bisect_right(self._lo, n) - 1
        return i >= 0 and self._hi[i] >= n

    def ranges(self) -> list[list[int]]:
        return [[lo, hi] for lo, hi in zip(self._lo, self._hi, strict=True)]

    def add(self, n: int) -> bool:
        """Add one number; False if it was already there."""
        if self._hi and n == self._hi[-1] + 1:  # the next in order, after the last range
            self._hi[-1] = n
            self._count += 1
            return True
        if n in self:
            return False
        self.add_range(n, n)
        return True

    def add_range(self, lo: int, hi: int) -> None:
        if hi < lo:
            return
        i = bisect_right(self._lo, lo) - 1
        if i >= 0 and self._hi[i] >= lo - 1:  # touches the range before: extend it
            if self._hi[i] >= hi:
                return
            self._count += hi - self._hi[i]
            self._hi[i] = hi
        else:
            i += 1
            self._lo.insert(i, lo)
            self._hi.insert(i, hi)
            self._count += hi - lo + 1
        self._merge_from(i)

    def _merge_from(self, i: int) -> None:
        """Fold the ranges after i that range i now reaches into it."""
        while i + 1 < len(self._lo) and self._lo[i + 1] <= self._hi[i] + 1:
            overlap = min(self._hi[i], self._hi[i + 1]) - self._lo[i + 1] + 1
            self._count -= overlap
            self._hi[i] = max(self._hi[i], self._hi[i + 1])
            del self._lo[i + 1], self._hi[i + 1]

    def update(self, other: SeqSet | Iterable[Iterable[int]]) -> None:
        for lo, hi in (other.ranges() if isinstance(other, SeqSet) else other):
            self.add_range(int(lo), int(hi))

    def count_between(self, lo: int, hi: int = INF) -> int:
        """How many numbers of the set lie in [lo, hi]."""
        total = 0
        for a, b in zip(self._lo, self._hi, strict=True):
            if b < lo:
                continue
            if a > hi:
                break
            total += min(b, hi) - max(a, lo) + 1
        return total

    def common_between(self, other: SeqSet, lo: int, hi: int = INF) -> int:
        """How many numbers lie in both sets and in [lo, hi]."""
        total = i = j = 0
        while i < len(self._lo) and j < len(other._lo):
            a, b = max(self._lo[i], other._lo[j], lo), min(self._hi[i], other._hi[j], hi)
            if a <= b:
                total += b - a + 1
            if self._hi[i] < other._hi[j]:
                i += 1
            else:
                j += 1
        return total
