"""The `exclusions` topic read into memory, two ways.

- `ExclusionsView`: source record key -> the whole `streams.exclusions.Exclusion`. The operator commands
  and the sync health page read it once (`load_exclusions`) and query it (`select`, `get`, `counts`).
- `ExcludedKeys`: source record key -> `streams.exclusions.Seen` (step, reason, first seen, count, event
  ids: well under 1 KB a record, against about 3.6 KB for a whole one). Every sync replica reads it to its
  end at start, then tails it, so it knows what any replica excluded and clears it when the record syncs;
  a replica given work partitions catches up first (`caught_up`), as with the links.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from aiokafka import ConsumerRecord, TopicPartition

from streams.codec import Position, SchemaError
from streams.config import KafkaSettings
from streams.exclusions import EXCLUSION_CODEC, Exclusion, Observed, Seen, fold
from streams.tails import TopicTail
from streams.topics import TopicCatalog, TopicRole
from streams.transactions import Outgoing, record, tombstone

__all__ = ["ExcludedKeys", "ExclusionsView", "load_exclusions"]

log = logging.getLogger(__name__)

Records = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
K = TypeVar("K", Exclusion, Seen)


class _Exclusions(Generic[K]):
    """The `exclusions` topic as a dict of source key -> what ``keep`` makes of each entry: read to its end
    (`load`), then tailed (`run`)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        catalog: TopicCatalog,
        keep: Callable[[Exclusion], K],
        *,
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        self.topic = catalog.name(TopicRole.EXCLUSIONS)
        self.excluded: dict[str, K] = {}
        self.changed = 0
        """How many entries and tombstones were taken in or committed so far (a cheap "did it change?")."""
        self._keep: Callable[[Exclusion], K] = keep
        self._tail = TopicTail(kafka, self.topic, self._take, what="exclusions tail", on_beat=on_beat)

    async def load(self) -> int:
        """Read the topic to its end; `run` tails on from there. Returns the number excluded."""
        await self._tail.open()
        return len(self.excluded)

    async def run(self, stop: asyncio.Event) -> None:
        """Tail the topic until ``stop``."""
        await self._tail.run(stop)

    async def caught_up(self, stop: asyncio.Event, *, patience_s: float = 20.0) -> bool:
        """Wait until the tail has taken in every entry written before this call (a new owner of work
        partitions, before its first batch, so it clears what the last owner excluded)."""
        return await self._tail.caught_up(stop, patience_s=patience_s)

    async def close(self) -> None:
        await self._tail.close()

    def _take(self, batch: Records) -> int:
        self.changed += sum(len(ms) for ms in batch.values())
        for tp, messages in batch.items():
            for m in messages:
                if m.key is None:
                    continue
                key = m.key.decode(errors="replace")
                if m.value is None:
                    self.excluded.pop(key, None)
                    continue
                try:
                    found = EXCLUSION_CODEC.decode(m.value, Position(tp.topic, tp.partition, m.offset))
                except SchemaError as error:
                    log.warning("skipping an unreadable exclusion of %s: %s", key, error)
                else:
                    self.excluded[key] = self._keep(found)
        return sum(len(ms) for ms in batch.values())

    def counts(self) -> dict[tuple[str, str], int]:
        """(step, main reason) -> records excluded."""
        return dict(Counter((e.step, str(e.reason)) for e in self.excluded.values()))


class ExclusionsView(_Exclusions[Exclusion]):
    """Every exclusion in full: what `cdc excluded` and the sync health page read (`load_exclusions`)."""

    def __init__(
        self, kafka: KafkaSettings, catalog: TopicCatalog, *, on_beat: Callable[[], None] | None = None
    ) -> None:
        super().__init__(kafka, catalog, _whole, on_beat=on_beat)

    def select(self, *, reason: str | None = None, step: str | None = None) -> list[Exclusion]:
        """The exclusions asked for, the most recently seen first."""
        found = [e for e in self.excluded.values() if e.matches(reason=reason, step=step)]
        return sorted(found, key=lambda e: (e.last_seen, e.key), reverse=True)

    def get(self, key: str) -> Exclusion | None:
        return self.excluded.get(key)


class ExcludedKeys(_Exclusions[Seen]):
    """The sync's side of the topic: which records are excluded now, kept small (`Seen`), so that it writes
    a tombstone only for those, and carries an exclusion seen again on (first seen, count)."""

    def __init__(
        self, kafka: KafkaSettings, catalog: TopicCatalog, *, on_beat: Callable[[], None] | None = None
    ) -> None:
        super().__init__(kafka, catalog, Seen.of, on_beat=on_beat)

    def changes(self, observed: Iterable[Observed]) -> list[Observed]:
        """What to produce for a batch's observations (`fold` over what this replica knows)."""
        return fold(self.excluded, observed)

    def records(self, changes: Iterable[Observed]) -> list[Outgoing]:
        """The entries and tombstones of `changes`, to go in the batch's transaction."""
        return [
            tombstone(self.topic, key) if seen is None else record(self.topic, key, seen, EXCLUSION_CODEC)
            for key, seen in changes
        ]

    def commit(self, changes: Iterable[Observed]) -> None:
        """Once the transaction committed: this replica knows its own entries before its tail reads them."""
        for key, seen in changes:
            self.changed += 1
            if seen is None:
                self.excluded.pop(key, None)
            else:
                self.excluded[key] = Seen.of(seen)


def _whole(e: Exclusion) -> Exclusion:
    return e


async def load_exclusions(kafka: KafkaSettings) -> ExclusionsView:
    """The `exclusions` topic read to its end now (the operator commands, the health page)."""
    view = ExclusionsView(kafka, TopicCatalog.from_settings(kafka))
    try:
        await view.load()
    finally:
        await view.close()
    return view
