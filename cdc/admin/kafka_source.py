"""The admin page's data, read from Kafka (and, for "sync now", the CRM) on every request.

Nothing is kept between requests, so every replica of `cdc admin` shows the same: links and dead letters
as `cdc status` reads them (`cdc.ops.status`), a record's story as `cdc explain` does
(`cdc.ops.explain`), the exclusions as `cdc excluded` does (`cdc.ops.excluded`), the budget from the budget
topic's reports (`streams.budget`). An action (redrive, sync now, retry, push) writes an audit record
naming the user on the audit topic, after the action is acknowledged.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from cdc.admin.source import BudgetView, BudgetWindow, NotFoundError, Overview, PauseState, StepRow, Story
from cdc.budget import dataverse_limits, hubspot_limits
from cdc.ops import excluded
from cdc.ops._kafka import Raw, load_links, scan
from cdc.ops.deadletters import DeadLetterBook, Letter, load_book, redrive
from cdc.ops.pauses import change_pause, render_pauses
from cdc.ops.push import PushError, push
from cdc.ops.records import Selection
from cdc.ops.resync import ResyncError
from cdc.ops.status import StatusReport, Thresholds, gather_status
from cdc.ops.sync_now import RecordGoneError, sync_now
from cdc.settings import Settings
from cdc.sources.publisher import ChangePublisher
from consumers.config import SyncConfig
from streams.audit import AUDIT_CODEC, AuditAction, AuditRecord
from streams.budget import BudgetReport, decode_report
from streams.codec import Position, SchemaError
from streams.control import read_pauses
from streams.events import CHANGE_CODEC
from streams.exclusions import Exclusion
from streams.keys import RecordRef, SourceSystem
from streams.links import Link
from streams.topics import TopicCatalog, TopicRole
from streams.transactions import record
from streams.work import WORK_CODEC

__all__ = ["KafkaHealth", "letter_record", "story_of"]

LAST_WRITES = 15
CHART_WINDOW = {"hubspot": "daily", "dataverse": "requests"}
CHART_BUCKET_S = 900.0
"""The chart's step: a point per 15 minutes (96 over a day)."""


def letter_record(letter: Letter) -> RecordRef | None:
    """The record a dead letter is about, when its value is a work item or a change event."""
    raw = letter.letter.original_value()
    where = Position(letter.letter.topic, letter.letter.partition, letter.letter.offset)
    try:
        return WORK_CODEC.decode(raw, where).change.ref
    except SchemaError:
        pass
    try:
        return CHANGE_CODEC.decode(raw, where).ref
    except SchemaError:
        return None


def _mentions(record: AuditRecord, query: str) -> bool:
    """Whether the audit record names ``query``: a side's id, or (email-ish) a value it wrote."""
    wanted = query.strip().casefold()
    refs = [record.source, *([record.target] if record.target else [])]
    if any(ref.object_id.casefold() == wanted for ref in refs):
        return True
    return any(
        isinstance(value, str) and value.strip().casefold() == wanted
        for write in record.fields
        for value in (write.old, write.new)
    )


def _excludes(exclusion: Exclusion, query: str) -> bool:
    """Whether the exclusion names ``query``: its record's or counterpart's id, or a value that caused it."""
    wanted = query.strip().casefold()
    refs = [exclusion.record, *([exclusion.counterpart] if exclusion.counterpart else [])]
    return any(ref.object_id.casefold() == wanted for ref in refs) or any(
        isinstance(value, str) and value.strip().casefold() == wanted for value in exclusion.values.values()
    )


def story_of(
    query: str,
    links: Iterable[Link],
    audit: Iterable[AuditRecord],
    exclusions: Iterable[Exclusion] = (),
) -> Story:
    """The records ``query`` names (an id of either side, a value written such as an email, or a value an
    exclusion holds), both sides of their links, every audit record of any of them, oldest first, and
    their exclusions. Pure: tested without Kafka."""
    links, audit, exclusions = list(links), list(audit), list(exclusions)
    wanted = query.strip()
    refs: set[RecordRef] = {e.record for e in exclusions if _excludes(e, wanted)}
    for link in links:
        for side in (link.hubspot, link.dataverse):
            if wanted in {side.object_id, *side.merged_ids}:
                refs.update((link.hubspot.ref, link.dataverse.ref))
    for entry in audit:
        if _mentions(entry, wanted):
            refs.update([entry.source, *([entry.target] if entry.target else [])])
    keys = {ref.key for ref in refs}
    story = Story(query=wanted)
    story.links = [link for link in links if {link.hubspot.ref.key, link.dataverse.ref.key} & keys]
    for link in story.links:
        refs.update((link.hubspot.ref, link.dataverse.ref))
    keys = {ref.key for ref in refs}
    story.records = sorted(refs, key=lambda ref: ref.key)
    story.audit = sorted(
        (a for a in audit if a.source.key in keys or (a.target is not None and a.target.key in keys)),
        key=lambda a: a.at,
    )
    story.exclusions = [e for e in exclusions if e.key in keys]
    return story


def budget_series(reports: Iterable[BudgetReport], system: str, window: str) -> list[tuple[float, float]]:
    """The deployment's use of ``window`` per chart bucket: each process's last report in the bucket,
    summed over the processes that reported in it. Pure."""
    buckets: dict[float, dict[str, float]] = {}
    for report in sorted(reports, key=lambda r: r.at):
        used = report.systems.get(system, {}).get(window)
        if used is not None:
            start = report.at - report.at % CHART_BUCKET_S
            buckets.setdefault(start, {})[report.process] = used[0]
    return [(start + CHART_BUCKET_S, sum(per.values())) for start, per in sorted(buckets.items())]


class KafkaHealth:
    """:class:`cdc.admin.source.HealthSource` over Kafka; ``publisher`` and ``producer`` are started and
    stopped by the role (`cdc.roles.admin`)."""

    def __init__(
        self, settings: Settings, config: SyncConfig, publisher: ChangePublisher, producer: AIOKafkaProducer
    ) -> None:
        self.settings = settings
        self.config = config
        self._publisher = publisher
        self._producer = producer
        self._catalog = TopicCatalog.from_settings(settings.kafka)

    async def overview(self) -> Overview:
        since = datetime.now(UTC) - timedelta(days=1)
        status, exclusions, audit = await asyncio.gather(self.lags(), self.exclusions(), self._audit(since))
        by_pair = status.links.get("by_pair", {})
        by_step = status.deadletters.get("by_step", {})
        excluded_by_step = Counter(e.step for e in exclusions)
        steps = [
            StepRow(
                step.name,
                str(step.pair),
                by_pair.get(str(step.pair), 0),
                by_step.get(step.name, 0),
                excluded_by_step.get(step.name, 0),
            )
            for step in self.config.enabled_steps()
        ]
        writes = [a for a in audit if a.action is not AuditAction.SKIP]
        return Overview(status, steps, sorted(writes, key=lambda a: a.at)[-LAST_WRITES:][::-1])

    async def lags(self) -> StatusReport:
        return await gather_status(self.settings, Thresholds())

    async def links(self) -> list[Link]:
        return sorted(await load_links(self.settings.kafka), key=lambda link: link.updated_at, reverse=True)

    async def story(self, query: str) -> Story:
        links, audit, exclusions = await asyncio.gather(
            load_links(self.settings.kafka), self._audit(None), self.exclusions()
        )
        story = story_of(query, links, audit, exclusions)
        if not story.records:
            raise NotFoundError(f"no link and no audit record names {query.strip()!r}")
        return story

    async def budget(self) -> BudgetView:
        now = datetime.now(UTC)
        reports: list[BudgetReport] = []

        def take(message: Raw) -> None:
            report = None if message.value is None else decode_report(message.value)
            if report is not None:
                reports.append(report)

        await scan(
            self.settings.kafka, self._catalog.name(TopicRole.BUDGET), take, since=now - timedelta(days=1)
        )
        latest = {r.process: r for r in sorted(reports, key=lambda r: r.at)}
        live = [r for r in latest.values() if r.at >= now.timestamp() - self.settings.budget.stale_after_s]
        cap = self.settings.hubspot.limits.daily_cap
        windows = []
        for limits in (hubspot_limits(self.settings.hubspot), dataverse_limits(self.settings.dataverse)):
            for window in limits.windows:
                capped = limits.system == "hubspot" and window.name == "daily"
                windows.append(
                    BudgetWindow(
                        system=limits.system,
                        window=window.name,
                        seconds=window.seconds,
                        limit=window.limit,
                        full_limit=window.limit / (1 - cap) if capped else window.limit,
                        used=sum(
                            r.systems.get(limits.system, {}).get(window.name, (0.0, 0.0))[0] for r in live
                        ),
                        processes=sum(1 for r in live if limits.system in r.systems),
                    )
                )
        series = {system: budget_series(reports, system, name) for system, name in CHART_WINDOW.items()}
        return BudgetView(windows, series, dict(CHART_WINDOW))

    async def deadletters(self) -> DeadLetterBook:
        return await load_book(self.settings.kafka)

    async def redrive(self, letter: Letter, actor: str) -> str:
        ref = letter_record(letter)
        if ref is None:
            raise NotFoundError(
                f"dead letter {letter.ident} names no record this page can audit: use "
                f"`cdc deadletter redrive {letter.ident}`"
            )
        report = await redrive(self.settings.kafka, ids=[(letter.partition, letter.offset)])
        if report.skipped:
            return f"dead letter {letter.ident} not redriven: {report.skipped[0][1]}"
        await self._audited(
            AuditAction.REDRIVE, ref, actor, f"dead letter {letter.ident} redriven", letter.letter.step
        )
        return f"dead letter {letter.ident} redriven to {letter.letter.topic}"

    async def sync_now(self, ref: RecordRef, actor: str) -> str:
        try:
            await sync_now(self.settings, ref, self._publisher)
        except (RecordGoneError, ResyncError) as error:
            raise NotFoundError(str(error)) from None
        await self._audited(AuditAction.RESYNC, ref, actor, "sync now", None)
        return f"{ref.system} {ref.object_type} {ref.object_id} read again and sent to the sync"

    async def exclusions(self) -> list[Exclusion]:
        return (await excluded.load(self.settings)).select()

    async def retry(self, targets: list[Exclusion], actor: str) -> str:
        report = await excluded.retry(self.settings, targets)
        for exclusion, _ in report.queued:
            await self._audited(
                AuditAction.RESYNC,
                exclusion.record,
                actor,
                f"excluded retry ({exclusion.reason})",
                exclusion.step,
            )
        queued, gone = len(report.queued), len(report.gone)
        said = f"{queued} excluded record(s) read again and sent to the sync"
        if gone:
            said += f"; {gone} no longer in their CRM, nothing sent: " + ", ".join(
                e.key for e in report.gone[:5]
            )
        return said

    async def push(self, ref: RecordRef, winner: SourceSystem, actor: str) -> list[str]:
        pull = winner is not ref.system  # the other side wins: `cdc pull` of this record
        try:
            report = await push(
                self.settings, str(ref.system), ref.object_type, Selection(ids=(ref.object_id,)), pull=pull
            )
        except (PushError, ResyncError) as error:
            raise NotFoundError(str(error)) from None
        await self._audited(AuditAction.RESYNC, ref, actor, f"push from {winner}", None)
        return report.lines()

    async def pauses(self) -> PauseState:
        pauses = await read_pauses(self.settings.kafka)
        steps = [step.name for step in self.config.steps]
        return PauseState(pauses, steps, render_pauses(pauses, self.config))

    async def set_pause(self, target: str | None, *, paused: bool, actor: str, reason: str | None) -> str:
        try:
            change = await change_pause(
                self.settings.kafka,
                self.config,
                target,
                paused=paused,
                by=actor,
                reason=reason,
                now=datetime.now(UTC),
            )
        except ValueError as error:  # an unknown step: nothing was written
            raise NotFoundError(str(error)) from None
        return change.message()

    async def _audited(
        self,
        action: AuditAction,
        ref: RecordRef,
        actor: str,
        reason: str,
        step: str | None,
    ) -> None:
        entry = AuditRecord(
            step=step or "admin",
            action=action,
            source=ref,
            reason=f"{reason} (admin page)",
            actor=actor,
            at=datetime.now(UTC),
        )
        topic, key, value, headers = record(
            self._catalog.name(TopicRole.AUDIT), entry.key, entry, AUDIT_CODEC
        )
        await self._producer.send_and_wait(topic, value, key=key, headers=headers)

    async def _audit(self, since: datetime | None) -> list[AuditRecord]:
        found: list[AuditRecord] = []

        def take(message: Raw) -> None:
            try:
                found.append(
                    AUDIT_CODEC.decode(
                        message.value, Position(message.topic, message.partition, message.offset)
                    )
                )
            except SchemaError:
                return

        await scan(self.settings.kafka, self._catalog.name(TopicRole.AUDIT), take, since=since)
        return found
