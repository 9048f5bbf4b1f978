"""What every operator command needs of Kafka: read a topic to its end, describe a group, name groups.

Reads are ``read_committed`` (the sync stage writes links, audit records and dead letters in transactions)
and stop at the end offsets taken when the read began, so a command reports one consistent moment and
returns even while the daemon keeps writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from cdc.exits import CliError, ExitCode
from cdc.settings import Settings
from streams.admin import KafkaUnavailableError, open_admin
from streams.clients import make_consumer
from streams.codec import Position
from streams.config import KafkaSettings
from streams.link_store import LinkIndex
from streams.topics import TopicCatalog, TopicRole

__all__ = [
    "GroupInfo",
    "Member",
    "Raw",
    "committed_offsets",
    "describe_group",
    "group_topics",
    "known_groups",
    "load_links",
    "open_reader",
    "partitions_of",
    "quiet_kafka_logs",
    "resolve_group",
    "scan",
    "start_client",
]

Raw: TypeAlias = ConsumerRecord[bytes, bytes]
IDLE_POLLS = 3
"""Empty polls before a read gives up on reaching the end offset: only transaction markers are left."""
POLL_MS = 400


def quiet_kafka_logs() -> None:
    """A short command reports failures itself, in one line; aiokafka would log rebalances and retries."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def known_groups(settings: Settings) -> dict[str, str]:
    """Short name -> consumer group id of every group the daemon runs."""
    sync = settings.sync.group_prefix
    return {
        "sync-route": f"{sync}sync-route",
        "sync-apply": f"{sync}sync-apply",
        "poll": f"{settings.kafka.topic_prefix}poll",
    }


def group_topics(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Consumer group id -> the topics it reads (its lag is measured on these)."""
    catalog = TopicCatalog.from_settings(settings.kafka)
    groups = known_groups(settings)
    return {
        groups["sync-route"]: (
            catalog.name(TopicRole.CHANGES_HUBSPOT),
            catalog.name(TopicRole.CHANGES_DATAVERSE),
        ),
        groups["sync-apply"]: (catalog.name(TopicRole.WORK),),
        groups["poll"]: (catalog.name(TopicRole.POLL_LEASES),),
    }


def resolve_group(settings: Settings, name: str) -> str:
    """A group id from its short name (``sync-route``, ``sync-apply``, ``poll``) or the id itself."""
    return known_groups(settings).get(name, name)


@dataclass(frozen=True)
class Member:
    """A live member of a consumer group, as an operator would look for it (host, client id)."""

    member_id: str
    client_id: str
    host: str
    partitions: tuple[tuple[str, int], ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "client_id": self.client_id,
            "host": self.host,
            "partitions": [{"topic": t, "partition": p} for t, p in self.partitions],
        }

    def __str__(self) -> str:
        return f"{self.member_id} (client {self.client_id} on {self.host})"


@dataclass(frozen=True)
class GroupInfo:
    group: str
    state: str
    members: tuple[Member, ...]


def _assignment(raw: bytes) -> tuple[tuple[str, int], ...]:
    try:
        decoded = ConsumerProtocolMemberAssignment.decode(raw)
    except Exception:  # noqa: BLE001 -- a group of another protocol: its members still count, unlisted
        return ()
    return tuple(sorted((topic, p) for topic, parts in decoded.assignment for p in parts))


async def describe_group(admin: AIOKafkaAdminClient, group: str) -> GroupInfo:
    """The group's state and live members (none for a group that is empty or never existed)."""
    for response in await admin.describe_consumer_groups([group]):
        for described in response.to_object()["groups"]:
            if described["group"] != group:
                continue
            members = tuple(
                Member(
                    member_id=m["member_id"],
                    client_id=m["client_id"],
                    host=m["client_host"].lstrip("/"),
                    partitions=_assignment(m["member_assignment"]),
                )
                for m in described["members"]
            )
            return GroupInfo(group, described["state"] or "Dead", members)
    return GroupInfo(group, "Dead", ())


async def committed_offsets(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    """The group's committed offsets (partitions it never committed are absent)."""
    raw = await admin.list_consumer_group_offsets(group)
    return {
        TopicPartition(tp.topic, tp.partition): int(om.offset) for tp, om in raw.items() if om.offset >= 0
    }


async def start_client(client: Any, kafka: KafkaSettings) -> None:
    """Start a producer or consumer, or raise :class:`KafkaUnavailableError` (exit 69) like `open_admin`."""
    try:
        await asyncio.wait_for(client.start(), kafka.connect_timeout_s)
    except (TimeoutError, KafkaError, OSError) as error:
        await client.stop()
        raise KafkaUnavailableError(
            f"cannot reach Kafka at {kafka.bootstrap_servers} within {kafka.connect_timeout_s:g}s "
            f"({str(error) or type(error).__name__}); check CDC_KAFKA__BOOTSTRAP_SERVERS and the security "
            "settings"
        ) from None


@contextlib.asynccontextmanager
async def open_reader(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaConsumer]:
    """A started group-less ``read_committed`` consumer, stopped on exit."""
    consumer = make_consumer(kafka, group_id=None)
    await start_client(consumer, kafka)
    try:
        yield consumer
    finally:
        await consumer.stop()


async def partitions_of(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> list[TopicPartition]:
    """The topics' partitions as the cluster has them, or a DRIFT error that says how to create a topic."""
    described = {t["topic"]: t for t in await admin.describe_topics(list(topics))}
    missing = [topic for topic in topics if not described.get(topic, {}).get("partitions")]
    if missing:
        raise CliError(f"topic {', '.join(missing)} does not exist: run `cdc topics ensure`", ExitCode.DRIFT)
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(part["partition"] for part in described[topic]["partitions"])
    ]


async def scan(
    kafka: KafkaSettings,
    topic: str,
    on_record: Callable[[Raw], None],
    *,
    since: datetime | None = None,
) -> int:
    """Feed every record of ``topic`` (from ``since``, else the beginning) to the current end; a count.

    Raises KafkaUnavailableError when the cluster does not answer, CliError(DRIFT) when the topic is missing.
    """
    async with open_admin(kafka) as admin:
        partitions = await partitions_of(admin, [topic])
    async with open_reader(kafka) as consumer:
        consumer.assign(partitions)
        await _seek(consumer, partitions, since)
        ends: Mapping[TopicPartition, int] = await consumer.end_offsets(partitions)
        remaining = await _unfinished(consumer, partitions, ends)
        seen = idle = 0
        while remaining and idle < IDLE_POLLS:
            batch = await consumer.getmany(*remaining, timeout_ms=POLL_MS, max_records=5_000)
            idle = 0 if batch else idle + 1
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset < ends[tp]:
                        on_record(message)
                        seen += 1
            remaining = await _unfinished(consumer, remaining, ends)
        return seen


async def _seek(consumer: AIOKafkaConsumer, partitions: list[TopicPartition], since: datetime | None) -> None:
    if since is None:
        await consumer.seek_to_beginning(*partitions)
        return
    found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
    for tp in partitions:
        at = found.get(tp)
        if at is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, at.offset)


async def _unfinished(
    consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition], ends: Mapping[TopicPartition, int]
) -> list[TopicPartition]:
    return [tp for tp in partitions if await consumer.position(tp) < ends[tp]]


async def load_links(kafka: KafkaSettings) -> LinkIndex:
    """The `links` topic as the sync stage sees it (newest revision per link, tombstones applied)."""
    index = LinkIndex()
    await scan(
        kafka,
        TopicCatalog.from_settings(kafka).name(TopicRole.LINKS),
        lambda m: index.apply_record(m.key, m.value, Position(m.topic, m.partition, m.offset)),
    )
    return index
