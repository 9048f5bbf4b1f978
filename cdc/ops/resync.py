"""`cdc resync`: read records again from a CRM and publish them as change events (``origin=resync``).

The runbook's step after an outage, a lost topic or a configuration change: every record of one object
type (or those modified since a time) goes to its change topic again with the full record, and the sync
stage applies them as it would any change; records already in step write nothing (guarantee 5).

What it never does: move a poller's checkpoint. Events go out through the plain :class:`ChangePublisher`
(not a poller's transactional writer), and the delta link a Dataverse pass ends with is dropped, so the
running pollers neither skip nor repeat anything because of a resync.

- Dataverse: a fresh change-tracking pass of the table (``Prefer: odata.track-changes``, the configured
  ``$select``), page by page through ``@odata.nextLink``; with ``since``, a plain query filtered on
  ``modifiedon ge TIME`` instead (change tracking refuses ``$filter``). The next page is fetched while
  the current one is published.
- HubSpot: the reconciler's search window (`cdc.hubspot.reconciler.search_window`, so the 10,000-result
  limit is never met) from ``since`` (default: the beginning) to the end of the results, and for every
  record its associations to the other configured object types, as ASSOCIATION events (additions only:
  a resync knows no earlier state to tell removals by).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from cdc.budget import shared_budgets
from cdc.dataverse import DataverseApiError, DataverseClient, TokenProvider, entity_logical_name, row_to_event
from cdc.dataverse import RetriableError as DataverseRetriable
from cdc.dataverse.poller import table_url
from cdc.exits import CliError, ExitCode
from cdc.hubspot.client import hubspot_client
from cdc.hubspot.errors import HubSpotApiError
from cdc.hubspot.errors import RetriableError as HubSpotRetriable
from cdc.hubspot.paths import singular
from cdc.hubspot.reconciler import (
    RECONCILED,
    association_events,
    hubspot_objects,
    object_properties,
    read_edges,
    record_event,
    search_window,
)
from cdc.hubspot.search import MAX_PAGE
from cdc.metrics import Metrics
from cdc.settings import Settings, require
from cdc.sources.polled import sync_config
from cdc.sources.publisher import ChangePublisher, PublishUnavailableError
from streams.events import ChangeEvent, Origin

__all__ = ["ResyncError", "ResyncReport", "resolve_object", "resync", "run_command", "run_resync"]

T = TypeVar("T")

Progress = Callable[[str], None]
DATAVERSE_TABLES = ("contacts", "accounts", "opportunities", "leads")
HUBSPOT_OBJECTS = RECONCILED
BATCH = 1000
"""Events per produce call: acknowledged together, within ``PUBLISH_DEADLINE_S``."""
PUBLISH_DEADLINE_S = 60.0
PROGRESS_EVERY_S = 2.0
BAR = 30
"""Characters of the progress bar, when the source says how many records there are."""


class ResyncError(ValueError):
    """A usage error: the system or object type is not one resync knows, or (`cdc push`) the records asked
    for cannot be pushed."""


def resolve_object(system: str, name: str) -> str:
    """``contact`` or ``contacts`` -> the name the API uses (entity set, HubSpot object type)."""
    known = {"dataverse": DATAVERSE_TABLES, "hubspot": HUBSPOT_OBJECTS}.get(system)
    if known is None:
        raise ResyncError(f"unknown system {system!r}: use hubspot or dataverse")
    wanted = name.strip().lower()
    for name_in_path in known:
        one = entity_logical_name(name_in_path) if system == "dataverse" else singular(name_in_path)
        if wanted in {name_in_path, one}:
            return name_in_path
    raise ResyncError(f"{system} has no object {name!r} to resync: use one of {', '.join(known)}")


@dataclass
class ResyncReport:
    """What one resync read and published; ``summary()`` for people, ``as_json()`` for scripts."""

    system: str
    object: str
    dry_run: bool
    records: int = 0
    events: int = 0
    """Events made (published unless a dry run): a record event each, and its associations."""
    published: int = 0
    associations: int = 0
    pages: int = 0
    seconds: float = 0.0
    expected: int | None = None
    """How many records the source says there are, when it says (HubSpot search's ``total``)."""

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "object": self.object,
            "records": self.records,
            "published": self.published,
            "seconds": round(self.seconds, 3),
        }

    def progress_line(self) -> str:
        sent = "dry run, nothing published" if self.dry_run else f"{self.published} events published"
        line = (
            f"{self.system} {self.object}: {self.records} records read in {self.pages} pages, {sent} "
            f"({self.rate:.0f} records/s)"
        )
        if not self.expected:
            return line
        done = min(1.0, self.records / self.expected)
        bar = "#" * round(done * BAR) + "." * (BAR - round(done * BAR))
        left = (self.expected - self.records) / self.rate if self.rate > 0 else 0.0
        return f"[{bar}] {done:4.0%} of about {self.expected}, ~{max(0.0, left):.0f} s left; {line}"

    def summary(self) -> str:
        verb = "would resync" if self.dry_run else "resynced"
        detail = (
            f"dry run: nothing published, {self.events} events would be"
            if self.dry_run
            else f"{self.published} events published"
        ) + (f", {self.associations} of them associations" if self.associations else "")
        return (
            f"{verb} {self.records} {self.object} from {self.system} in {self.seconds:.1f} s "
            f"({self.rate:.0f} records/s; {detail})"
        )


class _Run:
    """One resync's bookkeeping: the publisher (none in a dry run), the report, throttled progress."""

    def __init__(
        self, report: ResyncReport, publisher: ChangePublisher | None, progress: Progress, *, pushed: bool
    ) -> None:
        self.report = report
        self._publisher = publisher
        self._pushed = pushed
        self._progress = progress
        self._started = time.monotonic()
        self._said = 0.0

    async def publish(self, events: Sequence[ChangeEvent]) -> None:
        """In batches of ``BATCH``, each acknowledged by Kafka before the next is sent."""
        self.report.events += len(events)
        if self._publisher is None:
            return
        if self._pushed:
            events = [e.model_copy(update={"pushed": True}) for e in events]
        for start in range(0, len(events), BATCH):
            batch = events[start : start + BATCH]
            await self._publisher.publish(batch)
            self.report.published += len(batch)

    def page_done(self, records: int) -> None:
        self.report.records += records
        self.report.pages += 1
        now = time.monotonic()
        self.report.seconds = now - self._started
        if self.report.pages == 1 or now - self._said >= PROGRESS_EVERY_S:
            self._said = now
            self._progress(self.report.progress_line())

    def finish(self) -> ResyncReport:
        self.report.seconds = time.monotonic() - self._started
        return self.report


async def _dataverse(
    settings: Settings, table: str, since: datetime | None, run: _Run, metrics: Metrics
) -> None:
    """A fresh change-tracking pass (or, with ``since``, a filtered plain query), page by page; the
    next page is read while this one is published. The final delta link is not kept."""
    tokens = TokenProvider(settings.dataverse)
    client = DataverseClient(settings.dataverse, tokens, metrics)
    object_type = entity_logical_name(table)
    size = settings.poll.dataverse_page_size
    if since is None:
        first = table_url(client.api_root, table, settings.poll)
        prefer = f"odata.track-changes,odata.maxpagesize={size}"
    else:
        moment = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # whole seconds: never later
        first = table_url(client.api_root, table, settings.poll, where=f"modifiedon ge {moment}")
        prefer = f"odata.maxpagesize={size}"
    try:
        await tokens.token()
        await client.start()
        page = await client.get_json(first, endpoint=f"{table}:resync", prefer=prefer)
        while True:
            received = datetime.now(UTC)
            events = [
                row_to_event(
                    entry, tenant=tokens.org_host, object_type=object_type, received_at=received
                ).model_copy(update={"origin": Origin.RESYNC})
                for entry in page.get("value") or []
            ]
            link = page.get("@odata.nextLink")
            url = link if isinstance(link, str) and link else None
            async with asyncio.TaskGroup() as overlap:
                following = (
                    overlap.create_task(client.get_json(url, endpoint=f"{table}:resync", prefer=prefer))
                    if url is not None
                    else None
                )
                await run.publish(events)
            run.page_done(len(events))
            if following is None:
                return
            page = following.result()
    finally:
        await client.close()
        tokens.close()


async def _hubspot(settings: Settings, obj: str, since: datetime | None, run: _Run, metrics: Metrics) -> None:
    """The search window from ``since``; each record once (a boundary millisecond is read twice by
    design), then its associations to the other configured object types."""
    require(settings.hubspot.portal_id, "hubspot.portal_id", "resync")
    assert settings.hubspot.portal_id is not None  # noqa: S101 -- checked just above
    portal = settings.hubspot.portal_id
    properties = object_properties(settings, obj, MAX_PAGE)
    configured = settings.poll.hubspot_objects
    if configured is None:
        configured = hubspot_objects(settings, sync_config(settings))
    others = tuple(o for o in configured if o != obj and o in RECONCILED)
    since_ms = 0 if since is None else max(0, int(since.timestamp() * 1000))
    seen: dict[str, int] = {}
    async with hubspot_client(settings.hubspot, metrics, command="resync") as client:
        window = search_window(client, obj, properties=properties, page_size=MAX_PAGE, since_ms=since_ms)
        async with contextlib.aclosing(window) as pages:
            async for total, rows in pages:
                run.report.expected = run.report.expected or total or None
                fresh = [(ms, r) for ms, r in rows if seen.get(str(r["id"])) != ms]
                received = datetime.now(UTC)
                events = [
                    record_event(portal, obj, ms, r, received=received, origin=Origin.RESYNC)
                    for ms, r in fresh
                ]
                ids = [str(r["id"]) for _, r in fresh]
                edges = await read_edges(client, obj, others, ids) if ids and others else {}
                linked = [
                    event
                    for record_id, found in edges.items()
                    for event in association_events(
                        portal, singular(obj), record_id, found, before=None, received=received,
                        origin=Origin.RESYNC,
                    )
                ]  # fmt: skip
                run.report.associations += len(linked)
                await run.publish(events + linked)
                seen.update((str(r["id"]), ms) for ms, r in fresh)
                run.page_done(len(fresh))


async def resync(
    settings: Settings,
    system: str,
    obj: str,
    *,
    since: datetime | None = None,
    dry_run: bool = False,
    pushed: bool = False,
    progress: Progress | None = None,
    metrics: Metrics | None = None,
) -> ResyncReport:
    """Re-read ``obj`` of ``system`` (modified at or after ``since``) and publish it as change events
    (``pushed``: marked so that this side wins every conflict of their pass, `cdc push --all`).

    In order: resolve the object type (ResyncError), start the producer (none in a dry run), read and
    publish page by page (each batch acknowledged before the next page counts), flush and close the
    producer. Raises the CRM client's errors, and PublishUnavailableError when Kafka does not acknowledge.
    """
    name = resolve_object(system, obj)
    metrics = metrics or Metrics(CollectorRegistry())
    publisher = None if dry_run else ChangePublisher(settings.kafka, metrics, deadline_s=PUBLISH_DEADLINE_S)
    run = _Run(ResyncReport(system, name, dry_run), publisher, progress or (lambda _: None), pushed=pushed)
    try:
        if publisher is not None:
            try:
                await publisher.start()
            except KafkaError as error:
                raise PublishUnavailableError(f"Kafka is not reachable: {error}") from None
        read = _dataverse if system == "dataverse" else _hubspot
        # Its reads count against the deployment's API budget (`cdc.budget`), beside the running roles'.
        async with shared_budgets(settings, metrics, role="resync"):
            await read(settings, name, since, run, metrics)
    finally:
        if publisher is not None:
            await publisher.stop()
    return run.finish()


def run_resync(
    settings: Settings,
    system: str,
    obj: str,
    *,
    since: datetime | None,
    dry_run: bool,
    progress: Progress,
) -> ResyncReport:
    """`cdc resync`: :func:`resync` on its own event loop, its failures as :class:`CliError` exit codes."""
    return run_command(resync(settings, system, obj, since=since, dry_run=dry_run, progress=progress))


def run_command(work: Coroutine[Any, Any, T]) -> T:
    """A command that reads a CRM and publishes (`cdc resync`, `cdc push`) on its own event loop: a
    :class:`ResyncError` is a usage error, Kafka or a CRM out of reach is unavailable, a CRM's refusal bad
    settings (:class:`CliError` exit codes)."""
    try:
        return asyncio.run(work)
    except ResyncError as error:
        raise CliError(str(error), ExitCode.USAGE) from None
    except (PublishUnavailableError, DataverseRetriable, HubSpotRetriable) as error:
        raise CliError(f"{type(error).__name__}: {error}", ExitCode.UNAVAILABLE) from None
    except (DataverseApiError, HubSpotApiError) as error:
        raise CliError(f"{type(error).__name__}: {error}", ExitCode.CONFIG) from None
