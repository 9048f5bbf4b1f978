"""The `exclusions` topic as a view: source record key -> `streams.exclusions.Exclusion`.

Read to its end at start (`ExclusionsView.load`), then, in the sync role, tailed (`ExclusionsView.run`), so
every replica knows what any replica excluded and clears it when the record syncs; a replica given work
partitions catches up first (`caught_up`), as with the links. The operator commands and the sync health
page read it once (`load_exclusions`) and query it (`select`, `get`, `counts`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from aiokafka import ConsumerRecord, TopicPartition

from streams.codec import Position, SchemaError
from streams.config import KafkaSettings
from streams.exclusions import EXCLUSION_CODEC, Exclusion, Observed, fold
from streams.tails import TopicTail
from streams.topics import TopicCatalog, TopicRole
from streams.transactions import Outgoing, record, tombstone

__all__ = ["ExclusionsView", "load_exclusions"]

log = logging.getLogger(__name__)

Records = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class ExclusionsView:
    """The `exclusions` topic as a dict of source key -> `Exclusion`: read to its end (`load`), then, in
    the sync role, tailed (`run`) so every replica knows what any replica excluded."""

    def __init__(
        self, kafka: KafkaSettings, catalog: TopicCatalog, *, on_beat: Callable[[], None] | None = None
    ) -> None:
        self.topic = catalog.name(TopicRole.EXCLUSIONS)
        self.excluded: dict[str, Exclusion] = {}
        self._tail = TopicTail(kafka, self.topic, self._take, what="exclusions tail", on_beat=on_beat)

    # -- reading -------------------------------------------------------------------------------------

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
        for tp, messages in batch.items():
            for m in messages:
                if m.key is None:
                    continue
                key = m.key.decode(errors="replace")
                if m.value is None:
                    self.excluded.pop(key, None)
                    continue
                try:
                    self.excluded[key] = EXCLUSION_CODEC.decode(
                        m.value, Position(tp.topic, tp.partition, m.offset)
                    )
                except SchemaError as error:
                    log.warning("skipping an unreadable exclusion of %s: %s", key, error)
        return sum(len(ms) for ms in batch.values())

    # -- queries -------------------------------------------------------------------------------------

    def select(self, *, reason: str | None = None, step: str | None = None) -> list[Exclusion]:
        """The exclusions asked for, the most recently seen first."""
        found = [e for e in self.excluded.values() if e.matches(reason=reason, step=step)]
        return sorted(found, key=lambda e: (e.last_seen, e.key), reverse=True)

    def get(self, key: str) -> Exclusion | None:
        return self.excluded.get(key)

    def counts(self) -> dict[tuple[str, str], int]:
        """(step, main reason) -> records excluded."""
        out: dict[tuple[str, str], int] = {}
        for e in self.excluded.values():
            out[(e.step, str(e.reason))] = out.get((e.step, str(e.reason)), 0) + 1
        return out

    # -- writing (the sync's apply loop) -------------------------------------------------------------

    def changes(self, observed: Iterable[Observed]) -> list[Observed]:
        """What to produce for a batch's observations (`fold` over what this view knows)."""
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
            if seen is None:
                self.excluded.pop(key, None)
            else:
                self.excluded[key] = seen


async def load_exclusions(kafka: KafkaSettings) -> ExclusionsView:
    """The `exclusions` topic read to its end now (the operator commands, the health page)."""
    view = ExclusionsView(kafka, TopicCatalog.from_settings(kafka))
    try:
        await view.load()
    finally:
        await view.close()
    return view
