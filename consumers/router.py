"""The router (group ``<prefix>sync-route``): reads both change topics and re-keys every change to its pair
on the work topic (`consumers.routing`), in one Kafka transaction with its consumed offsets, so each change
reaches the work topic exactly once. What a change must carry to find its pair is read first
(`consumers.enrichment`), waiting out a CRM outage; an unreadable change is dead-lettered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from functools import partial

from consumers.config import SyncConfig
from consumers.enrichment import enrich
from consumers.ports import CrmGateway, CrmUnavailableError
from consumers.retries import ENGINE, Retry, retrying
from consumers.routing import linked, routes
from consumers.seen import SeenChanges
from streams.clients import make_consumer, running
from streams.config import KafkaSettings
from streams.control import ControlView, hold, holds_everything, read_unless_paused
from streams.events import CHANGE_CODEC, ChangeEvent
from streams.keys import SourceSystem
from streams.link_store import CommittedLinks
from streams.topics import TopicCatalog, TopicRole
from streams.transactions import (
    Lag,
    Outgoing,
    Ownership,
    TransactionalLoop,
    dead_letter_record,
    decode,
    offsets,
    record,
    transaction,
)
from streams.work import WORK_CODEC, WorkItem, passed_through

__all__ = ["ROUTE_BATCH", "Router"]

ROUTE_BATCH = 1_000
"""Changes per routing batch: routing is cheap, the transaction per batch is not."""


class Router(TransactionalLoop):
    role = "route"

    def __init__(
        self,
        kafka: KafkaSettings,
        catalog: TopicCatalog,
        config: SyncConfig,
        index: CommittedLinks,
        gateways: Mapping[SourceSystem, CrmGateway],
        *,
        group: str,
        batch_wait_ms: int = 50,
        on_routed: Callable[[int, int], None] | None = None,
        on_duplicates: Callable[[int], None] | None = None,
        on_retry: Callable[[Retry], None] | None = None,
        on_lag: Callable[[Lag], None] | None = None,
        on_beat: Callable[[], None] | None = None,
        control: ControlView | None = None,
    ) -> None:
        super().__init__(kafka, catalog, group=group, on_lag=on_lag, on_beat=on_beat)
        self.control = control
        """What an operator paused: everything paused stops the routing too (`streams.control`)."""
        self.config = config
        self.index = index
        self.gateways = gateways
        self.batch_wait_ms = batch_wait_ms
        """The longest a part-full batch waits for more while a backlog is arriving (`streams.batching`)."""
        self.on_routed = on_routed
        self.on_retry = on_retry
        """Told of every retry while a CRM outage is waited out (``route``)."""
        self.on_duplicates = on_duplicates
        """Told how many changes of a committed batch were dropped as routed already."""
        self.seen = SeenChanges()
        """Changes routed already (`consumers.seen`): a webhook and its journal entry are routed once."""

    async def enrich(self, events: list[ChangeEvent]) -> list[ChangeEvent]:
        return await enrich(self.config, self.index, self.gateways, events)

    async def _waiting(self) -> None:
        """Called while enrichment waits out a CRM outage: the loop is alive, waiting on purpose."""
        self.beat()

    async def run(self, stop: asyncio.Event) -> None:
        topics = (
            self.catalog.name(TopicRole.CHANGES_HUBSPOT),
            self.catalog.name(TopicRole.CHANGES_DATAVERSE),
        )
        work = self.catalog.name(TopicRole.WORK)
        dead_topic = self.catalog.name(TopicRole.DEADLETTER)
        changes = make_consumer(self.kafka, group_id=self.group)
        self.ownership = Ownership()
        changes.subscribe(list(topics), listener=self.ownership)
        async with running(self.producer()) as producer, running(changes) as consumer:
            while not stop.is_set():
                self.beat()
                if holds_everything(self.control):
                    # Changes wait in the change topics (the longest retention), and no CRM is read.
                    await hold(consumer)
                    await self.report_lag(consumer, {})
                    continue
                consumer.resume(*consumer.assignment())
                batch = await read_unless_paused(
                    consumer, self.control, max_records=ROUTE_BATCH, wait_ms=self.batch_wait_ms
                )
                await self.report_lag(consumer, batch)
                if not batch:
                    continue
                decoded, dead = decode(batch, CHANGE_CODEC)
                fresh = events = self.seen.unseen(event for event, _ in decoded)
                enriched = partial(self.enrich, events)
                events = await retrying(
                    enriched,
                    policy=ENGINE,
                    on=(CrmUnavailableError,),
                    what="route",
                    stop=stop,
                    keepalive=self._waiting,
                    on_retry=self.on_retry,
                )
                # Looked up again after the reads: a link committed meanwhile routes its change to the pair.
                links = linked(self.index, events)
                items = [item for event in events for item in routes(self.config, links, event)]
                read = {id(event): (event, m.value) for event, m in decoded}
                records = [_work_record(work, item, read) for item in items]
                records += [dead_letter_record(dead_topic, letter) for letter in dead]
                await transaction(producer, records, offsets(batch), self.group)
                self.seen.remember(fresh)
                if self.on_duplicates is not None and len(fresh) < len(decoded):
                    self.on_duplicates(len(decoded) - len(fresh))
                if self.on_routed is not None:
                    self.on_routed(len(items), len(dead))


def _work_record(
    topic: str, item: WorkItem, read: Mapping[int, tuple[ChangeEvent, bytes | None]]
) -> Outgoing:
    """The work topic's record of ``item``: its change's bytes as read when the change went through
    unaltered (``read``: the batch's changes by identity, with their bytes), else encoded (an enriched
    copy, made after the read)."""
    got = read.get(id(item.change))
    if got is None or got[0] is not item.change or got[1] is None:
        return record(topic, item.route, item, WORK_CODEC)
    return (topic, item.route.encode(), passed_through(item, got[1]), [WORK_CODEC.header])
