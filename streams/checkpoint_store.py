"""Pollers' cursors: read back from the compacted `checkpoints` topic, moved atomically with their events.

Guarantee 1 for pollers: a cursor moves only with the events it covers. :class:`TransactionalChangeWriter`
puts a batch of change events and the checkpoint after them into one Kafka transaction, so a reader with
``read_committed`` sees both or neither; a crash before the commit re-reads from the old cursor (a
duplicate at worst, never a loss). Its transactional id is per poller and table: a second poller for the
same table fences the first (its next commit fails with :class:`WriterFencedError`), so two pollers never
move one cursor. Whoever takes a table over starts its writer *before* it reads the checkpoint: starting
fences the earlier writer and aborts its open transaction, so the checkpoint read afterwards is final.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka.errors import (
    IllegalOperation,
    InvalidProducerEpoch,
    KafkaError,
    ProducerFenced,
    UnknownError,
)

from streams.checkpoints import CHECKPOINT_CODEC, Checkpoint
from streams.clients import make_consumer, make_producer, partitions_of, running, settle, start_or_close
from streams.codec import Position
from streams.config import KafkaSettings
from streams.events import CHANGE_CODEC, ChangeEvent
from streams.topics import TopicCatalog, TopicRole

__all__ = ["TransactionalChangeWriter", "WriterFencedError", "read_checkpoints"]


log = logging.getLogger(__name__)


class WriterFencedError(RuntimeError):
    """A newer writer with the same transactional id started: this one can never commit again.

    Not a failure of the process: another poller owns the table now. Stop polling it; its transaction was
    aborted, so nothing of it is visible to ``read_committed`` readers.
    """

    def __init__(self, transactional_id: str) -> None:
        super().__init__(f"transactional id {transactional_id!r} was taken over by a newer writer")
        self.transactional_id = transactional_id


async def read_checkpoints(kafka: KafkaSettings) -> dict[str, Checkpoint]:
    """The newest checkpoint per key (``checkpoint/<system>/<tenant>/<object>``); tombstones remove keys."""
    spec = TopicCatalog.from_settings(kafka)[TopicRole.CHECKPOINTS]
    async with running(make_consumer(kafka, group_id=None)) as consumer:
        partitions = await partitions_of(consumer, spec.name)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        latest: dict[str, Checkpoint] = {}
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                for messages in (await consumer.getmany(tp, timeout_ms=2_000)).values():
                    for message in messages:
                        key = message.key.decode()
                        if message.value is None:
                            latest.pop(key, None)
                            continue
                        where = Position(message.topic, message.partition, message.offset)
                        latest[key] = CHECKPOINT_CODEC.decode(message.value, where)
        return latest


class TransactionalChangeWriter:
    """Change events plus the checkpoint that covers them, committed as one Kafka transaction."""

    def __init__(self, kafka: KafkaSettings, transactional_id: str) -> None:
        self._catalog = TopicCatalog.from_settings(kafka)
        self._checkpoints = self._catalog.name(TopicRole.CHECKPOINTS)
        self.transactional_id = transactional_id
        self._producer: Any = make_producer(kafka, transactional_id=transactional_id)
        self._started = False
        self._fenced = False

    async def start(self) -> None:
        """Connect and register the transactional id: from here on, any earlier writer of it is fenced.
        A failed start closes what it opened."""
        await start_or_close(self._producer)
        self._started = True

    async def stop(self) -> None:
        """Close; an open transaction is aborted by the broker. Idempotent."""
        if not self._started:
            return
        self._started = False
        await self._producer.stop()

    def _producer_is_dead(self) -> bool:
        """True once the client's transaction manager went fatal: it takes no more transactions."""
        manager = getattr(self._producer, "_txn_manager", None)
        return manager is not None and bool(manager.is_fatal_error())

    async def commit(self, events: Sequence[ChangeEvent], checkpoint: Checkpoint) -> None:
        """Publish ``events`` and ``checkpoint`` atomically; returns once the transaction is committed.

        Raises :class:`WriterFencedError` when a newer writer took the transactional id over (then and on
        every later call: a fenced producer is dead).
        """
        if self._fenced:
            raise WriterFencedError(self.transactional_id)
        sent: list[asyncio.Future[Any]] = []
        try:
            async with self._producer.transaction():
                for event in events:
                    sent.append(  # noqa: PERF401 -- kept one by one: a later send may fail
                        await self._producer.send(
                            self._catalog.changes_topic(event.source),
                            CHANGE_CODEC.encode(event),
                            key=event.key.encode(),
                            headers=[CHANGE_CODEC.header],
                        )
                    )
                sent.append(
                    await self._producer.send(
                        self._checkpoints,
                        CHECKPOINT_CODEC.encode(checkpoint),
                        key=checkpoint.key.encode(),
                        headers=[CHECKPOINT_CODEC.header],
                    )
                )
        except (ProducerFenced, InvalidProducerEpoch):
            self._fenced = True
            raise WriterFencedError(self.transactional_id) from None
        except (KafkaError, IllegalOperation) as error:
            if type(error) not in (KafkaError, UnknownError) and not self._producer_is_dead():
                raise  # timeouts, connection errors: the caller retries
            # A newer writer's epoch bump reaches this producer in more than one shape: an error code the
            # client does not know (UnknownError) at the transaction's end, or a fence the sender saw while
            # adding a partition, after which the next send finds no transaction (IllegalOperation). The
            # producer is dead either way and the likeliest cause is a new owner. Treated as a fence: the
            # table stops, the process runs on.
            log.warning(
                "transactional id %r: transaction failed (%r); treating it as fenced",
                self.transactional_id,
                error,
            )
            self._fenced = True
            raise WriterFencedError(self.transactional_id) from error
        finally:
            settle(sent)
