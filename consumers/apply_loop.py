"""The apply loop (group ``<prefix>sync-apply``): reads the work topic in batches (up to N records, waiting
for more up to M ms only while a backlog is arriving: `streams.batching`), runs them through the `Applier`,
and publishes links, audit records, exclusions (`streams.exclusions`), dead letters and rechecks in one
transaction with its offsets (`streams.transactions`): an offset moves only after the writes and the link
updates are acknowledged (guarantee 1), and the batch's links join the link store only then.

A CRM outage pauses the partitions and retries the same batch for as long as it takes (`consumers.retries`);
a record error dead-letters that record's events and the partition moves on. A rebalance while a batch is
in hand (counted by the group's revocations, `streams.transactions.Ownership`) stops it: no write is sent
after it and nothing is committed; the partitions' new owner reads the batch again. Creates, which a write
sent just before the revocation could still double, key on the other CRM's id (see the gateways).

What a batch is about to update is kept in the `sync.sent` topic before it is sent (`streams.sent_log`) and
cleared in the transaction that commits the links: a replica given partitions catches up with that topic
as with the links before its first batch, so it knows the writes of a replica killed between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumers.applier import Applier
from consumers.batch import BatchResult
from consumers.parked import ParkedReader
from consumers.parking import Sorted, held_pairs, sort
from consumers.ports import BatchRevokedError, CrmUnavailableError
from consumers.retries import ENGINE, Keepalive, Retry, RetryPolicy, retrying, unless_stopped
from streams.audit import AUDIT_CODEC
from streams.clients import make_consumer, running
from streams.config import KafkaSettings
from streams.control import ControlView, hold, holds_everything, read_unless_paused
from streams.deadletters import DeadLetter
from streams.exclusion_view import ExcludedKeys
from streams.exclusions import Observed
from streams.link_view import LinkView
from streams.links import LINK_CODEC, link_key
from streams.sent_log import SentLog
from streams.topics import TopicCatalog, TopicRole
from streams.transactions import (
    Lag,
    Outgoing,
    Ownership,
    Raw,
    TransactionalLoop,
    dead_letter,
    dead_letter_record,
    decode,
    offsets,
    record,
    rewind,
    tombstone,
    transaction,
)
from streams.work import WORK_CODEC, WorkItem

__all__ = ["ApplyLoop", "RecordRejectedError"]

log = logging.getLogger(__name__)

UNEXPECTED = RetryPolicy(retries=2, throttles=0, wait_initial_s=0.4, wait_max_s=0.8, jitter_s=0.0)
"""An unexpected error (a bug, a poison record) is retried with the whole batch twice, then item by item."""
SYSTEMIC_FAILURES = 5
SYSTEMIC_PAUSE_S = 30.0


class RecordRejectedError(Exception):
    """A record error that outlived its retries (validation, 400 for this input)."""


@dataclass(frozen=True, slots=True)
class Settling:
    """One batch to apply and commit: its items (in order), the message each came from, its dead letters,
    the offsets it moves, and the items it parks."""

    items: list[WorkItem]
    origin: dict[int, Raw]
    dead: list[DeadLetter]
    offsets: dict[TopicPartition, int]
    park: list[WorkItem]


@contextlib.asynccontextmanager
async def _opened(parked: ParkedReader | None) -> AsyncIterator[None]:
    if parked is None:
        yield
        return
    await parked.start()
    try:
        yield
    finally:
        await parked.close()


class ApplyLoop(TransactionalLoop):
    role = "apply"

    def __init__(
        self,
        kafka: KafkaSettings,
        catalog: TopicCatalog,
        applier: Applier,
        *,
        group: str,
        batch_size: int = 500,
        batch_wait_ms: int = 50,
        on_batch: Callable[[BatchResult, int, float], None] | None = None,
        on_retry: Callable[[Retry], None] | None = None,
        on_lag: Callable[[Lag], None] | None = None,
        on_beat: Callable[[], None] | None = None,
        links: LinkView | None = None,
        sent: SentLog | None = None,
        exclusions: ExcludedKeys | None = None,
        control: ControlView | None = None,
        on_parked: Callable[[list[WorkItem]], None] | None = None,
    ) -> None:
        super().__init__(kafka, catalog, group=group, on_lag=on_lag, on_beat=on_beat)
        self.applier = applier
        self.links = links
        """The view the applier's index is fed by: after each rebalance, caught up before the first batch."""
        self.sent = sent
        """The applier's journal of notes, tailed like the links (``None``: notes in memory only)."""
        self.exclusions = exclusions
        """The records excluded now, tailed like the links (``None``: exclusions are not kept)."""
        self.batch_size = batch_size
        self.batch_wait_ms = batch_wait_ms
        self.on_batch = on_batch
        """Told of every committed batch: its result, its dead letters, and the seconds from the start of its
        apply to its commit."""
        self.on_retry = on_retry
        """Told of every retry: ``sync`` (a CRM outage waited out), ``sync_batch`` (an unexpected error)."""
        self.control = control
        """What an operator paused (`streams.control`); ``None``: nothing is ever paused or parked."""
        self.on_parked = on_parked
        """Told of the work items parked by each committed batch."""
        self._failing_in_a_row = 0
        self._links_for = 0

    async def run(self, stop: asyncio.Event) -> None:
        work = make_consumer(self.kafka, group_id=self.group)
        ownership = self.ownership = Ownership()
        work.subscribe([self.catalog.name(TopicRole.WORK)], listener=ownership)
        parked = ParkedReader(self.kafka, self.catalog) if self.control is not None else None
        async with (
            running(self.producer()) as producer,
            running(work) as consumer,
            _opened(parked),
        ):

            async def keepalive() -> None:
                # Polling keeps this member in the group through a long CRM outage (max.poll.interval.ms).
                # Everything assigned is paused first: a rebalance meanwhile may have handed this member
                # partitions the batch does not hold, and records fetched here would be dropped.
                consumer.pause(*consumer.assignment())
                await rewind(consumer, await consumer.getmany(timeout_ms=0))  # assigned after the pause
                self.beat()  # waiting on purpose is no stall

            # `load` read the links topic to its end before the first assignment.
            self._links_for = ownership.generation
            while not stop.is_set():
                self.beat()
                if holds_everything(self.control):
                    await hold(consumer)  # everything paused: changes wait in Kafka, the member stays
                    await self.report_lag(consumer, {})
                    continue
                consumer.resume(*consumer.assignment())
                # Taken before the read: a batch read across a rebalance is dropped, never committed.
                generation = ownership.generation
                settle = partial(
                    self._settle,
                    consumer=consumer,
                    producer=producer,
                    generation=generation,
                    stop=stop,
                    keepalive=keepalive,
                )
                if parked is not None and await self._replay(parked, consumer, generation, settle):
                    continue
                batch = await read_unless_paused(
                    consumer, self.control, max_records=self.batch_size, wait_ms=self.batch_wait_ms
                )
                await self.report_lag(consumer, batch)
                if not batch:
                    continue
                items, origin, dead = _decode_work(batch)
                split = Sorted(items, []) if parked is None else self._sort(parked, generation, items)
                if split is None:
                    # Read before this member knew what waits on its new partitions: it could not tell which
                    # items must park behind parked ones. Read again once it knows.
                    await rewind(consumer, batch)
                    continue
                done = await settle(Settling(split.apply, origin, dead, offsets(batch), split.park))
                if not done:
                    await rewind(consumer, batch)
                elif parked is not None:
                    parked.waiting.add(item.route for item in split.park)

    async def _replay(
        self,
        parked: ParkedReader,
        consumer: AIOKafkaConsumer,
        generation: int,
        settle: Callable[[Settling], Awaitable[bool]],
    ) -> bool:
        """One turn of the parked items' replay; False when there was nothing to replay."""
        if self.ownership.joined:
            # Mid-rebalance (revoked, not yet assigned) the assignment is not this generation's.
            await parked.follow(generation, sorted(consumer.assignment()), consumer.committed)
        return parked.follows(generation) and await _replay_parked(parked, self._held(), settle)

    def _sort(self, parked: ParkedReader, generation: int, items: list[WorkItem]) -> Sorted | None:
        """What of a work batch applies now and what parks; None when the parked reader does not know
        this generation's partitions yet."""
        return sort(items, self._held(), parked.waiting) if parked.follows(generation) else None

    def _held(self) -> frozenset[str]:
        """The pairs whose work items park now (`consumers.parking.held_pairs`)."""
        if self.control is None:
            return frozenset()
        return held_pairs(self.applier.config, self.control.pauses.steps())

    async def _settle(
        self,
        batch: Settling,
        *,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        generation: int,
        stop: asyncio.Event,
        keepalive: Keepalive,
    ) -> bool:
        """Apply a batch's items and commit the outcome (links, audit, dead letters, parked items) with its
        offsets; False when it was dropped uncommitted (a rebalance), to be read again."""
        ownership = self.ownership
        if generation != self._links_for:
            await self._catch_up(stop)
            self._links_for = generation

        def owned(read_in: int = generation) -> bool:
            return ownership.generation == read_in

        dead = batch.dead
        started = time.monotonic()
        result, poisoned = BatchResult(), list[tuple[WorkItem, Exception]]()
        if batch.items:
            consumer.pause(*consumer.assignment())
            try:
                result, poisoned = await self._apply(batch.items, stop, keepalive, owned=owned)
            except BatchRevokedError as revoked:
                log.warning("sync batch of %d dropped uncommitted: %s", len(batch.items), revoked)
                return False
            finally:
                consumer.resume(*consumer.assignment())
        if ownership.generation != generation:
            log.warning("sync batch of %d applied as its partitions moved: not committed", len(batch.items))
            return False
        dead.extend(dead_letter(batch.origin[id(item)], error, step="apply") for item, error in poisoned)
        for failure in result.failed:
            rejected = RecordRejectedError(failure.error or "could not be applied")
            dead.extend(
                dead_letter(batch.origin[id(item)], rejected, step=failure.step, attempts=failure.attempts)
                for item in failure.items
            )
        parked_topic = self.catalog.name(TopicRole.PARKED)
        excluded = self._excluded(result)
        records = self._records(result, dead, excluded)
        records += [record(parked_topic, item.route, item, WORK_CODEC) for item in batch.park]
        await transaction(producer, records, batch.offsets, self.group)
        self._committed(result, excluded)
        if self.on_batch is not None:
            self.on_batch(result, len(dead), time.monotonic() - started)
        if batch.park and self.on_parked is not None:
            self.on_parked(batch.park)
        return True

    def _committed(self, result: BatchResult, excluded: list[Observed]) -> None:
        """Once the batch's transaction committed: its links join the store, its exclusions the view."""
        self.applier.commit(result)
        if self.exclusions is not None:
            self.exclusions.commit(excluded)

    async def _catch_up(self, stop: asyncio.Event) -> None:
        """After a rebalance, before the first batch: the partitions' last owner's links and notes."""
        for tail in (self.links, self.sent, self.exclusions):
            if tail is not None:
                await tail.caught_up(stop)

    async def _apply(
        self,
        items: list[WorkItem],
        stop: asyncio.Event,
        keepalive: Keepalive,
        *,
        owned: Callable[[], bool],
    ) -> tuple[BatchResult, list[tuple[WorkItem, Exception]]]:
        """Apply a batch through CRM outages. An unexpected error (a bug, a poison record) is retried, then
        the batch is applied item by item so only the items that fail on their own are dead-lettered;
        when every item fails alike the cause is systemic (configuration, a CRM answering nonsense):
        the loop pauses and retries instead of emptying the queue into dead letters."""

        async def once(some: list[WorkItem]) -> BatchResult:
            apply = partial(self.applier.apply, some, owned=owned)
            return await retrying(
                apply,
                policy=ENGINE,
                on=(CrmUnavailableError,),
                what="sync",
                stop=stop,
                keepalive=keepalive,
                on_retry=self.on_retry,
            )

        whole = partial(once, items)
        try:
            result = await retrying(
                whole, policy=UNEXPECTED, on=_unexpected, what="sync_batch", stop=stop, on_retry=self.on_retry
            )
        except (CrmUnavailableError, BatchRevokedError):
            raise  # CrmUnavailableError only when stopping: `once` waits out outages
        except Exception as error:  # noqa: BLE001 -- sorted below: poison record or systemic
            log.warning("sync batch of %d failed after its retries (%r): item by item now", len(items), error)
        else:
            return result, []
        merged, poisoned = BatchResult(), []
        for item in items:
            try:
                merged.merge(await once([item]))
                self._failing_in_a_row = 0
            except (CrmUnavailableError, BatchRevokedError):
                raise
            except Exception as error:  # noqa: BLE001 -- a record that fails on its own is poison
                poisoned.append((item, error))
                self._failing_in_a_row += 1
        systemic = (
            len(items) > 1 and len(poisoned) == len(items)
        ) or self._failing_in_a_row >= SYSTEMIC_FAILURES
        if systemic and not stop.is_set():
            log.error(
                "every record fails (%r): pausing instead of dead-lettering (fix the cause and it resumes)",
                poisoned[-1][1],
            )
            await unless_stopped(stop, asyncio.sleep(SYSTEMIC_PAUSE_S), keepalive=keepalive)
            return await self._apply(items, stop, keepalive, owned=owned)
        return merged, poisoned

    def _excluded(self, result: BatchResult) -> list[Observed]:
        """The exclusions and clearings the batch's observations make (none in a dry run: it settles
        nothing)."""
        if self.exclusions is None or self.applier.dry_run:
            return []
        return self.exclusions.changes(result.exclusions)

    def _records(
        self, result: BatchResult, dead: list[DeadLetter], excluded: list[Observed]
    ) -> list[Outgoing]:
        """Links, audit records, exclusions, dead letters and rechecks of one batch: committed with its
        offsets, all or nothing (guarantee 1)."""
        links = self.catalog.name(TopicRole.LINKS)
        audit = self.catalog.name(TopicRole.AUDIT)
        work = self.catalog.name(TopicRole.WORK)
        dead_topic = self.catalog.name(TopicRole.DEADLETTER)
        records: list[Outgoing] = [
            tombstone(links, link_key(link_id))
            if link is None
            else record(links, link_key(link_id), link, LINK_CODEC)
            for link_id, link in result.links
        ]
        records += [record(audit, a.key, a, AUDIT_CODEC) for a in result.audits]
        if self.exclusions is not None:
            records += self.exclusions.records(excluded)
        records += [dead_letter_record(dead_topic, letter) for letter in dead]
        records += [record(work, item.route, item, WORK_CODEC) for item in result.rechecks]
        if self.sent is not None:
            records += self.sent.clearing(self.applier.sent.pending(link for _, link in result.links))
        return records


async def _replay_parked(
    parked: ParkedReader, held: frozenset[str], settle: Callable[[Settling], Awaitable[bool]]
) -> bool:
    """Apply what may go of the parked items (in order, before newer items of their routes, which park
    behind them meanwhile); False when nothing was there to replay."""
    replay = await parked.replay(held)
    if replay is None:
        return False
    if await settle(Settling(replay.items, replay.origin, replay.dead, replay.offsets, [])):
        parked.replayed(replay)
    else:
        parked.rewind(replay)
    return True


def _unexpected(error: Exception) -> bool:
    """Not an outage (waited out inside) nor a revocation (the batch is dropped): a bug or a poison record."""
    return not isinstance(error, CrmUnavailableError | BatchRevokedError)


def _decode_work(
    batch: Mapping[TopicPartition, Sequence[Raw]],
) -> tuple[list[WorkItem], dict[int, Raw], list[DeadLetter]]:
    """The batch's work items, the message each came from (by the item's identity: a unit holds the very
    items), and the dead letters of the unreadable ones."""
    decoded, dead = decode(batch, WORK_CODEC)
    return [item for item, _ in decoded], {id(item): m for item, m in decoded}, dead
