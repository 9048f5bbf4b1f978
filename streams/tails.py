"""A topic read whole from its start, then tailed: the table-like topics every sync replica holds in full
(`streams.sent_log`, `streams.exclusion_view`).

`TopicTail.open` assigns every partition (the topic must exist), reads to the end offsets of now and keeps
the consumer; `run` hands every later batch to the owner's ``take`` until stopped; `caught_up` waits until
the tail has taken in everything committed before the call (a replica given work partitions, before its
first batch, as for the links).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.admin import TopicAdminError
from streams.clients import caught_up, make_consumer, partitions_of, read_to_end, start_or_close
from streams.config import KafkaSettings

__all__ = ["Take", "TopicTail"]

Take = Callable[[dict[TopicPartition, list[Any]]], int]
"""Told of each batch read; returns how many records it held."""


class TopicTail:
    """One topic's consumer, from its start: read to its end, then tailed."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        take: Take,
        *,
        what: str,
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.take = take
        self.what = what
        """How logs name it (``notes tail``)."""
        self.on_beat = on_beat
        self._consumer: AIOKafkaConsumer | None = None
        self._read_to: dict[TopicPartition, int] = {}

    @property
    def opened(self) -> bool:
        return self._consumer is not None

    async def open(self) -> None:
        """Read the topic from its start to its end offsets of now; `run` tails on from there."""
        consumer = make_consumer(self.kafka, group_id=None)
        await start_or_close(consumer)
        self._consumer = consumer
        try:
            partitions = await partitions_of(consumer, self.topic)
            if not partitions:
                raise TopicAdminError(f"topic {self.topic} does not exist: run `cdc topics ensure` first")  # noqa: TRY301 -- closed below
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            await read_to_end(consumer, partitions, self.take, max_records=5_000)
            await self._note_positions(consumer)
        except BaseException:
            await self.close()
            raise

    async def run(self, stop: asyncio.Event) -> None:
        """Hand every batch to ``take`` until ``stop``, beating ``on_beat`` at least every 200 ms."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError(f"{self.what} run before open")
        while not stop.is_set():
            if self.on_beat is not None:
                self.on_beat()
            self.take(await consumer.getmany(timeout_ms=200, max_records=5_000))
            await self._note_positions(consumer)

    async def caught_up(self, stop: asyncio.Event, *, patience_s: float = 20.0) -> bool:
        """Wait until the tail has taken in everything committed before this call. False, logged, when
        ``patience_s`` passed first (the broker away)."""
        consumer = self._consumer
        if consumer is None:
            return True
        return await caught_up(consumer, self._read_to, stop, patience_s=patience_s, what=self.what)

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        self._consumer = None

    async def _note_positions(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            self._read_to[tp] = int(await consumer.position(tp))
