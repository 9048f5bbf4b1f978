"""The topic catalog: every topic the daemon reads or writes, with its partitions and configs.

Names are `<prefix><suffix>`; the suffixes below are the contract between the roles. Keys are documented
next to each topic's schema (`streams.events`, `streams.links`, ...).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from streams.config import KafkaSettings
from streams.keys import SourceSystem

DAY_MS = 24 * 60 * 60 * 1000
LEASE_PARTITIONS = 16
"""Partitions of the lease topic: more than the tables one daemon polls (at most 4 + 3), so that tables
rarely share a partition, and fixed, because every replica must map a table to the same partition."""
PARKED_DAYS = 14
"""How long a parked work item is kept: as long as the change topics keep a change, so pausing one step
is no riskier than pausing everything."""


class TopicRole(StrEnum):
    """What a topic is for; the suffix of its name."""

    CHANGES_HUBSPOT = "changes.hubspot"
    CHANGES_DATAVERSE = "changes.dataverse"
    LINKS = "links"
    CHECKPOINTS = "checkpoints"
    DEADLETTER = "deadletter"
    AUDIT = "audit"
    POLL_LEASES = "poll.leases"
    WORK = "sync.work"
    """Changes re-keyed by the sync stage to their pair (link id or match key): one owner per pair."""
    SENT = "sync.sent"
    """What a sync replica is about to write, durable before it writes (`streams.sent_log`)."""
    BUDGET = "budget"
    """Each process's use of the CRMs' API limits (`streams.budget`)."""
    EXCLUSIONS = "exclusions"
    """Records the sync refuses or skips, with the reason, until they sync (`streams.exclusions`)."""
    CONTROL = "control"
    """What an operator paused: everything or one step (`streams.control`)."""
    PARKED = "sync.parked"
    """Work items of a paused step, parked in order until it resumes (`consumers.parking`)."""


CHANGES_ROLES: Mapping[SourceSystem, TopicRole] = MappingProxyType(
    {SourceSystem.HUBSPOT: TopicRole.CHANGES_HUBSPOT, SourceSystem.DATAVERSE: TopicRole.CHANGES_DATAVERSE}
)
"""Each source system's change topic."""


@dataclass(frozen=True)
class TopicSpec:
    """One topic as the catalog wants it."""

    role: TopicRole
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": str(self.role),
            "partitions": self.partitions,
            "replication_factor": self.replication_factor,
            "config": dict(sorted(self.config.items())),
            "description": self.description,
        }


def _compacted(**extra: str) -> dict[str, str]:
    # Links and checkpoints are tables: the newest value per key is the state, tombstones delete.
    return {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", **extra}


def _retained(days: int) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(days * DAY_MS)}


@dataclass(frozen=True)
class TopicCatalog:
    """All topics under one prefix. Build it with :meth:`from_settings`."""

    topics: tuple[TopicSpec, ...]

    @classmethod
    def from_settings(cls, kafka: KafkaSettings) -> TopicCatalog:
        prefix, rf, wide = kafka.topic_prefix, kafka.replication_factor, kafka.partitions
        # With replicas, a write acknowledged by acks=all must sit on two brokers before it counts.
        durable = {"min.insync.replicas": str(min(2, rf))} if rf > 1 else {}

        def spec(role: TopicRole, partitions: int, config: dict[str, str], description: str) -> TopicSpec:
            return TopicSpec(
                role=role,
                name=f"{prefix}{role}",
                partitions=partitions,
                replication_factor=rf,
                config=MappingProxyType({**config, **durable}),
                description=description,
            )

        return cls(
            topics=(
                spec(
                    TopicRole.CHANGES_HUBSPOT,
                    wide,
                    _retained(14),
                    "HubSpot change events (webhooks, reconciler, resync), keyed by source record.",
                ),
                spec(
                    TopicRole.CHANGES_DATAVERSE,
                    wide,
                    _retained(14),
                    "Dataverse change events (change-tracking poller, resync), keyed by source record.",
                ),
                spec(
                    TopicRole.LINKS,
                    wide,
                    _compacted(),
                    "Cross-system record links with per-field fingerprints; compacted, keyed by link id.",
                ),
                spec(
                    TopicRole.CHECKPOINTS,
                    1,
                    _compacted(),
                    "Poller cursors and delta links; compacted, keyed by source/tenant/object.",
                ),
                spec(
                    TopicRole.DEADLETTER,
                    1,
                    _retained(30),
                    "Events that could not be applied after their retries, with the error.",
                ),
                spec(
                    TopicRole.AUDIT,
                    wide,
                    _retained(30),
                    "One record per write: fields old -> new and the rule that chose each value.",
                ),
                spec(
                    TopicRole.POLL_LEASES,
                    LEASE_PARTITIONS,
                    _retained(1),
                    "Stays empty: each partition stands for the tables hashed to it; the `<prefix>poll` "
                    "consumer group's assignment says which `cdc poll` replica polls them.",
                ),
                spec(
                    TopicRole.WORK,
                    wide,
                    _retained(7),
                    "Changes re-keyed to their pair (link id, or match key before linking) for sync.",
                ),
                spec(
                    TopicRole.SENT,
                    wide,
                    _compacted(),
                    "What a sync replica is about to write, acknowledged before the write and cleared in "
                    "the transaction that links it; compacted, keyed by the written record.",
                ),
                spec(
                    TopicRole.BUDGET,
                    1,
                    _compacted(**{"segment.ms": str(60 * 60 * 1000), "delete.retention.ms": "60000"}),
                    "Each process's use of the CRMs' API limits, about once a second; compacted, keyed by "
                    "process, a tombstone at a clean stop.",
                ),
                spec(
                    TopicRole.EXCLUSIONS,
                    wide,
                    _compacted(),
                    "Records the sync refuses or skips (reason, step, the values that caused it); "
                    "compacted, keyed by source record, a tombstone once the record syncs.",
                ),
                spec(
                    TopicRole.CONTROL,
                    1,
                    _compacted(),
                    "What an operator paused (`cdc pause`): everything ('*') or one step; compacted, "
                    "keyed by what is paused.",
                ),
                spec(
                    TopicRole.PARKED,
                    wide,
                    _retained(PARKED_DAYS),
                    "Work items of a paused step, in order, replayed on resume; keyed and partitioned as the "
                    "work topic.",
                ),
            )
        )

    def __iter__(self) -> Iterator[TopicSpec]:
        return iter(self.topics)

    def name(self, role: TopicRole) -> str:
        return self[role].name

    def changes_topic(self, system: SourceSystem) -> str:
        """The topic that carries ``system``'s change events."""
        return self.name(CHANGES_ROLES[system])

    def __getitem__(self, role: TopicRole) -> TopicSpec:
        for topic in self.topics:
            if topic.role is role:
                return topic
        raise KeyError(role)

    def as_json(self) -> list[dict[str, Any]]:
        return [topic.as_json() for topic in self.topics]
