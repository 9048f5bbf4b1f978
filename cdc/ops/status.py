"""`cdc status`: how far behind each consumer group is, how fresh the pollers are, what is stuck.

Gathering is I/O (admin requests and reads of the checkpoints, deadletter and links topics); judging it
is :func:`problems`, a pure function of the report and the thresholds, so the exit code is easy to test.
Lag in records is ``end - committed``; on topics written in transactions the commit markers count too, so
it is an upper bound. Lag in seconds is the age of the oldest unconsumed record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from cdc.ops._kafka import (
    POLL_MS,
    GroupInfo,
    committed_offsets,
    describe_group,
    group_topics,
    known_groups,
    load_links,
    open_reader,
    partitions_of,
)
from cdc.ops._times import age_s
from cdc.ops.deadletters import load_book
from cdc.ops.pauses import TopicWait, retention_warnings, topic_waits
from cdc.settings import Settings
from streams.admin import open_admin
from streams.checkpoint_store import read_checkpoints
from streams.control import EVERYTHING, Pauses, read_pauses
from streams.topics import TopicCatalog, TopicRole

__all__ = ["GroupStatus", "PartitionLag", "StatusReport", "Thresholds", "gather_status", "problems", "render"]

HEAD_POLLS = 4
"""Polls to find the oldest unconsumed record of every lagging partition before leaving its age unknown."""


@dataclass(frozen=True)
class Thresholds:
    max_lag_s: float = 60.0
    max_checkpoint_age_s: float = 300.0
    fail_on_deadletters: bool = False


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int
    lag_s: float | None
    """Age of the oldest unconsumed record; 0 without lag; None when it could not be read."""

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "committed": self.committed,
            "end": self.end,
            "lag": self.lag,
            "lag_s": None if self.lag_s is None else round(self.lag_s, 3),
        }


@dataclass(frozen=True)
class GroupStatus:
    name: str
    group: str
    info: GroupInfo
    partitions: tuple[PartitionLag, ...]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def max_lag_s(self) -> float:
        return max((p.lag_s or 0.0 for p in self.partitions), default=0.0)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "state": self.info.state,
            "members": [m.as_json() for m in self.info.members],
            "lag": self.lag,
            "max_lag_s": round(self.max_lag_s, 3),
            "partitions": [p.as_json() for p in self.partitions],
        }


@dataclass
class StatusReport:
    at: datetime
    groups: list[GroupStatus] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    deadletters: dict[str, Any] = field(default_factory=dict)
    links: dict[str, Any] = field(default_factory=dict)
    pauses: Pauses = field(default_factory=Pauses)
    parked: tuple[PartitionLag, ...] = ()
    """The parked topic's partitions, read from the apply group's offsets: the items of paused steps."""
    waits: list[TopicWait] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "at": self.at.isoformat(),
            "problems": self.problems,
            "groups": [g.as_json() for g in self.groups],
            "checkpoints": self.checkpoints,
            "deadletters": self.deadletters,
            "links": self.links,
            "paused": {
                target: {"by": p.by, "since": p.at.isoformat(), "reason": p.reason}
                for target, p in self.pauses.active.items()
            },
            "parked": sum(p.lag for p in self.parked),
            "waiting": [
                {"topic": w.topic, "age_s": round(w.age_s, 3), "retention_s": w.retention_s}
                for w in self.waits
            ],
        }


def problems(report: StatusReport, limits: Thresholds) -> list[str]:
    """What is unhealthy, one sentence each; empty when all is well."""
    found = []
    for group in report.groups:
        if group.max_lag_s > limits.max_lag_s:
            members = f"{len(group.info.members)} live member(s)" if group.info.members else "no live members"
            found.append(
                f"group {group.group} is {group.max_lag_s:.0f}s behind (over {limits.max_lag_s:g}s; "
                f"{group.lag} records waiting, {members})"
            )
    found.extend(
        f"checkpoint {c['source']}/{c['tenant']}/{c['object_type']} is {c['age_s']:.0f}s old "
        f"(over {limits.max_checkpoint_age_s:g}s): is `cdc poll` running?"
        for c in report.checkpoints
        if c["age_s"] > limits.max_checkpoint_age_s
    )
    found.extend(retention_warnings(report.waits))
    pending = report.deadletters.get("pending", 0)
    if limits.fail_on_deadletters and pending:
        found.append(f"{pending} dead letter(s) pending (see `cdc deadletter list`)")
    return found


async def gather_status(settings: Settings, limits: Thresholds, now: datetime | None = None) -> StatusReport:
    """Everything `cdc status` shows; raises KafkaUnavailableError when the cluster does not answer."""
    kafka = settings.kafka
    report = StatusReport(at=now or datetime.now(UTC))
    topics_of = group_topics(settings)
    catalog = TopicCatalog.from_settings(kafka)
    async with open_admin(kafka) as admin:
        parked_partitions = await partitions_of(admin, (catalog.name(TopicRole.PARKED),))
        described = [
            (
                name,
                group,
                await describe_group(admin, group),
                await committed_offsets(admin, group),
                await partitions_of(admin, topics_of[group]),
            )
            for name, group in known_groups(settings).items()
        ]
    async with open_reader(kafka) as reader:
        # One offsets request for every topic: the reader waits for metadata once, not once per group.
        everything = sorted(
            {tp for *_, partitions in described for tp in partitions} | set(parked_partitions)
        )
        starts = await reader.beginning_offsets(everything)
        ends = await reader.end_offsets(everything)
        for name, group, info, committed, partitions in described:
            lags = await _lags(reader, partitions, committed, (starts, ends), report.at)
            report.groups.append(GroupStatus(name, group, info, lags))
            if name == "sync-apply":  # the parked topic's offsets are committed by the apply group
                report.parked = await _lags(reader, parked_partitions, committed, (starts, ends), report.at)
    report.pauses = await read_pauses(kafka)
    sync_lags = [p for g in report.groups if g.name.startswith("sync-") for p in g.partitions]
    report.waits = topic_waits(((p.topic, p.lag_s) for p in [*sync_lags, *report.parked]), catalog)
    for checkpoint in sorted((await read_checkpoints(kafka)).values(), key=lambda c: c.key):
        report.checkpoints.append(
            {
                "source": str(checkpoint.source),
                "tenant": checkpoint.tenant,
                "object_type": checkpoint.object_type,
                "updated_at": checkpoint.updated_at.isoformat(),
                "age_s": round(age_s(checkpoint.updated_at, report.at), 3),
            }
        )
    report.deadletters = (await load_book(kafka)).depth()
    report.links = await _link_counts(settings)
    report.problems = problems(report, limits)
    return report


async def _lags(
    reader: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    committed: Mapping[TopicPartition, int],
    bounds: tuple[Mapping[TopicPartition, int], Mapping[TopicPartition, int]],
    now: datetime,
) -> tuple[PartitionLag, ...]:
    starts, ends = bounds
    # A partition never committed is read from the earliest record (auto_offset_reset=earliest).
    positions = {tp: max(committed.get(tp, starts[tp]), starts[tp]) for tp in partitions}
    lagging = [tp for tp in partitions if ends[tp] > positions[tp]]
    heads, drained = await _head_times(reader, lagging, positions, ends)
    return tuple(
        PartitionLag(
            topic=tp.topic,
            partition=tp.partition,
            committed=committed.get(tp),
            end=ends[tp],
            # Past the last record there may only be transaction markers (every transactional write ends
            # with one): they take offsets but are no lag.
            lag=0 if tp in drained else max(0, ends[tp] - positions[tp]),
            lag_s=(age_s(heads[tp], now) if tp in heads else None)
            if tp in lagging and tp not in drained
            else 0.0,
        )
        for tp in partitions
    )


async def _head_times(
    reader: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    positions: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
) -> tuple[dict[TopicPartition, datetime], set[TopicPartition]]:
    """The time of the first record at or after each position (the oldest one the group has not read);
    and the partitions where nothing but control records (transaction markers) lies past the position."""
    if not partitions:
        return {}, set()
    reader.assign(partitions)
    for tp in partitions:
        reader.seek(tp, positions[tp])
    heads: dict[TopicPartition, datetime] = {}
    drained: set[TopicPartition] = set()
    for _ in range(HEAD_POLLS):
        waiting = [tp for tp in partitions if tp not in heads and tp not in drained]
        if not waiting:
            break
        batch = await reader.getmany(*waiting, timeout_ms=POLL_MS, max_records=len(waiting) * 10)
        for tp, messages in batch.items():
            if messages and tp not in heads:
                heads[tp] = datetime.fromtimestamp(messages[0].timestamp / 1000, UTC)
        for tp in waiting:
            if tp not in heads and await reader.position(tp) >= ends[tp]:
                drained.add(tp)
        if len(heads) + len(drained) == len(partitions):
            break
    return heads, drained


async def _link_counts(settings: Settings) -> dict[str, Any]:
    index = await load_links(settings.kafka)
    by_pair: dict[str, int] = {}
    waiting = 0
    for link in index:
        pair = f"{link.hubspot.object_type}~{link.dataverse.object_type}"
        by_pair[pair] = by_pair.get(pair, 0) + 1
        waiting += bool(link.waiting_for)
    return {"total": len(index), "by_pair": dict(sorted(by_pair.items())), "waiting_for_related": waiting}


def render(report: StatusReport) -> list[str]:
    """The report as lines for a terminal."""
    lines = []
    for group in report.groups:
        members = ", ".join(str(m) for m in group.info.members) or "none"
        lines.append(
            f"group {group.group} [{group.info.state}] lag {group.lag} records, "
            f"{group.max_lag_s:.1f}s; members: {members}"
        )
        empty = 0
        for p in group.partitions:
            if p.end == 0 and p.committed is None:
                empty += 1  # never written (the lease topic always): nothing to say per partition
                continue
            committed = "-" if p.committed is None else str(p.committed)
            seconds = "?" if p.lag_s is None else f"{p.lag_s:.1f}s"
            lines.append(
                f"  {p.topic}[{p.partition}] committed {committed} end {p.end} lag {p.lag} ({seconds})"
            )
        if empty:
            lines.append(f"  ({empty} empty partition(s))")
    if report.checkpoints:
        lines.append("checkpoints:")
        lines.extend(
            f"  {c['source']}/{c['tenant']}/{c['object_type']} updated {c['updated_at']} "
            f"({c['age_s']:.0f}s ago)"
            for c in report.checkpoints
        )
    else:
        lines.append("checkpoints: none (no poller has run)")
    dead = report.deadletters
    steps = ", ".join(f"{step}={n}" for step, n in dead.get("by_step", {}).items())
    lines.append(
        f"dead letters: {dead.get('pending', 0)} pending, {dead.get('redriven', 0)} redriven"
        + (f" ({steps})" if steps else "")
    )
    pairs = ", ".join(f"{pair}={n}" for pair, n in report.links.get("by_pair", {}).items())
    waiting = report.links.get("waiting_for_related", 0)
    lines.append(
        f"links: {report.links.get('total', 0)}"
        + (f" ({pairs})" if pairs else "")
        + (f"; {waiting} with an association waiting for its related record to sync" if waiting else "")
    )
    lines.extend(_pause_lines(report))
    lines.append("ok" if report.ok else "UNHEALTHY: " + "; ".join(report.problems))
    return lines


def _pause_lines(report: StatusReport) -> list[str]:
    """What an operator paused, what waits for it, and how the oldest waiting change compares with its
    topic's retention."""
    lines = []
    for target, p in report.pauses.active.items():
        what = "everything" if target == EVERYTHING else f"step {target}"
        why = f": {p.reason}" if p.reason else ""
        lines.append(
            f"paused: {what} by {p.by} since {p.at.isoformat(timespec='seconds')} "
            f"({age_s(p.at, report.at):.0f}s){why}"
        )
    parked = sum(p.lag for p in report.parked)
    if parked:
        lines.append(f"parked: {parked} work item(s) of paused steps wait to be replayed")
    if report.pauses.active or parked:
        lines.extend(w.line() for w in report.waits)
    return lines
