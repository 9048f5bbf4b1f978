"""Producer, consumer and admin factories over aiokafka, configured from :class:`KafkaSettings`.

The defaults are the guarantees, not options: producers are idempotent with ``acks=all`` (no lost or
doubled write on retry); consumers never auto-commit and read only committed transactional data, so an
offset moves only after its effect is durable (guarantee 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner, murmur2

from streams.config import KafkaSettings

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 30.0
"""How long closing a client may take (a producer flushes what it holds first) before it is abandoned."""


def connection_options(kafka: KafkaSettings) -> dict[str, Any]:
    """The keyword arguments every aiokafka client takes for where and how to connect."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "client_id": kafka.client_id,
        "request_timeout_ms": kafka.request_timeout_ms,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.uses_ssl:
        options["ssl_context"] = _ssl_context(kafka)
    if kafka.sasl_mechanism is not None:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password is not None else None
        )
    return options


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None,
        certfile=str(kafka.ssl_certfile) if kafka.ssl_certfile else None,
        keyfile=str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None,
        password=kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None,
    )
    context.check_hostname = kafka.ssl_check_hostname
    return context


TRANSACTION_TIMEOUT_MS = 10_000
"""Our transactions last milliseconds (a page or a batch is fetched and applied before one begins). One
left open by a process killed mid-commit hides every later record of its partitions from ``read_committed``
readers until the broker aborts it after this long (Kafka's client default is 60 s)."""


PRODUCE_BATCH_BYTES = 512 * 1024
"""Bytes of records per partition in one produce batch, before compression (aiokafka's default, 16 KiB, is
eight work items: the router's transaction of a thousand was some 125 batches, each compressed, sent and
acknowledged on its own). Under the broker's ``message.max.bytes`` (1 MiB by default) with room to spare; a
batch still goes once ``linger_ms`` is over or a transaction commits, full or not."""


@functools.lru_cache(maxsize=1 << 16)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_for(key: bytes | bytearray | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's default partitioner (the Java client's murmur2 of the key, so every producer, ours or
    not, puts a key on one partition), with each key's hash remembered: murmur2 is pure Python in aiokafka,
    and the router and apply loop hash the same routes again and again (2% of a replay's samples)."""
    if key is None:
        return int(DefaultPartitioner()(key, all_partitions, available))
    return all_partitions[_key_hash(bytes(key)) % len(all_partitions)]


def make_producer(
    kafka: KafkaSettings, *, transactional_id: str | None = None, linger_ms: int = 5
) -> AIOKafkaProducer:
    """An idempotent ``acks=all`` producer; transactional when given an id (poller checkpoints)."""
    return AIOKafkaProducer(
        **connection_options(kafka),
        acks="all",
        enable_idempotence=True,
        compression_type=None if kafka.compression == "none" else kafka.compression,
        linger_ms=linger_ms,
        max_batch_size=PRODUCE_BATCH_BYTES,
        partitioner=partition_for,
        transactional_id=transactional_id,
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
    )


def make_consumer(
    kafka: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A manual-commit, ``read_committed`` consumer that starts from the earliest offset when it has none."""
    options: dict[str, Any] = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **connection_options(kafka), **options)


def make_admin(kafka: KafkaSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**connection_options(kafka))


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions as the cluster has them (not as configured: a topic made with another count
    is read whole), from fresh metadata; empty when the topic does not exist."""
    # The consumer's own metadata covers only what it reads already; the client fetches the whole cluster's.
    cluster = await consumer._client.fetch_all_metadata()  # no public call for it
    return [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]


class _Client(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


C = TypeVar("C", bound=_Client)


async def start_or_close(client: _Client) -> None:
    """Start an aiokafka client; when that fails halfway (a broker down), close what it opened (its
    connections and background tasks) before the error goes on."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise


@contextlib.asynccontextmanager
async def running(client: C, *, stop_timeout_s: float = STOP_TIMEOUT_S) -> AsyncIterator[C]:
    """Start an aiokafka producer or consumer and always close it: on exit, and also when ``start`` fails
    halfway (a broker down), which otherwise leaves the client's connections and background tasks open.
    Closing is bounded: a producer that cannot flush to a broker gone for good is abandoned after
    ``stop_timeout_s`` with a warning instead of holding the shutdown."""
    await start_or_close(client)
    try:
        yield client
    finally:
        try:
            await asyncio.wait_for(client.stop(), stop_timeout_s)
        except TimeoutError:
            log.warning("%s did not close within %.0fs; abandoned", type(client).__name__, stop_timeout_s)


def settle(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Mark the outcome of send futures as seen. In a transaction the commit is the answer; when it fails,
    each send's own failure only repeats it and would be logged again as 'never retrieved'."""
    for future in futures:
        if future.done() and not future.cancelled():
            future.exception()


async def seek_to_time(consumer: AIOKafkaConsumer, partition: TopicPartition, since_ms: int) -> None:
    """Read ``partition`` from its first record stamped at or after ``since_ms`` (ms since the epoch), or
    from its end when there is none: what is older is not read at all (Kafka's time index finds it)."""
    found = (await consumer.offsets_for_times({partition: since_ms})).get(partition)
    if found is None:
        await consumer.seek_to_end(partition)
    else:
        consumer.seek(partition, found.offset)


async def caught_up(
    consumer: AIOKafkaConsumer,
    read_to: Mapping[TopicPartition, int],
    stop: asyncio.Event,
    *,
    patience_s: float,
    what: str,
) -> bool:
    """Wait until a tail has taken in everything committed to its partitions before this call: until
    ``read_to`` (per partition, the offset the tail has taken in everything before; kept up to date by the
    tail) reaches the partitions' last stable offsets (an open transaction's records are not committed
    yet). False, logged, when ``stop`` is set or ``patience_s`` passed first (the broker unreachable: the
    end offsets' request is bounded too)."""
    try:
        async with asyncio.timeout(patience_s):
            ends = await consumer.end_offsets(list(consumer.assignment()))
            while any(read_to.get(tp, 0) < end for tp, end in ends.items()):
                if stop.is_set():
                    return False
                await asyncio.sleep(0.01)
    except TimeoutError:
        log.warning("%s still behind its topic after %.0fs: applying anyway", what, patience_s)
        return False
    return True


async def read_to_end(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    take: Callable[[dict[TopicPartition, list[Any]]], int],
    *,
    max_records: int,
) -> int:
    """Hand every batch to ``take`` until each partition's position reaches the end offsets of now (an
    end only transaction markers precede is reached after 8 empty reads); the count ``take`` returned."""
    end = await consumer.end_offsets(partitions)
    taken = idle = 0
    while any([int(await consumer.position(tp)) < end[tp] for tp in partitions]):
        batch = await consumer.getmany(timeout_ms=250, max_records=max_records)
        if not batch:
            idle += 1
            if idle >= 8:  # only transaction markers left before the end offsets  # noqa: PLR2004
                break
            continue
        idle = 0
        taken += take(batch)
    return taken
