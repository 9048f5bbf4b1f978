"""Synthetic change events for the replay scenario, produced in their own process.

``python -m cdc.tools.bench.replaygen BOOTSTRAP PREFIX EVENTS`` reads both change topics of the catalog under
PREFIX to their end and appends copies of each record's *latest* change event, round-robin over the
records, until the two topics together hold at least EVENTS events. The copies are decoded and re-encoded
with the topic's codec (so each is a valid event) and keep their source key: they are what repeated
reconciler passes over already-synced records would publish. Prints one JSON line: events before, added,
after.
"""

from __future__ import annotations

import asyncio
import itertools
import sys

import orjson
from aiokafka import TopicPartition

from streams.clients import make_consumer, make_producer
from streams.codec import Position
from streams.config import KafkaSettings
from streams.events import CHANGE_CODEC
from streams.topics import CHANGES_ROLES, TopicCatalog

BATCH = 1000


async def _latest(kafka: KafkaSettings, topic: str, partitions: int) -> tuple[int, dict[bytes, bytes]]:
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    latest: dict[bytes, bytes] = {}
    count = 0
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                for messages in (await consumer.getmany(tp, timeout_ms=2_000)).values():
                    for m in messages:
                        if m.key is not None and m.value is not None:
                            event = CHANGE_CODEC.decode(m.value, Position(m.topic, m.partition, m.offset))
                            latest[m.key] = CHANGE_CODEC.encode(event)
                            count += 1
    finally:
        await consumer.stop()
    return count, latest


async def run(bootstrap: str, prefix: str, events: int) -> dict[str, int]:
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    catalog = TopicCatalog.from_settings(kafka)
    sources: list[tuple[str, bytes, bytes]] = []
    before = 0
    for role in CHANGES_ROLES.values():
        spec = catalog[role]
        count, latest = await _latest(kafka, spec.name, spec.partitions)
        before += count
        sources.extend((spec.name, key, value) for key, value in latest.items())
    wanted = max(0, events - before)
    producer = make_producer(kafka, linger_ms=20)
    await producer.start()
    try:
        pending = []
        for topic, key, value in itertools.islice(itertools.cycle(sources), wanted if sources else 0):
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= BATCH:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    added = wanted if sources else 0
    return {"before": before, "added": added, "after": before + added, "records": len(sources)}


def main() -> None:
    bootstrap, prefix, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.stdout.write(orjson.dumps(asyncio.run(run(bootstrap, prefix, events))).decode() + "\n")


if __name__ == "__main__":
    main()
