"""The HubSpot reconciler (part of `cdc poll`): catches what webhooks lost, and backfills history.

Per configured object type, one loop pages the CRM search API by the last-modified property from the
cursor in the ``checkpoints`` topic (``CursorKind.MODIFIED_SINCE``, ISO-8601), sorted ascending, and
publishes an UPSERT change event with the full record (``origin=reconciler``, ``source_version`` = the
last-modified value) for every record it has not already published at that version. Each page's events
and the cursor after them are one Kafka transaction (transactional id per portal and object), so the
cursor moves only with its events. Each pass starts ``poll.hubspot_lookback_s`` before the cursor, because
search lags behind writes; the 10,000-result window is never met (see `cdc.hubspot.search`).

Deletes: a deleted (archived) record leaves search, so a delete whose webhook HubSpot gave up on would be
lost. Every ``poll.hubspot_deletes_interval_s`` the reconciler lists the archived records of its type
(`Endpoints.list_objects`, ``archived=true``, 100 per page), keeps those some link holds, confirms
each is gone with a GET by id (a merged-away id still reads: it is the merge's, not a delete), and publishes a
DELETE change event for each, with the current cursor, in one transaction. Linked records only: a delete
of an unlinked record has nothing to propagate, and a delete already applied has tombstoned its link, so a
sweep after a complete sync publishes nothing.

Associations do not move last-modified. For every record a page holds (re-read records in the lookback
included), the reconciler reads its associations to the other configured types (one batch read) and
publishes ASSOCIATION events for the edges that differ from what it last published for that record:
added or changed edges (``removed=False``) and, when it knows the earlier set, removed ones. Separate
ASSOCIATION events rather than a list on the record event: they are the shape association webhooks
already produce, so the sync engine has one path for both, and the record event's schema stays flat.

Credentials: a 401 (or a refresh token the token endpoint refuses, `cdc.hubspot.tokens`) before any call
of the portal succeeded is fatal (the settings are wrong). Later (the token revoked or rotated, the OAuth
app uninstalled while running) it pauses the type's passes with backoff
(`cdc.sources.auth_pause`) instead: its cursor stays at the last committed page, so the first pass after
the token works again publishes every change made meanwhile. A 403 (a scope missing) stays fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from cdc.hubspot.client import AssociatedRecord, HubSpotClient, hubspot_client
from cdc.hubspot.errors import (
    CredentialsRefusedError,
    FatalError,
    HubSpotApiError,
    RequestError,
    RetriableError,
)
from cdc.hubspot.events import MERGED_IDS, merged_ids
from cdc.hubspot.paths import Query, plural, singular
from cdc.hubspot.search import LAST_MODIFIED, MAX_PAGE, SearchPosition, next_position, parse_ms, search_body
from cdc.metrics import Metrics, object_label
from cdc.settings import Settings, SettingsError, require
from cdc.sources.auth_pause import AUTH_POLICY, SourceAuth
from cdc.sources.linked import linked_ids
from cdc.sources.polled import polled, sync_config, synced_objects
from consumers.config import SyncConfig
from consumers.retries import retrying, unless_stopped
from streams.checkpoint_store import TransactionalChangeWriter, WriterFencedError, read_checkpoints
from streams.checkpoints import Checkpoint, CursorKind, checkpoint_key
from streams.events import Association, ChangeEvent, Operation, Origin
from streams.keys import SourceSystem, join_key

__all__ = [
    "DEFAULT_PROPERTIES",
    "RECONCILED",
    "Edge",
    "HubSpotObjects",
    "association_events",
    "check_options",
    "hubspot_objects",
    "object_properties",
    "read_edges",
    "record_event",
    "run_hubspot_reconciler",
    "search_window",
]

log = logging.getLogger(__name__)
SYSTEM = "hubspot"
COMPONENT = "hubspot_reconciler"
RECONCILED = tuple(LAST_MODIFIED)
"""The object types the reconciler pages (``contacts``, ...): those search can sort by modification time.
Others are left to webhooks."""
PRIMARY_TYPE_IDS = frozenset({1, 2, 5, 6})
SHUTDOWN_GRACE_S = 10.0
LIST_LIMIT = 100
DEFAULT_PROPERTIES: Mapping[str, tuple[str, ...]] = {
    "contacts": (
        "email", "firstname", "lastname", "phone", "mobilephone", "jobtitle", "company", "address", "city",
        "state", "zip", "country", "website", "industry", "lifecyclestage", "hs_lead_status",
        "hubspot_owner_id", "hubspotscore", "createdate", "hs_merged_object_ids",
    ),
    "companies": (
        "name", "domain", "phone", "address", "address2", "city", "state", "zip", "country", "website",
        "industry", "description", "lifecyclestage", "hubspot_owner_id", "createdate", "hs_merged_object_ids",
    ),
    "deals": (
        "dealname", "amount", "closedate", "pipeline", "dealstage", "description", "hubspot_owner_id",
        "createdate", "hs_merged_object_ids",
    ),
}  # fmt: skip
"""The properties the default sync steps map (``reference/default_mappings.md``), per object type, and
``hs_merged_object_ids`` (a merge's survivor whose merge webhook was lost is known by it)."""

Edge = tuple[str, str, bool, int | None]  # (to type, to id, primary, association type id)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _edge(to_type: str, item: AssociatedRecord) -> Edge:
    primary = any(t in PRIMARY_TYPE_IDS for t in item.type_ids) or "Primary" in item.labels
    plain = [t for t in item.type_ids if t not in PRIMARY_TYPE_IDS]
    kinds = plain or list(item.type_ids)
    return (to_type, item.to_id, primary, kinds[0] if kinds else None)


async def search_window(
    client: HubSpotClient,
    obj: str,
    *,
    properties: Sequence[str],
    page_size: int,
    since_ms: int,
    stop: asyncio.Event | None = None,
) -> AsyncGenerator[tuple[int, list[tuple[int, dict[str, Any]]]]]:
    """Every record of ``obj`` modified at or after ``since_ms``, page by page: (about how many in
    all, [(modified ms, result)]). Paged by `cdc.hubspot.search`, so the 10,000-result window is never
    met; records sharing a page boundary's millisecond come again (the caller skips what it has seen).
    Ends early, between pages, once ``stop`` is set."""
    position: SearchPosition | None = SearchPosition(since_ms)
    while position is not None and not (stop is not None and stop.is_set()):
        body = search_body(LAST_MODIFIED[obj], position, properties, page_size)
        page = await client.search(obj, body)
        rows = [(parse_ms(_modified(r, obj)) or position.since_ms, int(r["id"]), r) for r in page.results]
        yield page.total, [(ms, r) for ms, _, r in rows]
        position = next_position(position, [(ms, i) for ms, i, _ in rows], page.has_more)


async def read_edges(
    client: HubSpotClient, obj: str, others: Sequence[str], ids: list[str]
) -> dict[str, set[Edge]]:
    """Each record's associations to the ``others`` types (v4 batch read); an empty set when none."""
    found: dict[str, set[Edge]] = {record_id: set() for record_id in ids}
    for other in others:
        for record_id, items in (await client.read_associations(obj, other, ids)).items():
            found.setdefault(record_id, set()).update(_edge(singular(other), item) for item in items)
    return found


def record_event(
    portal: str, obj: str, ms: int, result: Mapping[str, Any], *, received: datetime, origin: Origin
) -> ChangeEvent:
    """A search result as an UPSERT with the full record; its version is the last-modified value."""
    properties = result.get("properties") or {}
    return ChangeEvent(
        source=SourceSystem.HUBSPOT, tenant=portal, object_type=singular(obj),
        object_id=str(result["id"]), operation=Operation.UPSERT, origin=origin,
        record={str(k): (None if v is None else str(v)) for k, v in properties.items() if k != MERGED_IDS},
        merged_ids=merged_ids(properties, str(result["id"])),
        source_version=_modified(result, obj),
        occurred_at=datetime.fromtimestamp(ms / 1000, UTC), received_at=received,
    )  # fmt: skip


def association_events(
    portal: str,
    singular: str,
    record_id: str,
    edges: set[Edge],
    *,
    before: set[Edge] | None,
    received: datetime,
    origin: Origin,
) -> list[ChangeEvent]:
    """ASSOCIATION events for the edges added since ``before`` and, when it is known, those removed."""
    added = sorted(edges - (before or set()), key=str)
    gone = {(e[0], e[1]) for e in before or set()} - {(e[0], e[1]) for e in edges}
    removed = sorted(e for e in before or set() if (e[0], e[1]) in gone)
    return [
        ChangeEvent(
            source=SourceSystem.HUBSPOT,
            tenant=portal,
            object_type=singular,
            object_id=record_id,
            operation=Operation.ASSOCIATION,
            origin=origin,
            association=Association(
                to_object_type=to_type,
                to_object_id=to_id,
                association_type_id=type_id,
                category=f"{singular.upper()}_TO_{to_type.upper()}",
                primary=primary,
                removed=is_removed,
            ),
            occurred_at=received,
            received_at=received,
        )
        for is_removed, group in ((False, added), (True, removed))
        for to_type, to_id, primary, type_id in group
    ]


@dataclass
class _Memory:
    """What this process last published per record, kept for records inside the lookback window."""

    versions: dict[str, int] = field(default_factory=dict)
    edges: dict[str, set[Edge]] = field(default_factory=dict)

    def forget_before(self, ms: int) -> None:
        for record_id in [r for r, v in self.versions.items() if v < ms]:
            del self.versions[record_id]
            self.edges.pop(record_id, None)


@dataclass
class _ObjectReconciler:
    """One object type of one portal: its search loop, its writer, its cursor."""

    obj: str
    portal: str
    others: tuple[str, ...]
    properties: tuple[str, ...]
    client: HubSpotClient
    writer: TransactionalChangeWriter
    metrics: Metrics
    cursor_ms: int | None
    interval_s: float
    lookback_ms: int
    page_size: int
    memory: _Memory = field(default_factory=_Memory)
    linked: Callable[[str], Awaitable[set[str]]] | None = None
    """Ids of this portal's records of a type that some link holds (for the deletes sweep)."""
    deletes_interval_s: float = 0.0
    swept_at: float | None = None
    auth: SourceAuth | None = None
    """The portal's token as every type sees it; None: a refused token is fatal (not paused)."""
    beat: Callable[[float], None] = lambda _wait_s: None
    """Called per page, and before each wait with its length: the loop is alive (`cdc poll`'s ``/readyz``)."""

    @property
    def singular(self) -> str:
        return singular(self.obj)

    async def run(self, stop: asyncio.Event) -> None:
        """Passes until ``stop``; a throttle or outage outlasting the client's retries waits for the next,
        a refused token (401) backs off (``auth``'s policy) until it is accepted again."""
        while not stop.is_set():
            wait = self.interval_s
            try:
                await retrying(
                    partial(self.passes, stop),
                    policy=AUTH_POLICY if self.auth is None else self.auth.policy,
                    on=self._paused,
                    what="poll_auth",
                    stop=stop,
                    keepalive=self._alive,
                    on_retry=self.metrics.retried,
                    level=logging.DEBUG,  # `SourceAuth` logs the changes of state, never each retry
                )
            except RetriableError as error:
                log.warning(
                    "hubspot reconciler %s: pass interrupted, next in %.0fs: %s", self.obj, wait, error
                )
                wait = max(wait, error.retry_after or 0.0)
            except FatalError:
                if stop.is_set():
                    return  # stopped while waiting to try again
                raise
            self.beat(wait)
            await unless_stopped(stop, asyncio.sleep(wait))

    async def passes(self, stop: asyncio.Event) -> None:
        """One pass, then the deletes sweep when it is due."""
        await self._pass(stop)
        if self._sweep_due():
            await self._sweep_deletes()

    async def _alive(self) -> None:
        """While a retry waits: the loop is alive, waiting on purpose (each second)."""
        self.beat(1.0)

    def _paused(self, error: Exception) -> bool:
        """Refused credentials (a 401, or the token endpoint refusing the refresh token) pause the type
        (``auth``), unless no call ever succeeded: then fatal."""
        refused = isinstance(error, CredentialsRefusedError)
        return refused and self.auth is not None and self.auth.refused(self.obj, error)

    async def _pass(self, stop: asyncio.Event) -> None:
        started = time.monotonic()
        backfill = self.cursor_ms is None
        since = 0 if self.cursor_ms is None else max(0, self.cursor_ms - self.lookback_ms)
        total, read, published, pages = 0, 0, 0, 0
        window = search_window(
            self.client,
            self.obj,
            properties=self.properties,
            page_size=self.page_size,
            since_ms=since,
            stop=stop,
        )
        async with contextlib.aclosing(window) as searched:
            async for found, rows in searched:
                total = total or found
                published += await self._publish(rows)
                read, pages = read + len(rows), pages + 1
                self.metrics.poll_rows.labels(system=SYSTEM, table=self.obj).inc(len(rows))
                self.metrics.progress(COMPONENT)  # per page: a long backfill is progress too
                self.beat(0.0)
                if self.auth is not None:
                    self.auth.accepted()
                if backfill and rows:
                    log.info("hubspot backfill %s: %d of about %d records read", self.obj, read, total)
        now = time.time()
        self.metrics.poll_seconds.labels(system=SYSTEM, table=self.obj).observe(time.monotonic() - started)
        self.metrics.poll_last_success.labels(system=SYSTEM, table=self.obj).set(now)
        if self.cursor_ms is not None:
            self.metrics.checkpoint_age.labels(system=SYSTEM, table=self.obj).set(now - self.cursor_ms / 1000)
        self.metrics.progress(COMPONENT)
        if self.auth is not None:
            self.auth.accepted()
        log.info(
            "hubspot reconciler %s: pass read %d records in %d searches, published %d events",
            self.obj, read, pages, published,
        )  # fmt: skip

    def _sweep_due(self) -> bool:
        if self.linked is None or self.deletes_interval_s <= 0 or self.cursor_ms is None:
            return False
        return self.swept_at is None or time.monotonic() - self.swept_at >= self.deletes_interval_s

    async def _sweep_deletes(self) -> None:
        """Publish the deletes of linked records HubSpot archived without a webhook reaching us."""
        assert self.linked is not None  # noqa: S101 -- _sweep_due checked it
        assert self.cursor_ms is not None  # noqa: S101 -- _sweep_due checked it
        self.swept_at = time.monotonic()
        linked = await self.linked(self.singular)
        if not linked:
            return
        query: Query = {"archived": "true", "limit": LIST_LIMIT, "properties": "hs_object_id"}
        listed = self.client.listed(self.client.api.list_objects, self.obj, query=query)
        archived = {str(r["id"]) async for r in listed if r.get("id")}
        gone = [i for i in sorted(archived & linked) if not await self._readable(i)]
        if not gone:
            return
        received = datetime.now(UTC)
        events = [self._delete_event(i, received) for i in gone]
        checkpoint = Checkpoint(
            source=SourceSystem.HUBSPOT, tenant=self.portal, object_type=self.singular,
            kind=CursorKind.MODIFIED_SINCE, cursor=_iso(self.cursor_ms), updated_at=received,
            events_published=len(events),
        )  # fmt: skip
        await self.writer.commit(events, checkpoint)
        log.warning(
            "hubspot reconciler %s: %d linked record(s) archived without a delete webhook reaching us: "
            "published their deletes",
            self.obj,
            len(gone),
        )
        self.metrics.events_ingested.labels(source=SYSTEM, object=object_label(self.singular)).inc(len(gone))

    def _delete_event(self, record_id: str, received: datetime) -> ChangeEvent:
        return ChangeEvent(
            source=SourceSystem.HUBSPOT, tenant=self.portal, object_type=self.singular, object_id=record_id,
            operation=Operation.DELETE, origin=Origin.RECONCILER, source_event_type="archived",
            occurred_at=received, received_at=received,
        )  # fmt: skip

    async def _readable(self, record_id: str) -> bool:
        """Whether a GET by id finds a live record (a merged-away id resolves to the merge's record)."""
        try:
            await self.client.call(
                self.client.api.read_object, self.obj, record_id, query={"properties": "hs_object_id"}
            )
        except RequestError:
            return False
        return True

    async def _publish(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> int:
        """One page: new record versions, association differences, and the cursor, in one transaction."""
        if not rows:
            return 0
        received = datetime.now(UTC)
        events = [
            self._record_event(ms, r, received)
            for ms, r in rows
            if self.memory.versions.get(str(r["id"])) != ms
        ]
        current = await self._edges([str(r["id"]) for _, r in rows])
        for record_id, edges in current.items():
            events += self._association_events(record_id, edges, received)
        newest = max(ms for ms, _ in rows)
        cursor = newest if self.cursor_ms is None else max(self.cursor_ms, newest)
        if events or cursor != self.cursor_ms:
            checkpoint = Checkpoint(
                source=SourceSystem.HUBSPOT, tenant=self.portal, object_type=self.singular,
                kind=CursorKind.MODIFIED_SINCE, cursor=_iso(cursor), updated_at=received,
                events_published=len(events),
            )  # fmt: skip
            await self.writer.commit(events, checkpoint)
        for ms, r in rows:  # remembered only once Kafka holds them
            self.memory.versions[str(r["id"])] = ms
        for record_id, edges in current.items():
            self.memory.edges[record_id] = edges
        self.cursor_ms = cursor
        self.memory.forget_before(cursor - self.lookback_ms)
        if events:
            self.metrics.events_ingested.labels(source=SYSTEM, object=object_label(self.singular)).inc(
                len(events)
            )
        return len(events)

    async def _edges(self, ids: list[str]) -> dict[str, set[Edge]]:
        return await read_edges(self.client, self.obj, self.others, ids)

    def _record_event(self, ms: int, result: dict[str, Any], received: datetime) -> ChangeEvent:
        return record_event(self.portal, self.obj, ms, result, received=received, origin=Origin.RECONCILER)

    def _association_events(self, record_id: str, edges: set[Edge], received: datetime) -> list[ChangeEvent]:
        return association_events(
            self.portal,
            self.singular,
            record_id,
            edges,
            before=self.memory.edges.get(record_id),
            received=received,
            origin=Origin.RECONCILER,
        )


def _modified(result: Mapping[str, Any], obj: str) -> str | None:
    value = (result.get("properties") or {}).get(LAST_MODIFIED[obj]) or result.get("updatedAt")
    return None if value is None else str(value)


async def _bounded(run: Any, stop: asyncio.Event, grace_s: float, obj: str) -> None:
    """Run until it ends; once ``stop`` is set, give it ``grace_s`` to finish its page, then cancel it."""
    task = asyncio.ensure_future(run)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), grace_s)
            except TimeoutError:
                log.warning("hubspot reconciler %s: still busy %.0fs after stop; cancelled", obj, grace_s)
        if task.done():
            task.result()
    finally:
        for pending in (task, stopped):
            if not pending.done():
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)


def check_options(
    settings: Settings, page_size: int, config: SyncConfig | None = None
) -> dict[str, tuple[str, ...]]:
    """The object types to page (`hubspot_objects` of ``config``, default the one ``sync.config`` names)
    and the properties to read of each, or SettingsError before anything starts."""
    unknown = sorted(
        {*(settings.poll.hubspot_objects or ()), *settings.poll.hubspot_properties} - {*RECONCILED}
    )
    if unknown:
        raise SettingsError(
            f"poll.hubspot_objects / poll.hubspot_properties: unsupported {unknown}; "
            "the reconciler knows contacts, companies, deals"
        )
    objects = hubspot_objects(settings, config or sync_config(settings))
    return {obj: object_properties(settings, obj, page_size) for obj in objects}


def hubspot_objects(settings: Settings, config: SyncConfig) -> tuple[str, ...]:
    """The object types the reconciler pages: ``poll.hubspot_objects`` when set (checked), else every
    object an enabled step syncs that the reconciler can page (`RECONCILED`). Raises `SettingsError`."""
    needed = synced_objects(config, SourceSystem.HUBSPOT)
    pageable = {obj: steps for obj, steps in needed.items() if obj in {singular(o) for o in RECONCILED}}
    override = settings.poll.hubspot_objects
    return polled("poll.hubspot_objects", override, pageable, name=plural, object_of=singular)


def object_properties(settings: Settings, obj: str, page_size: int) -> tuple[str, ...]:
    """The properties to read of one object type (configured, else the defaults), or SettingsError."""
    names = tuple(settings.poll.hubspot_properties.get(obj, DEFAULT_PROPERTIES[obj]))
    if MERGED_IDS not in names:  # tells the sync a merge's survivor whose merge webhook was lost
        names = (*names, MERGED_IDS)
    try:
        search_body(LAST_MODIFIED[obj], SearchPosition(0, tie=True), names, page_size)
    except ValueError as error:
        raise SettingsError(f"poll.hubspot_properties.{obj}: {error}") from None
    return names


class HubSpotObjects:
    """What the object types of one portal share (the HTTP session, search's 5/s limiter), and
    :meth:`run_object` per type: ``cdc poll`` hands it to its leases, :func:`run_hubspot_reconciler`
    runs every configured type in this process. Settings are checked on construction.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        page_size: int = MAX_PAGE,
        client: HubSpotClient | None = None,
        config: SyncConfig | None = None,
    ) -> None:
        portal = settings.hubspot.portal_id
        require(portal, "hubspot.portal_id", "poll")
        assert portal is not None  # noqa: S101 -- checked just above
        self.portal = portal
        self._properties = check_options(settings, page_size, config)
        self.objects = tuple(self._properties)
        self.cursors: dict[str, int | None] = {}
        self._settings, self._metrics, self._page_size = settings, metrics, page_size
        self._client = client or hubspot_client(settings.hubspot, metrics, command="poll")
        self.auth = SourceAuth(SYSTEM, metrics)

    async def __aenter__(self) -> HubSpotObjects:
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.__aexit__(None, None, None)

    async def _linked(self, object_type: str) -> set[str]:
        return await linked_ids(self._settings.kafka, SourceSystem.HUBSPOT, self.portal, object_type)

    def unit(self, obj: str) -> str:
        """The object type's name for leases and logs: ``hubspot/<portal>/<object type>``."""
        return join_key(SourceSystem.HUBSPOT, self.portal, obj)

    def _writer(self, obj: str) -> TransactionalChangeWriter:
        kafka = self._settings.kafka
        return TransactionalChangeWriter(
            kafka, f"{kafka.topic_prefix}cdc-reconciler-hubspot-{self.portal}-{obj}"
        )

    def _reconciler(
        self,
        obj: str,
        writer: TransactionalChangeWriter,
        cursor_ms: int | None,
        beat: Callable[[float], None],
        *,
        deletes_interval_s: float | None = None,
    ) -> _ObjectReconciler:
        poll = self._settings.poll
        return _ObjectReconciler(
            obj=obj,
            portal=self.portal,
            others=tuple(o for o in self.objects if o != obj),
            properties=self._properties[obj],
            client=self._client,
            writer=writer,
            metrics=self._metrics,
            cursor_ms=cursor_ms,
            interval_s=poll.hubspot_interval_s,
            lookback_ms=int(poll.hubspot_lookback_s * 1000),
            page_size=self._page_size,
            linked=self._linked,
            deletes_interval_s=poll.hubspot_deletes_interval_s
            if deletes_interval_s is None
            else deletes_interval_s,
            auth=self.auth,
            beat=beat,
        )

    async def catch_up(
        self, since_ms: int | None, stop: asyncio.Event, beat: Callable[[float], None] = lambda _wait_s: None
    ) -> None:
        """One search pass of every type from ``since_ms`` (less the lookback; ``None``: every record, a
        backfill), then the archived-records sweep: the gap an expired Webhooks Journal offset leaves, or
        what existed before a first start (`cdc.hubspot.journal`). Each type with its
        own writer (its transactional id: with the journal on, no periodic pass of the type runs)."""
        for obj in self.objects:
            writer = self._writer(obj)
            try:
                await writer.start()
                reconciler = self._reconciler(obj, writer, since_ms, beat, deletes_interval_s=1.0)
                await reconciler.passes(stop)
            finally:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(writer.stop(), SHUTDOWN_GRACE_S)

    async def run_object(
        self, obj: str, stop: asyncio.Event, beat: Callable[[float], None] = lambda _wait_s: None
    ) -> None:
        """Reconcile one object type until ``stop``, or until another replica fences it; raise when fatal.

        In order: start the transactional writer (fencing any earlier owner, whose open transaction is
        aborted), read the cursor (final now), run passes; on the way out (``SHUTDOWN_GRACE_S`` each) let
        the page in hand finish, close the writer, drop the type's gauges (its next owner reports them).
        """
        kafka = self._settings.kafka
        writer = self._writer(obj)
        reconciler: _ObjectReconciler | None = None
        try:
            await writer.start()
            key = checkpoint_key(SourceSystem.HUBSPOT, self.portal, singular(obj))
            found = (await read_checkpoints(kafka)).get(key)
            reconciler = self._reconciler(obj, writer, parse_ms(found.cursor) if found else None, beat)
            await _bounded(reconciler.run(stop), stop, SHUTDOWN_GRACE_S, obj)
        except WriterFencedError as fenced:
            log.warning(
                "hubspot reconciler %s: another replica took it over (%s); this one stops", obj, fenced
            )
        finally:
            if reconciler is not None:
                self.cursors[obj] = reconciler.cursor_ms
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(writer.stop(), SHUTDOWN_GRACE_S)
            for gauge in (self._metrics.checkpoint_age, self._metrics.poll_last_success):
                with contextlib.suppress(KeyError):
                    gauge.remove(SYSTEM, obj)


async def run_hubspot_reconciler(
    settings: Settings,
    stop: asyncio.Event,
    *,
    metrics: Metrics,
    page_size: int = MAX_PAGE,
    client: HubSpotClient | None = None,
    config: SyncConfig | None = None,
) -> None:
    """Reconcile every object type ``config`` syncs (default: ``sync.config``'s; `cdc.sources.polled`) in
    this process until ``stop`` is set; raise when fatal.

    One task per object type, all owned by one TaskGroup: a slow or throttled type never stalls the others
    (search's shared 5/s limiter is the only thing they share); a fatal error (403, a refused request, a
    401 before any call succeeded) ends them all and is raised as itself; a 401 after one pauses every type
    with backoff until the token works again (`cdc.sources.auth_pause`). Shutdown, in order, each step
    bounded:

    1. ``stop`` is set: each loop stops fetching; a page in hand finishes publishing (step bound
       ``SHUTDOWN_GRACE_S``; past it the pass is cancelled, its transaction aborted, no cursor moved);
    2. each writer closes: its producer flushes and the open transaction, if any, is aborted;
    3. the HTTP session closes;
    4. one summary line is logged.
    """
    objects = HubSpotObjects(settings, metrics, page_size=page_size, client=client, config=config)
    try:
        async with objects:
            try:
                async with asyncio.TaskGroup() as tasks:
                    for obj in objects.objects:
                        tasks.create_task(objects.run_object(obj, stop), name=f"hubspot-reconcile-{obj}")
            except* HubSpotApiError as group:
                raise group.exceptions[0] from None
    finally:
        log.info(
            "hubspot reconciler stopped: %s",
            ", ".join(f"{obj} at {_iso(ms) if ms else 'start'}" for obj, ms in objects.cursors.items()),
        )
