"""The sync stage on Kafka: the link view, the router and the apply loop.

- `LinkView` rebuilds the `links` topic into a `LinkIndex` at start-up, then tails it.
- `Router` (group ``<prefix>sync-route``) reads both change topics and re-keys every change to its pair on
  the work topic, in one Kafka transaction with its consumed offsets (exactly once into the work topic).
- `ApplyLoop` (group ``<prefix>sync-apply``) reads the work topic in batches (up to N records or M ms),
  runs them through the `Applier`, and publishes links, audit records and dead letters in one transaction
  with its offsets: an offset moves only after the writes and the link updates are acknowledged
  (guarantee 1). A CRM outage pauses the partitions and retries the same batch for as long as it takes;
  a record error dead-letters that record's events and the partition moves on. A rebalance while a batch
  is in hand (counted by the group's revocations) stops it: no write is sent after it and nothing is
  committed; the partitions' new owner reads the batch again. Kafka itself would not refuse the commit
  (aiokafka's transactional offset commits carry no group generation); creates, which a write sent just
  before the revocation could still double, key on the other CRM's id (see the gateways).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TypeAlias, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

from consumers.applier import Applier, BatchResult
from consumers.config import SyncConfig
from consumers.enrichment import enrich
from consumers.ports import BatchRevokedError, CrmGateway, CrmUnavailableError
from consumers.routing import routes
from streams.admin import TopicAdminError
from streams.audit import AUDIT_CODEC
from streams.clients import make_consumer, make_producer, partitions_of, running, settle, start_or_close
from streams.codec import Position, SchemaError
from streams.config import KafkaSettings
from streams.deadletters import DEADLETTER_CODEC, DeadLetter
from streams.events import CHANGE_CODEC, ChangeEvent
from streams.keys import SourceSystem
from streams.links import LINK_CODEC, LinkIndex, link_id_from_key, link_key
from streams.topics import TopicCatalog, TopicRole
from streams.work import WORK_CODEC, WorkItem

__all__ = ["ApplyLoop", "Lag", "LinkView", "LoadStats", "Router"]

log = logging.getLogger(__name__)

Raw: TypeAlias = ConsumerRecord[bytes, bytes]
T = TypeVar("T")
UNEXPECTED_ATTEMPTS = 3
SYSTEMIC_FAILURES = 5


@dataclass(frozen=True, slots=True)
class LoadStats:
    links: int
    records: int
    seconds: float


class LinkView:
    """The `links` topic as a `LinkIndex`; every sync replica holds all links."""

    def __init__(self, kafka: KafkaSettings, catalog: TopicCatalog, index: LinkIndex | None = None) -> None:
        self.kafka = kafka
        self.topic = catalog.name(TopicRole.LINKS)
        self.partitions = catalog[TopicRole.LINKS].partitions
        self.index = index if index is not None else LinkIndex()
        self._consumer: AIOKafkaConsumer | None = None
        self._read_to: dict[TopicPartition, int] = {}
        """Per partition of the topic, the offset the index has taken in everything before."""

    def apply(self, key: bytes | None, value: bytes | None, where: Position) -> None:
        if key is None:
            return
        try:
            link_id = link_id_from_key(key.decode())
            if value is not None:
                incoming = orjson.loads(value)
                current = self.index.revision(link_id)
                if current is not None and int(incoming.get("revision", 1)) < current:
                    return  # our own newer write is already in the index
            self.index.apply_raw(link_id, value)
        except (ValueError, UnicodeDecodeError, TypeError, AttributeError, KeyError) as error:
            log.warning("skipping unreadable link at %s: %r", where, error)

    async def load(self) -> LoadStats:
        """Read the topic from the start to its end; afterwards `run` tails it."""
        started = time.monotonic()
        consumer = make_consumer(self.kafka, group_id=None, auto_offset_reset="earliest")
        await start_or_close(consumer)
        try:
            records = await self._read_to_end(consumer)
            await self._note_positions(consumer)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer  # `run` tails on from here
        stats = LoadStats(links=len(self.index), records=records, seconds=time.monotonic() - started)
        log.info("link view: %d links from %d records in %.2fs", stats.links, stats.records, stats.seconds)
        return stats

    async def _read_to_end(self, consumer: AIOKafkaConsumer) -> int:
        partitions = await partitions_of(consumer, self.topic)
        if not partitions:
            raise TopicAdminError(f"topic {self.topic} does not exist: run `cdc topics ensure` first")
        if len(partitions) != self.partitions:
            log.warning(
                "topic %s has %d partitions, the settings say %d: reading all %d",
                self.topic,
                len(partitions),
                self.partitions,
                len(partitions),
            )
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records = 0
        idle = 0
        while True:
            positions = [await _position(consumer, tp) for tp in partitions]
            if all(pos >= end[tp] for pos, tp in zip(positions, partitions, strict=True)):
                return records
            batch = await consumer.getmany(timeout_ms=250, max_records=10_000)
            if not batch:
                idle += 1
                if idle >= 8:  # only transaction markers left before the end offsets  # noqa: PLR2004
                    return records
                continue
            idle = 0
            for tp, messages in batch.items():
                for m in messages:
                    self.apply(m.key, m.value, Position(tp.topic, tp.partition, m.offset))
                    records += 1

    async def close(self) -> None:
        """Stop the consumer `load` left open for `run` (when `run` is not going to be called)."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self._consumer
        if consumer is None:
            await self.load()
            consumer = self._consumer
        if consumer is None:
            raise RuntimeError("link view consumer did not start")
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=5_000)
                for tp, messages in batch.items():
                    for m in messages:
                        self.apply(m.key, m.value, Position(tp.topic, tp.partition, m.offset))
                await self._note_positions(consumer)
        finally:
            await consumer.stop()
            self._consumer = None

    async def _note_positions(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            self._read_to[tp] = await _position(consumer, tp)

    async def caught_up(self, stop: asyncio.Event, *, patience_s: float = 20.0) -> bool:
        """Wait until the index holds every link committed before this call (the topic's last stable
        offsets: an open transaction's links are not committed yet). After a rebalance the new owner of a
        partition must plan with the links its old owner committed, not with a copy its tail has not caught
        up with (it would plan on stale fingerprints and write a link at a revision already taken). False,
        logged, when ``patience_s`` passed first (the broker unreachable): the loop goes on, and the link
        writer's revision rule still refuses to write over a newer link it has seen."""
        consumer = self._consumer
        if consumer is None:
            return True  # not tailing: `load` read to the end
        ends = await consumer.end_offsets(list(consumer.assignment()))
        deadline = time.monotonic() + patience_s
        while any(self._read_to.get(tp, 0) < end for tp, end in ends.items()):
            if stop.is_set() or time.monotonic() > deadline:
                log.warning("link view still behind the links topic after %.0fs: applying anyway", patience_s)
                return False
            await asyncio.sleep(0.01)
        return True


async def _position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    return int(await consumer.position(tp))


def _dead(message: Raw, error: Exception, *, step: str | None = None, attempts: int = 1) -> DeadLetter:
    value, encoding = DeadLetter.wrap_value(message.value)
    return DeadLetter(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key.decode("utf-8", "replace") if message.key is not None else None,
        value=value,
        value_encoding=encoding,
        step=step,
        error_class=type(error).__name__,
        error=str(error)[:2000] or type(error).__name__,
        attempts=attempts,
        failed_at=datetime.now(UTC),
    )


class RecordRejectedError(Exception):
    """A record error that outlived its retries (validation, 400 for this input)."""


async def _collect(
    consumer: AIOKafkaConsumer, *, max_records: int, wait_ms: int
) -> dict[TopicPartition, list[Raw]]:
    """Up to ``max_records`` messages: wait for the first, then gather more for up to ``wait_ms``."""
    batch: dict[TopicPartition, list[Raw]] = await consumer.getmany(timeout_ms=200, max_records=max_records)
    if not batch:
        return batch
    total = sum(len(v) for v in batch.values())
    deadline = time.monotonic() + wait_ms / 1000
    while total < max_records:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        more = await consumer.getmany(timeout_ms=int(remaining * 1000) or 1, max_records=max_records - total)
        if not more:
            break
        for tp, messages in more.items():
            batch.setdefault(tp, []).extend(messages)
            total += len(messages)
    return batch


def _offsets(batch: Mapping[TopicPartition, Sequence[Raw]]) -> dict[TopicPartition, int]:
    return {tp: messages[-1].offset + 1 for tp, messages in batch.items() if messages}


@dataclass(frozen=True, slots=True)
class Lag:
    """How far one consumed partition is behind its end: records, and the age of the last record read
    (0 when caught up)."""

    role: str
    topic: str
    partition: int
    records: int
    seconds: float


class _TransactionalLoop:
    role: str

    def __init__(
        self,
        kafka: KafkaSettings,
        catalog: TopicCatalog,
        *,
        group: str,
        on_lag: Callable[[Lag], None] | None = None,
    ) -> None:
        self.kafka = kafka
        self.catalog = catalog
        self.group = group
        self.transactional_id = f"{group}-{uuid.uuid4().hex[:12]}"
        self.on_lag = on_lag
        self._last_seen: dict[TopicPartition, float] = {}
        self._lag_reported = 0.0

    async def report_lag(
        self, consumer: AIOKafkaConsumer, batch: Mapping[TopicPartition, Sequence[Raw]]
    ) -> None:
        """Lag of every assigned partition (at most once a second): high watermark - position."""
        for tp, messages in batch.items():
            if messages:
                self._last_seen[tp] = messages[-1].timestamp / 1000
        now = time.time()
        if self.on_lag is None or now - self._lag_reported < 1.0:
            return
        self._lag_reported = now
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            behind = max(0, high - await consumer.position(tp))
            seen = self._last_seen.get(tp)
            seconds = max(0.0, now - seen) if behind and seen is not None else 0.0
            self.on_lag(Lag(self.role, tp.topic, tp.partition, behind, seconds))

    def producer(self) -> AIOKafkaProducer:
        return make_producer(self.kafka, transactional_id=self.transactional_id, linger_ms=2)


class Router(_TransactionalLoop):
    role = "route"

    def __init__(
        self,
        kafka: KafkaSettings,
        catalog: TopicCatalog,
        config: SyncConfig,
        index: LinkIndex,
        gateways: Mapping[SourceSystem, CrmGateway],
        *,
        group: str,
        on_routed: Callable[[int, int], None] | None = None,
        on_lag: Callable[[Lag], None] | None = None,
    ) -> None:
        super().__init__(kafka, catalog, group=group, on_lag=on_lag)
        self.config = config
        self.index = index
        self.gateways = gateways
        self.on_routed = on_routed

    async def enrich(self, events: list[ChangeEvent]) -> list[ChangeEvent]:
        return await enrich(self.config, self.index, self.gateways, events)

    async def run(self, stop: asyncio.Event) -> None:
        topics = (
            self.catalog.name(TopicRole.CHANGES_HUBSPOT),
            self.catalog.name(TopicRole.CHANGES_DATAVERSE),
        )
        work = self.catalog.name(TopicRole.WORK)
        dead_topic = self.catalog.name(TopicRole.DEADLETTER)
        async with (
            running(self.producer()) as producer,
            running(make_consumer(self.kafka, *topics, group_id=self.group)) as consumer,
        ):
            while not stop.is_set():
                batch = await _collect(consumer, max_records=1_000, wait_ms=5)
                await self.report_lag(consumer, batch)
                if not batch:
                    continue
                events: list[ChangeEvent] = []
                dead: list[DeadLetter] = []
                for tp, messages in batch.items():
                    for m in messages:
                        try:
                            events.append(
                                CHANGE_CODEC.decode(m.value, Position(tp.topic, tp.partition, m.offset))
                            )
                        except SchemaError as error:
                            dead.append(_dead(m, error))
                events = await _retrying(partial(self.enrich, events), stop, what="route")
                items = [item for event in events for item in routes(self.config, self.index, event)]
                records = [_work_record(work, item) for item in items]
                records += [_dead_record(dead_topic, letter) for letter in dead]
                await _transaction(producer, records, _offsets(batch), self.group)
                if self.on_routed is not None:
                    self.on_routed(len(items), len(dead))


async def _pause(
    stop: asyncio.Event, seconds: float, keepalive: Callable[[], Awaitable[None]] | None
) -> None:
    """Wait ``seconds`` or until stopped, keeping a consumer alive meanwhile."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        if keepalive is not None:
            await keepalive()


async def _retrying(
    call: Callable[[], Awaitable[T]],
    stop: asyncio.Event,
    *,
    what: str,
    on_pause: Callable[[CrmUnavailableError], None] | None = None,
    keepalive: Callable[[], Awaitable[None]] | None = None,
) -> T:
    """Retry a call through CRM outages with capped exponential backoff (Retry-After when given)."""
    attempt = 0
    while True:
        try:
            return await call()
        except CrmUnavailableError as error:
            attempt += 1
            delay = error.retry_after_s if error.retry_after_s is not None else min(30.0, 0.2 * 2**attempt)
            delay = delay + random.uniform(0, delay / 4)  # noqa: S311 -- jitter, not cryptography
            log.warning("%s paused: %s; retrying in %.1fs (attempt %d)", what, error, delay, attempt)
            if on_pause is not None:
                on_pause(error)
            await _pause(stop, delay, keepalive)
            if stop.is_set():
                raise


class ApplyLoop(_TransactionalLoop):
    role = "apply"

    def __init__(
        self,
        kafka: KafkaSettings,
        catalog: TopicCatalog,
        applier: Applier,
        *,
        group: str,
        batch_size: int = 100,
        batch_wait_ms: int = 5,
        on_batch: Callable[[BatchResult, int], None] | None = None,
        on_pause: Callable[[CrmUnavailableError], None] | None = None,
        on_lag: Callable[[Lag], None] | None = None,
        links: LinkView | None = None,
    ) -> None:
        super().__init__(kafka, catalog, group=group, on_lag=on_lag)
        self.applier = applier
        self.links = links
        """The view the applier's index is fed by: after each rebalance, caught up before the first batch."""
        self.batch_size = batch_size
        self.batch_wait_ms = batch_wait_ms
        self.on_batch = on_batch
        self.on_pause = on_pause
        self._failing_in_a_row = 0

    async def run(self, stop: asyncio.Event) -> None:
        work = make_consumer(self.kafka, group_id=self.group)
        ownership = _Ownership()
        work.subscribe([self.catalog.name(TopicRole.WORK)], listener=ownership)
        async with running(self.producer()) as producer, running(work) as consumer:

            async def keepalive() -> None:
                # Polling keeps this member in the group through a long CRM outage (max.poll.interval.ms).
                # Everything assigned is paused first: a rebalance meanwhile may have handed this member
                # partitions the batch does not hold, and records fetched here would be dropped.
                consumer.pause(*consumer.assignment())
                await consumer.getmany(timeout_ms=0)

            links_for = (
                ownership.generation
            )  # `load` read the links topic to its end before the first assignment
            while not stop.is_set():
                # Taken before the read: a batch read across a rebalance is dropped, never committed.
                generation = ownership.generation
                batch = await _collect(consumer, max_records=self.batch_size, wait_ms=self.batch_wait_ms)
                await self.report_lag(consumer, batch)
                if not batch:
                    continue
                if generation != links_for and self.links is not None:
                    await self.links.caught_up(stop)  # the partitions' last owner's links first
                    links_for = generation
                items, origin, dead = _decode_work(batch)

                def owned(read_in: int = generation) -> bool:
                    return ownership.generation == read_in

                consumer.pause(*consumer.assignment())
                try:
                    result, poisoned = await self._apply(items, stop, keepalive, owned=owned)
                except BatchRevokedError as revoked:
                    log.warning("sync batch of %d dropped uncommitted: %s", len(items), revoked)
                    await _rewind(consumer, batch)
                    continue
                finally:
                    consumer.resume(*consumer.assignment())
                if ownership.generation != generation:
                    log.warning("sync batch of %d applied as its partitions moved: not committed", len(items))
                    await _rewind(consumer, batch)
                    continue
                dead.extend(_dead(origin[id(item)], error, step="apply") for item, error in poisoned)
                for unit in result.failed:
                    rejected = RecordRejectedError(unit.error or "could not be applied")
                    dead.extend(
                        _dead(origin[id(item)], rejected, step=unit.failed_step, attempts=unit.attempts)
                        for item in unit.items
                    )
                await _transaction(producer, self._records(result, dead), _offsets(batch), self.group)
                self.applier.commit(result)
                if self.on_batch is not None:
                    self.on_batch(result, len(dead))

    async def _apply(
        self,
        items: list[WorkItem],
        stop: asyncio.Event,
        keepalive: Callable[[], Awaitable[None]],
        *,
        owned: Callable[[], bool],
    ) -> tuple[BatchResult, list[tuple[WorkItem, Exception]]]:
        """Apply a batch through CRM outages. An unexpected error (a bug, a poison record) is retried, then
        the batch is applied item by item so only the items that fail on their own are dead-lettered;
        when every item fails alike the cause is systemic (configuration, a CRM answering nonsense):
        the loop pauses and retries instead of emptying the queue into dead letters."""
        attempt = 0
        while True:
            try:
                return await self._apply_once(items, stop, keepalive, owned), []
            except (CrmUnavailableError, BatchRevokedError):
                raise  # CrmUnavailableError only when stopping: _retrying waits out outages
            except Exception as error:  # noqa: BLE001 -- sorted below: poison record or systemic
                attempt += 1
                log.warning("sync batch of %d failed (attempt %d): %r", len(items), attempt, error)
                if attempt >= UNEXPECTED_ATTEMPTS:
                    break
                await _pause(stop, 0.2 * 2**attempt, None)
        merged, poisoned = BatchResult(), []
        for item in items:
            try:
                merged.merge(await self._apply_once([item], stop, keepalive, owned))
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
            await _pause(stop, 30.0, keepalive)
            return await self._apply(items, stop, keepalive, owned=owned)
        return merged, poisoned

    async def _apply_once(
        self,
        items: list[WorkItem],
        stop: asyncio.Event,
        keepalive: Callable[[], Awaitable[None]],
        owned: Callable[[], bool],
    ) -> BatchResult:
        return await _retrying(
            partial(self.applier.apply, items, owned=owned),
            stop,
            what="sync",
            on_pause=self.on_pause,
            keepalive=keepalive,
        )

    def _records(self, result: BatchResult, dead: list[DeadLetter]) -> list[_Record]:
        """Links, audit records, dead letters and rechecks of one batch: committed with its offsets, all or
        nothing (guarantee 1)."""
        links = self.catalog.name(TopicRole.LINKS)
        audit = self.catalog.name(TopicRole.AUDIT)
        work = self.catalog.name(TopicRole.WORK)
        dead_topic = self.catalog.name(TopicRole.DEADLETTER)
        records: list[_Record] = [
            (links, link_key(link_id).encode(), None, [])
            if link is None
            else (links, link_key(link_id).encode(), LINK_CODEC.encode(link), [LINK_CODEC.header])
            for link_id, link in result.links
        ]
        records += [
            (audit, record.key.encode(), AUDIT_CODEC.encode(record), [AUDIT_CODEC.header])
            for record in result.audits
        ]
        records += [_dead_record(dead_topic, letter) for letter in dead]
        records += [_work_record(work, item) for item in result.rechecks]
        return records


async def _rewind(consumer: AIOKafkaConsumer, batch: Mapping[TopicPartition, Sequence[Raw]]) -> None:
    """Give back what a dropped batch read: a partition of it this member holds (again) reads on from the
    group's committed offset. A rebalance resets positions only when it ends after the read: one that
    ended during the read left them past the batch, which would be skipped."""
    for tp, messages in batch.items():
        if messages and tp in consumer.assignment():
            committed = await consumer.committed(tp)
            consumer.seek(tp, committed if committed is not None else messages[0].offset)


class _Ownership(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """Counts revocations: a batch read in one generation and applied in another is no longer this
    replica's to write or commit (aiokafka's transactional offset commits carry no group generation, so
    Kafka would not refuse the commit of such a zombie batch)."""

    def __init__(self) -> None:
        self.generation = 0

    async def on_partitions_revoked(self, revoked: object) -> None:
        del revoked  # eager protocol: everything is revoked
        self.generation += 1

    async def on_partitions_assigned(self, assigned: object) -> None:
        del assigned


_Record: TypeAlias = tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]
TRANSACTION_DEADLINE_S = 60.0
"""A transaction of the router or the apply loop that has not committed after this long (a broker that
came back while the client's coordinator lookups failed can leave it waiting forever) is given up: the loop
restarts with a new producer of the same transactional id, which fences the old one and aborts its
transaction, and the batch is read again."""


async def _transaction(
    producer: AIOKafkaProducer,
    records: Sequence[_Record],
    offsets: dict[TopicPartition, int],
    group: str,
) -> None:
    """Send ``records`` and commit them with the consumed ``offsets`` in one bounded Kafka transaction."""
    sent: list[asyncio.Future[object]] = []
    try:
        async with asyncio.timeout(TRANSACTION_DEADLINE_S), producer.transaction():
            for topic, key, value, headers in records:
                sent.append(await producer.send(topic, key=key, value=value, headers=headers))
            await producer.send_offsets_to_transaction(offsets, group)
    finally:
        settle(sent)


def _work_record(topic: str, item: WorkItem) -> _Record:
    return (topic, item.route.encode(), WORK_CODEC.encode(item), [WORK_CODEC.header])


def _dead_record(topic: str, letter: DeadLetter) -> _Record:
    return (topic, (letter.key or "").encode(), DEADLETTER_CODEC.encode(letter), [DEADLETTER_CODEC.header])


def _decode_work(
    batch: Mapping[TopicPartition, Sequence[Raw]],
) -> tuple[list[WorkItem], dict[int, Raw], list[DeadLetter]]:
    items: list[WorkItem] = []
    origin: dict[int, Raw] = {}
    dead: list[DeadLetter] = []
    for tp, messages in batch.items():
        for m in messages:
            try:
                item = WORK_CODEC.decode(m.value, Position(tp.topic, tp.partition, m.offset))
            except SchemaError as error:
                dead.append(_dead(m, error))
                continue
            origin[id(item)] = m
            items.append(item)
    return items, origin, dead
