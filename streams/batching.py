"""How long a consume loop waits for its batch to fill: not at all when it is idle, up to a bound while a
backlog is arriving.

A fixed wait (the loops waited 5 ms after the first record) costs an idle loop latency on every change and
still hands on part-full batches under load: a burst that spans more than the wait is cut into several
batches, and each batch costs the CRMs its reads, lookups and writes. Kafka answers the same trade-off
twice, by a bound on waiting for more: the producer's ``linger.ms`` (a part-full batch waits up to that long
for more records before it is sent) and the consumer's ``fetch.min.bytes`` with ``fetch.max.wait.ms`` (the
broker holds a fetch until enough data is there or the wait is over). Here the loop's own fetch is told
whether more is coming by the partitions' backlog, the high watermark each fetch response carries minus the
position: records already written, or being written in a transaction still open, that this consumer has
not read. So:

- a batch that is full goes at once;
- a part-full batch with no backlog behind it goes at once: the loop is idle, nothing is worth waiting for;
- a part-full batch with a backlog waits for more, up to ``bound_s`` from its first record.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord

__all__ = ["FIRST_POLL_MS", "Linger", "backlog", "collect"]

Raw: TypeAlias = ConsumerRecord[bytes, bytes]
FIRST_POLL_MS = 200
"""How long a poll waits for a batch's first record (an idle loop then goes round: beats, lag, stop)."""
MARKER_SLACK = 1
"""Per partition, the offsets past the position that may hold no record: a transaction's commit marker
takes an offset of its own, which the position passes only once the next fetch has read it."""


@dataclass(frozen=True, slots=True)
class Linger:
    """A batch's bounds: at most ``max_records``, waited for at most ``bound_s`` after its first record."""

    max_records: int
    bound_s: float

    def wait_s(self, *, have: int, waited_s: float, backlog: int) -> float | None:
        """How long to wait for more before the batch of ``have`` records (the first one ``waited_s`` ago)
        is handed on, with ``backlog`` records known to be behind it; None: hand it on now."""
        if have == 0 or have >= self.max_records or backlog <= 0:
            return None
        left = self.bound_s - waited_s
        return left if left > 0 else None


async def backlog(consumer: AIOKafkaConsumer) -> int:
    """Records behind the consumer's position on its assigned partitions, as the last fetch responses tell
    (no request): their high watermark minus the position, less `MARKER_SLACK`."""
    behind = 0
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        with contextlib.suppress(IllegalStateError):  # revoked meanwhile: nothing of it to wait for
            behind += max(0, high - await consumer.position(tp) - MARKER_SLACK)
    return behind


async def collect(
    consumer: AIOKafkaConsumer,
    *,
    max_records: int,
    wait_ms: int,
    clock: Callable[[], float] = time.monotonic,
) -> dict[TopicPartition, list[Raw]]:
    """Up to ``max_records`` messages: wait up to `FIRST_POLL_MS` for the first, then for more as `Linger`
    says (``wait_ms``: its bound)."""
    linger = Linger(max_records=max_records, bound_s=wait_ms / 1000)
    batch: dict[TopicPartition, list[Raw]] = await consumer.getmany(
        timeout_ms=FIRST_POLL_MS, max_records=max_records
    )
    started, total = clock(), _count(batch)
    while True:
        wait = linger.wait_s(have=total, waited_s=clock() - started, backlog=await backlog(consumer))
        if wait is None:
            return batch
        more = await consumer.getmany(timeout_ms=max(1, round(wait * 1000)), max_records=max_records - total)
        if not more:
            return batch  # the backlog stayed out of reach (a transaction still open) for the whole bound
        for tp, messages in more.items():
            batch.setdefault(tp, []).extend(messages)
        total += _count(more)


def _count(batch: Mapping[TopicPartition, Sequence[Raw]]) -> int:
    return sum(len(messages) for messages in batch.values())
