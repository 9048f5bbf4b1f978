"""One CRM's owner list (HubSpot owners, Dataverse system users) as the gateways keep it for
``lookup: owner``: read at the first need, again after ``refresh_s``, and on a miss (a record names someone
not in it) at most once per ``miss_s``, so a burst of unknown owners costs one list read, not one per
record. A failed read raises (the CRM's
error, sorted as every read's) and keeps nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from consumers.owners import Owner

__all__ = ["OWNERS_MISS_S", "OWNERS_REFRESH_S", "OwnerList"]

OWNERS_REFRESH_S = 600.0
"""Default interval between reads (an owner added, archived, disabled, or an email changed)."""
OWNERS_MISS_S = 30.0
"""Default bound on re-reads caused by a record naming someone not in the list."""


class OwnerList:
    def __init__(
        self,
        read: Callable[[], Awaitable[list[Owner]]],
        *,
        refresh_s: float = OWNERS_REFRESH_S,
        miss_s: float = OWNERS_MISS_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._refresh_s = refresh_s
        self._miss_s = miss_s
        self._clock = clock
        self._owners: list[Owner] | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()  # concurrent misses make one read
        self.reads = 0

    async def get(self, *, refresh: bool = False) -> Sequence[Owner]:
        async with self._lock:
            age = self._clock() - self._read_at
            if self._owners is None or age > self._refresh_s or (refresh and age > self._miss_s):
                self.reads += 1
                self._owners = await self._read()  # an outage raises: the batch is retried as a whole
                self._read_at = self._clock()
            return self._owners
