"""The baseline: raw aiokafka produce to the same broker, run in its own process (the ingest ceiling).

``python -m cdc.tools.bench.produce BOOTSTRAP TOPIC EVENTS`` sends EVENTS change events of the same size
as the webhook path produces, idempotent with acks=all like the receiver, awaiting each batch of 100 as the
receiver does per request, with up to 64 batches in flight; prints one JSON line with events/s.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime

import orjson

from cdc.hubspot.events import parse_body, translate
from cdc.tools.bench.loadgen import BATCH, MAX_IN_FLIGHT, batch_body
from streams.clients import make_producer
from streams.config import KafkaSettings
from streams.events import CHANGE_CODEC


async def run(bootstrap: str, topic: str, events: int) -> dict[str, float]:
    producer = make_producer(KafkaSettings(bootstrap_servers=bootstrap), linger_ms=2)
    await producer.start()
    template = [translate(e, datetime.now(UTC)).event for e in parse_body(batch_body(0))]
    encoded = [(CHANGE_CODEC.encode(e), e.key.encode()) for e in template]
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def send_batch() -> None:
        try:
            futures = [await producer.send(topic, value, key=key) for value, key in encoded]
            await asyncio.gather(*futures)
        finally:
            gate.release()

    try:
        started = time.perf_counter()
        async with asyncio.TaskGroup() as tasks:
            for _ in range(max(1, events // BATCH)):
                await gate.acquire()
                tasks.create_task(send_batch())
        wall = time.perf_counter() - started
    finally:
        await producer.stop()
    sent = max(1, events // BATCH) * BATCH
    return {"events": sent, "wall_s": wall, "events_per_s": sent / wall}


def main() -> None:
    bootstrap, topic, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.stdout.write(orjson.dumps(asyncio.run(run(bootstrap, topic, events))).decode() + "\n")


if __name__ == "__main__":
    main()
