"""The latency baseline: raw aiokafka produce -> consume on the same broker, in its own process.

``python -m cdc.tools.bench.kafka_latency BOOTSTRAP TOPIC PARTITIONS RATE SECONDS`` sends RATE messages/s for
SECONDS (idempotent, acks=all, as the daemon produces) to TOPIC, which a consumer in the same process reads
from its end; each message carries its send time, so one clock measures produce -> consume. This is the
best any Kafka-based pipeline can do (the "ceiling" of the table): one hop, no CRM, no webhook, no poll.
Prints one JSON line of latencies.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
from aiokafka import TopicPartition

from streams.clients import make_consumer, make_producer
from streams.config import KafkaSettings


async def run(bootstrap: str, topic: str, partitions: int, rate: float, seconds: float) -> dict[str, object]:
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    total = max(1, int(rate * seconds))
    producer = make_producer(kafka, linger_ms=0)
    consumer = make_consumer(kafka, group_id=None, isolation_level="read_uncommitted")
    await producer.start()
    await consumer.start()
    latencies: list[float] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)

        async def consume() -> None:
            while len(latencies) < total:
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    now = time.time()
                    latencies.extend(now - orjson.loads(m.value)["t"] for m in messages)

        reader = asyncio.create_task(consume())
        started = time.perf_counter()
        for n in range(total):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send(topic, orjson.dumps({"n": n, "t": time.time()}), key=str(n).encode())
        await producer.flush()
        await asyncio.wait_for(reader, 60)
    finally:
        await consumer.stop()
        await producer.stop()
    return {"messages": total, "latencies_s": latencies}


def main() -> None:
    bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rate, seconds = float(sys.argv[4]), float(sys.argv[5])
    sys.stdout.write(
        orjson.dumps(asyncio.run(run(bootstrap, topic, partitions, rate, seconds))).decode() + "\n"
    )


if __name__ == "__main__":
    main()
