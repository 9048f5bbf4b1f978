"""`cdc replay`: move a stopped consumer group back (or forward) to a time or to given offsets.

In this order:
1. describe the group: live members mean a running `cdc sync` (or poller) would overwrite the reset with
   its next commit, and Kafka refuses a reset of a group with members anyway; refuse, naming them;
2. work out the new offsets: the first record at or after TIME per partition (``offsets_for_times``; the
   end offset when there is none), or the offsets from the file, checked against each partition's range;
3. unless ``--dry-run``, commit them as the group, with a group-less member (generation -1): the broker
   accepts that only while the group is empty, so a replica that started meanwhile makes it fail.

The sync is idempotent (guarantee 5), so re-reading is safe: the re-read events write nothing the target
already has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from cdc.exits import CliError, ExitCode
from cdc.ops._kafka import (
    Member,
    committed_offsets,
    describe_group,
    group_topics,
    open_reader,
    partitions_of,
    resolve_group,
    start_client,
)
from cdc.settings import Settings
from streams.admin import open_admin
from streams.clients import make_consumer
from streams.topics import TopicCatalog, TopicRole

__all__ = ["GroupBusyError", "PartitionReset", "ReplayPlan", "read_offsets_file", "replay"]

Offsets = Mapping[str, Mapping[int, int]]
RUNBOOK_HINT = (
    "stop the `cdc sync` replicas (all of them: scale the deployment to 0) or whatever consumes the group, "
    "wait until `cdc status` shows it without members, then run the replay again"
)


@dataclass(frozen=True)
class PartitionReset:
    topic: str
    partition: int
    current: int | None
    new: int
    end: int

    @property
    def to_read(self) -> int:
        """Records the group will read from the new offset (transaction markers included)."""
        return max(0, self.end - self.new)

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "current": self.current,
            "new": self.new,
            "end": self.end,
            "to_read": self.to_read,
            "rewind": None if self.current is None else self.current - self.new,
        }


@dataclass
class ReplayPlan:
    group: str
    partitions: list[PartitionReset] = field(default_factory=list)
    members: tuple[Member, ...] = ()
    committed: bool = False

    @property
    def to_read(self) -> int:
        return sum(p.to_read for p in self.partitions)

    def as_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "committed": self.committed,
            "to_read": self.to_read,
            "members": [m.as_json() for m in self.members],
            "partitions": [p.as_json() for p in self.partitions],
        }

    def lines(self) -> list[str]:
        out = [
            f"{p.topic}[{p.partition}] {'-' if p.current is None else p.current} -> {p.new} "
            f"(end {p.end}): {p.to_read} to read"
            for p in self.partitions
        ]
        verb = "reset" if self.committed else "would reset (dry run)"
        out.append(f"group {self.group} {verb}: {self.to_read} events to read")
        return out


def read_offsets_file(path: Path) -> dict[str, dict[int, int]]:
    """``{topic: {partition: offset}}`` from a JSON file, or ValueError saying what is wrong."""
    try:
        raw: Any = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise ValueError(f"cannot read offsets from {path}: {error}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected {{topic: {{partition: offset}}}}")
    offsets: dict[str, dict[int, int]] = {}
    for topic, partitions in raw.items():
        if not isinstance(partitions, dict):
            raise ValueError(f"{path}: {topic!r} must map partitions to offsets")
        try:
            offsets[topic] = {int(p): int(o) for p, o in partitions.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{path}: partitions and offsets of {topic!r} must be integers") from None
    return offsets


def _topic_name(settings: Settings, name: str) -> str:
    """A catalog role (``changes.hubspot``) or a full topic name."""
    try:
        return TopicCatalog.from_settings(settings.kafka).name(TopicRole(name))
    except ValueError:
        return name


async def replay(
    settings: Settings,
    group_name: str,
    *,
    since: datetime | None = None,
    offsets: Offsets | None = None,
    topics: Sequence[str] = (),
    dry_run: bool = False,
) -> ReplayPlan:
    """Plan the reset and, unless ``dry_run``, commit it; CliError(BUSY) while the group has members."""
    if (since is None) == (offsets is None):
        raise CliError("give exactly one of --from TIME and --from-offsets FILE", ExitCode.USAGE)
    kafka = settings.kafka
    group = resolve_group(settings, group_name)
    plan = ReplayPlan(group)
    async with open_admin(kafka) as admin:
        plan.members = (await describe_group(admin, group)).members
        current = await committed_offsets(admin, group)
        chosen = [_topic_name(settings, t) for t in topics]
        if offsets is not None:
            chosen = chosen or list(offsets)
        # The daemon's groups read the catalog's topics; another group, what it has committed on.
        chosen = chosen or list(group_topics(settings).get(group, ())) or sorted({tp.topic for tp in current})
        if not chosen:
            raise CliError(
                f"group {group} has no committed offsets and is not one of the daemon's groups: "
                "name its topics with --topics",
                ExitCode.NOT_FOUND,
            )
        partitions = await partitions_of(admin, chosen)
    async with open_reader(kafka) as reader:
        plan.partitions = await _new_offsets(reader, partitions, current, since, offsets)
    if plan.members:
        listed = "; ".join(str(m) for m in plan.members)
        raise GroupBusyError(
            plan, f"group {group} has {len(plan.members)} live member(s): {listed}. {RUNBOOK_HINT}"
        )
    if not dry_run:
        await _commit(settings, plan)
        plan.committed = True
    return plan


class GroupBusyError(CliError):
    """The group has live members; carries the plan, so a dry run can still show it."""

    def __init__(self, plan: ReplayPlan, message: str) -> None:
        super().__init__(message, ExitCode.BUSY)
        self.plan = plan


async def _new_offsets(
    reader: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    current: Mapping[TopicPartition, int],
    since: datetime | None,
    offsets: Offsets | None,
) -> list[PartitionReset]:
    starts = await reader.beginning_offsets(partitions)
    ends = await reader.end_offsets(partitions)
    if since is not None:
        found = await reader.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
        new = {tp: (ends[tp] if found.get(tp) is None else found[tp].offset) for tp in partitions}
    else:
        offsets = offsets or {}
        new = {}
        for tp in partitions:
            wanted = offsets.get(tp.topic, {}).get(tp.partition)
            if wanted is None:
                continue
            if not starts[tp] <= wanted <= ends[tp]:
                raise CliError(
                    f"offset {wanted} for {tp.topic}[{tp.partition}] is outside what the partition holds "
                    f"({starts[tp]}..{ends[tp]})",
                    ExitCode.USAGE,
                )
            new[tp] = wanted
        unknown = {(t, p) for t, parts in offsets.items() for p in parts} - {
            (tp.topic, tp.partition) for tp in partitions
        }
        if unknown:
            named = ", ".join(f"{t}[{p}]" for t, p in sorted(unknown))
            raise CliError(f"the offsets file names partitions that do not exist: {named}", ExitCode.USAGE)
    return [
        PartitionReset(tp.topic, tp.partition, current.get(tp), new[tp], ends[tp])
        for tp in partitions
        if tp in new
    ]


async def _commit(settings: Settings, plan: ReplayPlan) -> None:
    """Commit as a member that never joins: the broker takes it only while the group is empty."""
    consumer = make_consumer(settings.kafka, group_id=plan.group)
    await start_client(consumer, settings.kafka)
    try:
        partitions = [TopicPartition(p.topic, p.partition) for p in plan.partitions]
        consumer.assign(partitions)
        await consumer.commit(
            {TopicPartition(p.topic, p.partition): OffsetAndMetadata(p.new, "") for p in plan.partitions}
        )
    except CommitFailedError:
        raise CliError(
            f"Kafka refused the reset of group {plan.group}: a member joined meanwhile. {RUNBOOK_HINT}",
            ExitCode.BUSY,
        ) from None
    except KafkaError as error:
        raise CliError(f"Kafka refused the reset of group {plan.group}: {error}", ExitCode.FAILURE) from None
    finally:
        await consumer.stop()
