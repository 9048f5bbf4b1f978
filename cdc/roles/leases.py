"""Which `cdc poll` replica polls which table: a consumer group is the lease, a transactional id the fence.

Issue 4 asks for one active poller per table however many replicas run: two pollers must never move one
delta link. With Kafka as the only shared service, the design is:

- **The lease is a consumer-group assignment.** Every replica joins the group ``<prefix>poll``, subscribed
  to the catalog's ``poll.leases`` topic (16 partitions, always empty). A table -- a *unit*, named
  ``dataverse/<org>/<entity set>`` or ``hubspot/<portal>/<object type>`` -- stands for partition
  ``crc32(name) % 16``: a pure function of its name, so replicas agree on it even while their
  configurations differ (a rolling deploy that adds a table). Owning the partition is owning the tables
  hashed to it. Kafka gives each partition to one member per generation, notices a member that leaves
  (LeaveGroup, at once) or dies (``poll.lease_session_timeout_s``), and rebalances.
- **Hand-over in order.** The protocol is eager: before a member rejoins, aiokafka awaits
  ``on_partitions_revoked``, and the next generation cannot complete until every member has rejoined (or
  was dropped after the rebalance timeout). The revoke callback stops the member's tables -- a page in
  flight commits, bounded by ``poll.shutdown_grace_s``, then the table is cancelled -- and closes their
  producers. Only then does the member rejoin, so a table's new owner starts after the old one stopped.
  Shutdown does the same before it leaves the group.
- **The fence.** A replica that was paused (a long GC, a lost network) may not learn in time that it lost
  its lease. Each table's writer has a transactional id per tenant and table; the new owner starts its
  writer *before* it reads the checkpoint, which bumps the producer epoch, aborts the old owner's open
  transaction, and makes the old owner's next commit fail with ``WriterFencedError``: that table's loop
  stops with a warning, the process runs on. So even a broken lease never lets two pollers move one
  cursor, and the checkpoint the new owner reads is final.
- **Spread.** :class:`TableSpreadAssignor` hands the partitions that hold tables out one at a time, each
  to the least-loaded member that has one of its tables configured, then the empty partitions. Kafka's
  range and round-robin assignors treat all 16 partitions alike and could put every table on one replica.

Rejected: a lease record with a TTL on a compacted topic (needs synchronised clocks and a compare-and-set
that Kafka lacks); the checkpoints topic's own assignment (one partition: one replica would poll
everything); the fence alone (correct, but replicas would keep fencing each other instead of sharing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata
from aiokafka.errors import KafkaError

from cdc.roles.probes import Heartbeats
from consumers.retries import RetryPolicy, retrying, unless_stopped
from streams.clients import make_consumer
from streams.config import KafkaSettings
from streams.topics import TopicCatalog, TopicRole

__all__ = ["TableLeases", "TableSpreadAssignor", "Unit", "lease_partition", "spread"]

log = logging.getLogger("cdc.poll.leases")
MEMBERSHIP = RetryPolicy(retries=None, wait_initial_s=0.2, wait_max_s=5.0)
"""A retriable group error (a coordinator moving) is retried until stopped."""
LEAVE_TIMEOUT_S = 15.0
"""Leaving the group: the LeaveGroup request, or a revocation in flight closing its writers (10 s each)."""


@dataclass(frozen=True)
class Unit:
    """One table (or object type) that exactly one replica polls at a time."""

    name: str
    run: Callable[[asyncio.Event, Callable[[float], None]], Coroutine[Any, Any, None]]
    """Polls until the event is set (or it is fenced); owns its writer from start to end. It calls the beat
    it is given once per page and before each wait, with the wait's length (`cdc.roles.probes.Heartbeats`)."""


def lease_partition(name: str, partitions: int) -> int:
    """The lease-topic partition that stands for the unit ``name``: the same in every replica."""
    return zlib.crc32(name.encode()) % partitions


def spread(partitions: Iterable[int], wanted: Mapping[str, Iterable[int]]) -> dict[str, list[int]]:
    """Pure: give each partition to one member. ``wanted`` holds, per member, the partitions of its units.

    Partitions someone wants go first, each to the least-loaded member that wants it, ties to the lowest
    member id; those fewest members want are placed first, so a table only one member has configured
    (a rolling deploy) does not crowd that member out of the others. The rest go round robin.
    """
    members = sorted(wanted)
    if not members:
        return {}
    wants = {member: frozenset(wanted[member]) for member in members}
    every = sorted(set(partitions))
    candidates = {p: [m for m in members if p in wants[m]] for p in every}
    busy = sorted((p for p in every if candidates[p]), key=lambda p: (len(candidates[p]), p))
    given: dict[str, list[int]] = {member: [] for member in members}
    for partition in busy:
        chosen = min(candidates[partition], key=lambda m: (len(given[m]), members.index(m)))
        given[chosen].append(partition)
    for index, partition in enumerate(p for p in every if p not in busy):
        given[members[index % len(members)]].append(partition)
    return given


class TableSpreadAssignor:
    """A partition assignor (aiokafka's duck type) that spreads the partitions holding tables first.

    Each member announces the partitions of its own units in the JoinGroup metadata (``user_data``); the
    group leader's instance runs :func:`spread` over them.
    """

    name = "cdc-table-spread"
    version = 0

    def __init__(self, own: Iterable[int]) -> None:
        self._own = sorted(set(own))

    def metadata(self, topics: Iterable[str]) -> Any:
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), orjson.dumps(self._own))

    def on_assignment(self, assignment: Any) -> None:
        """Nothing to remember: the listener acts on assignments."""

    def assign(self, cluster: Any, members: Mapping[str, Any]) -> dict[str, Any]:
        topics = sorted({topic for metadata in members.values() for topic in metadata.subscription})
        result: dict[str, dict[str, list[int]]] = {member: {} for member in members}
        for topic in topics:
            subscribed = {m: md for m, md in members.items() if topic in md.subscription}
            wanted = {member: _announced(metadata.user_data) for member, metadata in subscribed.items()}
            for member, given in spread(cluster.partitions_for_topic(topic) or (), wanted).items():
                result[member][topic] = given
        return {
            member: ConsumerProtocolMemberAssignment(self.version, sorted(by_topic.items()), b"")
            for member, by_topic in result.items()
        }


def _announced(user_data: bytes | None) -> list[int]:
    """A member's announced partitions; anything unreadable (another version) announces none."""
    try:
        value = orjson.loads(user_data or b"[]")
    except orjson.JSONDecodeError:
        return []
    return [p for p in value if isinstance(p, int)] if isinstance(value, list) else []


@dataclass
class _Running:
    unit: Unit
    stop: asyncio.Event
    task: asyncio.Task[None]


class TableLeases:
    """Membership of the ``<prefix>poll`` group, and the units of the partitions this replica holds.

    :meth:`run` owns the consumer; the units run as tasks of the caller's TaskGroup (one owner for every
    task), started on assignment and stopped -- before the replica rejoins -- on revocation. A unit's
    heartbeat is watched while it runs here.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        units: Sequence[Unit],
        *,
        grace_s: float,
        heartbeats: Heartbeats,
        session_timeout_s: float = 10.0,
    ) -> None:
        spec = TopicCatalog.from_settings(kafka)[TopicRole.POLL_LEASES]
        self._kafka, self._topic, self._grace_s, self._heartbeats = kafka, spec.name, grace_s, heartbeats
        self._session_ms = int(session_timeout_s * 1000)
        self._by_partition: dict[int, list[Unit]] = {}
        for unit in units:
            self._by_partition.setdefault(lease_partition(unit.name, spec.partitions), []).append(unit)
        self._running: dict[str, _Running] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._closing = False
        self.group_id = f"{kafka.topic_prefix}poll"
        self.joined = False
        """True between an assignment and the next revocation: the replica knows what it owns."""
        self.assignments = 0

    async def run(self, stop: asyncio.Event, tasks: asyncio.TaskGroup) -> None:
        """Hold leases until ``stop``; then stop every unit (bounded), then leave the group.

        Leaving only after the units stopped is what lets another replica start them safely at once.
        """
        self._tasks = tasks
        consumer = make_consumer(
            self._kafka,
            group_id=self.group_id,
            partition_assignment_strategy=(TableSpreadAssignor(self._by_partition),),
            session_timeout_ms=self._session_ms,
            heartbeat_interval_ms=min(1000, self._session_ms // 3),
            max_poll_interval_ms=int(max(60.0, 3 * self._grace_s) * 1000),
            rebalance_timeout_ms=int(max(60.0, 3 * self._grace_s) * 1000),
        )
        try:
            consumer.subscribe([self._topic], listener=_Listener(self))
            await consumer.start()
            while not stop.is_set():
                # The topic stays empty: this waits on membership (heartbeats, rebalances run meanwhile),
                # and returns early only to raise a group error; a retriable one is retried with backoff.
                try:
                    await retrying(
                        lambda: unless_stopped(stop, consumer.getone()),
                        policy=MEMBERSHIP,
                        on=_retriable,
                        what="poll_leases",
                        stop=stop,
                    )
                except KafkaError:
                    if not stop.is_set():
                        raise
        finally:
            self._closing, self.joined = True, False
            await self._stop_units(list(self._running), "shutting down")
            # Bound: a revocation still stopping units in aiokafka's task finishes first (grace + close).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(consumer.stop(), self._grace_s + LEAVE_TIMEOUT_S)
            await self._stop_units(list(self._running), "shutting down")  # none, unless a late assignment

    async def assigned(self, partitions: Iterable[int]) -> None:
        """Start the units of newly held partitions (each first fences, then reads its checkpoint)."""
        assert self._tasks is not None  # noqa: S101 -- set by run() before the consumer starts
        if self._closing:
            return  # a rebalance that raced the shutdown: this replica is leaving, start nothing
        self.assignments += 1
        mine = [unit for p in sorted(partitions) for unit in self._by_partition.get(p, ())]
        for unit in mine:
            current = self._running.get(unit.name)
            if current is not None and not current.task.done():
                continue
            event = asyncio.Event()
            task = self._tasks.create_task(self._run_unit(unit, event), name=f"poll-{unit.name}")
            self._running[unit.name] = _Running(unit, event, task)
        self.joined = True
        log.info(
            "poll leases: assignment %d: this replica polls %s",
            self.assignments,
            ", ".join(u.name for u in mine) or "nothing (more replicas than tables)",
        )

    async def revoked(self) -> None:
        """Stop every unit before the replica rejoins: the next owner must not start while one runs."""
        self.joined = False
        await self._stop_units(list(self._running), "handed over")

    async def _run_unit(self, unit: Unit, stop: asyncio.Event) -> None:
        log.info("poll leases: %s starts here", unit.name)
        try:
            await unit.run(stop, self._heartbeats.expect(unit.name))
        finally:
            self._heartbeats.forget(unit.name)

    async def _stop_units(self, names: Sequence[str], why: str) -> None:
        stopping = [self._running.pop(name) for name in names if name in self._running]
        for running in stopping:
            running.stop.set()
        pending = {r.task for r in stopping if not r.task.done()}
        if not pending:
            return
        started = time.monotonic()
        _, late = await asyncio.wait(pending, timeout=self._grace_s)
        for task in late:
            log.warning(
                "poll leases: %s still busy %.0fs after stop; cancelled", task.get_name(), self._grace_s
            )
            task.cancel()
        if late:
            await asyncio.wait(late)  # each closes its writer on the way out (bounded)
        log.info(
            "poll leases: %s: stopped %s in %.2fs",
            why,
            ", ".join(r.unit.name for r in stopping),
            time.monotonic() - started,
        )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """aiokafka's rebalance listener; aiokafka awaits the coroutines it gets back."""

    def __init__(self, leases: TableLeases) -> None:
        self._leases = leases

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        del revoked  # eager protocol: everything is revoked, and stopping everything is what keeps order
        await self._leases.revoked()

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        await self._leases.assigned(tp.partition for tp in assigned)


def _retriable(error: Exception) -> bool:
    return isinstance(error, KafkaError) and bool(getattr(error, "retriable", False))
