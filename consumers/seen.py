"""Changes already routed, by identity: the same change arriving twice (a HubSpot webhook and its Webhooks
Journal entry, a webhook HubSpot delivered twice) is routed once, before any API read. Pure, no I/O.

Only the live feeds are compared (origins ``webhook`` and ``journal``): a resync or a reconciler's re-read
is meant to be applied again, so it always passes. Only a memory, bounded and per process: what it forgets
(a restart, an old identity pushed out) goes the ordinary way, where the link fingerprints and the
idempotent writes make a duplicate cost reads, never a wrong write. An identity is remembered only after
the batch that routed it committed, so a batch read again after a failed transaction is routed again, not
dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from streams.events import ChangeEvent, Origin

__all__ = ["LIVE", "SeenChanges"]

LIVE = frozenset({Origin.WEBHOOK, Origin.JOURNAL})


class SeenChanges:
    def __init__(self, size: int = 100_000) -> None:
        self._size = size
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.dropped = 0

    def unseen(self, events: Iterable[ChangeEvent]) -> list[ChangeEvent]:
        """``events`` without those routed before, or earlier in ``events`` (the first one is kept)."""
        kept: list[ChangeEvent] = []
        batch: set[str] = set()
        for event in events:
            if event.origin not in LIVE:
                kept.append(event)
                continue
            identity = event.identity
            if identity in self._seen or identity in batch:
                self.dropped += 1
                continue
            batch.add(identity)
            kept.append(event)
        return kept

    def remember(self, events: Iterable[ChangeEvent]) -> None:
        """Once the batch routing ``events`` committed."""
        for event in (e for e in events if e.origin in LIVE):
            identity = event.identity
            self._seen[identity] = None
            self._seen.move_to_end(identity)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
