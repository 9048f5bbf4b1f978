"""A count of calls (or seconds of execution) in a sliding window, kept in fixed slots so a 24-hour
window costs 1,440 integers, not a timestamp per call.

A slot's amount counts until the whole slot has left the window: the count is never below the true one
(never above it by more than one slot's worth), so a limiter steering on it stays under the limit and
gives up at most 1/``slots`` of it. Pure: the caller passes ``now`` (monotonic seconds).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

__all__ = ["Tally"]


@dataclass
class Tally:
    window_s: float
    slots: int = 50
    _ring: deque[tuple[int, float]] = field(default_factory=deque, repr=False)
    """(slot number, amount), oldest first."""

    @property
    def slot_s(self) -> float:
        return self.window_s / self.slots

    def _slot(self, now: float) -> int:
        return math.floor(now / self.slot_s + 1e-9)  # a slot's own boundary time lands in it

    def _trim(self, now: float) -> None:
        # Slot s holds calls in [s, s+1) * slot_s: all of them have left (now - window_s, now] once
        # (s + 1) * slot_s <= now - window_s.
        first_alive = self._slot(now) - self.slots
        while self._ring and self._ring[0][0] < first_alive:
            self._ring.popleft()

    def add(self, now: float, amount: float = 1.0) -> None:
        self._trim(now)
        slot = self._slot(now)
        if self._ring and self._ring[-1][0] >= slot:
            last, value = self._ring[-1]
            self._ring[-1] = (last, value + amount)
        else:
            self._ring.append((slot, amount))

    def used(self, now: float) -> float:
        self._trim(now)
        return sum(amount for _, amount in self._ring)

    def room_at(self, now: float, allowed: float, cost: float = 1.0) -> float:
        """The earliest time (>= ``now``) at which ``cost`` more fits under ``allowed``: ``now`` when it fits
        already; ``math.inf`` when even an empty window could not hold it."""
        if cost > allowed:
            return math.inf
        used = self.used(now)
        if used + cost <= allowed:
            return now
        for slot, amount in self._ring:
            used -= amount
            if used + cost <= allowed:
                return (slot + 1 + self.slots) * self.slot_s
        return now  # unreachable: an empty ring fits (cost <= allowed)
