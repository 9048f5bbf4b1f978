"""The Dataverse change-tracking poller (part of ``cdc poll``): one task per table, one owner for all.

Per table: the first run GETs the entity set with ``Prefer: odata.track-changes,odata.maxpagesize=N``
(and the configured ``$select``), follows ``@odata.nextLink`` page by page, and keeps the final
``@odata.deltaLink``; every ``poll.dataverse_interval_s`` it GETs that link for the rows changed since.

Checkpoints (guarantee 1): each page's events and the link to read next go to Kafka in one transaction
(:class:`TransactionalChangeWriter`, transactional id per tenant and table, so a second poller of the same
table fences the first). Mid-pass the cursor is the page's ``@odata.nextLink``: its paging cookie fixes
the pass's upper version, and the rows after the page's last version, so a restart reads exactly the pages
not yet committed; rows written meanwhile move above that version and arrive with the next delta. At the
end of a pass the cursor is the ``@odata.deltaLink``. A poll that finds nothing still commits the new
delta link: a heartbeat, so a quiet table's token never ages toward the org's expiry.

Deletes a full pass cannot list: a full pass (the first one, or the one that replaces an expired delta
token) lists rows, not deletes, so a row deleted while the token was expiring would be missed for good. At
the end of every full pass the poller therefore reads the `links` topic, takes the linked rows of the table
the pass did not list, asks Dataverse which of them still exist (one ``$filter`` GET per 50 ids: a row
created after the pass began is alive, not gone) and publishes a delete event for each one that is gone, in
the transaction of the pass's last page.

Change tracking is per table and off until enabled (fact sheet §1.1): before it reads a row of a table, the
poller reads the table's definition (``EntityDefinitions``: ``ChangeTrackingEnabled``,
``CanChangeTrackingBeEnabled``). A table without it publishes nothing: one error says which table and that
`cdc provision --dataverse` turns it on, ``cdc_dataverse_change_tracking_enabled{table}`` is 0 and
``/readyz`` names it, the other tables keep polling, and the definition is read again every
``poll.dataverse_recheck_s``, so turning it on later needs no restart. The answer is checked too (a table
without tracking answers a tracking read as an ordinary query: no ``Preference-Applied:
odata.track-changes``, no delta link), so a definition the app user may not read cannot make the poller
publish a whole table it cannot follow.

Credentials: the first token is fetched on set-up; refused there, or refused before any request of the
org succeeded, it is fatal (the settings are wrong). Refused later (the secret rotated or the app disabled:
msal's token request refused, or a 401 that a fresh token does not cure), every table of the org backs off
(`cdc.sources.auth_pause`) with its cursor where its last committed page left it, and resumes from there
once a token is granted again: nothing is lost.

Tenant: the org host from ``dataverse.base_url`` (``contoso.crm.dynamics.com``; ``127.0.0.1:PORT`` for the
sandbox), lower case. Object type: the table's logical name (``contacts`` -> ``contact``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cdc.dataverse import (
    DataverseAuthError,
    DataverseClient,
    ExpiredDeltaTokenError,
    FatalError,
    RetriableError,
    TokenProvider,
    UnauthorizedError,
    entity_logical_name,
    paths,
    row_to_event,
)
from cdc.dataverse.paths import entity_set_name
from cdc.metrics import Metrics, object_label
from cdc.settings import PollSettings, Settings
from cdc.sources.auth_pause import AUTH_POLICY, SourceAuth
from cdc.sources.linked import linked_ids
from cdc.sources.polled import polled, sync_config, synced_objects
from consumers.config import SyncConfig
from consumers.retries import STOPPED, RetryPolicy, retrying, unless_stopped
from streams.checkpoint_store import TransactionalChangeWriter, WriterFencedError, read_checkpoints
from streams.checkpoints import Checkpoint, CursorKind, checkpoint_key
from streams.events import ChangeEvent, Operation
from streams.keys import SourceSystem, join_key

__all__ = ["DataverseTables", "dataverse_tables", "run_dataverse_poller", "table_url"]

log = logging.getLogger("cdc.poll.dataverse")
COMPONENT = "dataverse_poller"
COMMIT_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 10.0
PROGRESS_EVERY_S = 5.0
MAX_TABLE_BACKOFF_S = 60.0
VERIFY_IDS = 50
"""Ids per existence check after a full pass (a ``$filter`` of 50 GUIDs stays far below URL limits)."""
TRACKING = "odata.track-changes"
_FORBIDDEN = 403
_NOT_FOUND = 404


class ChangeTrackingOffError(Exception):
    """The table has no change tracking (its definition says so, or it answered a tracking read as an
    ordinary query): nothing of it can be followed, so nothing of it is published."""


def _tracking_applied(headers: Mapping[str, str]) -> bool:
    """``Preference-Applied`` names ``odata.track-changes`` (CT: the answer of a tracked table does)."""
    return TRACKING in {part.strip() for part in headers.get("Preference-Applied", "").split(",")}


def dataverse_tables(settings: Settings, config: SyncConfig) -> tuple[str, ...]:
    """The entity sets to poll: ``poll.dataverse_tables`` when set (checked), else every table an enabled
    step syncs (``lead`` -> ``leads``), `cdc.sources.polled`. Raises `SettingsError`."""
    needed = synced_objects(config, SourceSystem.DATAVERSE)
    override = settings.poll.dataverse_tables
    return polled(
        "poll.dataverse_tables", override, needed, name=entity_set_name, object_of=entity_logical_name
    )


def table_url(api_root: str, table: str, poll: PollSettings, *, where: str | None = None) -> str:
    """The entity set's URL with the configured ``$select`` (the key column always first when there is
    one) and, when given, a ``$filter`` (plain queries only: change tracking refuses ``$filter``)."""
    columns = list(poll.dataverse_select.get(table, ()))
    key = f"{entity_logical_name(table)}id"
    if columns and key not in columns:
        columns.insert(0, key)
    return paths.with_options(paths.rows(api_root, table), select=columns, where=where)


@dataclass
class _TablePoller:
    table: str
    tenant: str
    poll: PollSettings
    client: DataverseClient
    writer: TransactionalChangeWriter
    metrics: Metrics
    stop: asyncio.Event
    link: str | None = None
    token_issued: float = field(default_factory=time.time)
    pass_rows: int = 0
    pass_pages: int = 0
    pass_started: float = 0.0
    last_progress_log: float = 0.0
    linked: Callable[[str], Awaitable[set[str]]] | None = None
    """The ids of this table's rows in the links (for the deletes check after a full pass)."""
    full_pass: bool = False
    seen: set[str] = field(default_factory=set)
    tracked: bool = False
    """The table's definition (or its answer) said change tracking is on; checked before the first read."""
    told_off: bool = False
    """The error about tracking being off was logged (once; each re-check only logs at debug)."""
    auth: SourceAuth | None = None
    """The org's credentials as every table sees them; None: a refused credential is fatal (not paused)."""
    beat: Callable[[float], None] = lambda _wait_s: None
    """Called after each step with the wait before the next: the loop is alive (`cdc poll`'s ``/readyz``)."""

    @property
    def object_type(self) -> str:
        return entity_logical_name(self.table)

    def initial_url(self) -> str:
        return table_url(self.client.api_root, self.table, self.poll)

    async def run(self) -> None:
        """Poll until ``stop``; transient failures back off per table, and so do refused credentials (with
        ``auth``'s policy, until a token is granted again); other fatal ones end the process."""
        self.metrics.checkpoint_age.labels(system="dataverse", table=self.table).set_function(
            lambda: max(0.0, time.time() - self.token_issued)
        )
        # The series exists from the start at 0, so the first reset is an increase alerts can see.
        self.metrics.delta_token_resets.labels(table=self.table)
        while not self.stop.is_set():
            try:
                delay = await retrying(
                    self._polled,
                    policy=AUTH_POLICY if self.auth is None else self.auth.policy,
                    on=self._paused,
                    what="poll_auth",
                    stop=self.stop,
                    keepalive=self._alive,
                    on_retry=self.metrics.retried,
                    level=logging.DEBUG,  # `SourceAuth` logs the changes of state, never each retry
                )
            except ChangeTrackingOffError as off:
                self._tracking_off(str(off))
                delay = self.poll.dataverse_recheck_s
            except ExpiredDeltaTokenError:
                log.warning("dataverse %s: delta token expired or invalid; starting a full pass", self.table)
                self.metrics.delta_token_resets.labels(table=self.table).inc()
                self.link = None
                continue
            except (RetriableError, UnauthorizedError, DataverseAuthError):
                if self.stop.is_set():
                    return  # stopped while waiting to try again
                raise
            self.beat(delay)
            if delay > 0:
                await unless_stopped(self.stop, asyncio.sleep(delay))

    async def _alive(self) -> None:
        """While a retry waits: the loop is alive, waiting on purpose (each second)."""
        self.beat(1.0)

    async def _polled(self) -> float:
        """One step; a transient failure (one the client's retries did not get past) is tried again with
        backoff, from twice the poll interval up to `MAX_TABLE_BACKOFF_S`."""
        interval = self.poll.dataverse_interval_s
        delay = await retrying(
            self._step,
            policy=RetryPolicy(
                retries=None, wait_initial_s=2 * interval, wait_max_s=MAX_TABLE_BACKOFF_S, jitter_s=interval
            ),
            on=(RetriableError,),
            what="dataverse_poll",
            stop=self.stop,
            keepalive=self._alive,
            on_retry=self.metrics.retried,
        )
        if self.auth is not None:
            self.auth.accepted()
        return delay

    async def _step(self) -> float:
        if not self.tracked:
            await self.check_tracking()
        return await self.step()

    def _paused(self, error: Exception) -> bool:
        """A refused credential pauses the table (``auth``), unless no call ever succeeded: then fatal."""
        refused = isinstance(error, UnauthorizedError | DataverseAuthError)
        return refused and self.auth is not None and self.auth.refused(self.table, error)

    async def check_tracking(self) -> None:
        """Read the table's definition; raise `ChangeTrackingOffError` unless it has change tracking.

        A definition the app user may not read (403) is not a verdict: the first answer decides then.
        A table the org does not have is fatal, as its first read would be.
        """
        url = paths.with_options(
            paths.definition(self.client.api_root, self.object_type),
            select=["LogicalName", "ChangeTrackingEnabled", "CanChangeTrackingBeEnabled"],
        )
        try:
            definition = await self.client.get_json(url, endpoint=paths.METADATA_ENTITY)
        except FatalError as error:
            if error.status == _NOT_FOUND:
                raise FatalError(
                    error.status, error.code, f"the org has no table {self.object_type!r} ({self.table})"
                ) from error
            if error.status != _FORBIDDEN:
                raise
            log.warning(
                "dataverse %s: the table's definition cannot be read (%s); its first answer will tell "
                "whether it has change tracking",
                self.table,
                error.message,
            )
            self._tracking_on()
            return
        if definition.get("ChangeTrackingEnabled") is True:
            self._tracking_on()
            return
        can = (definition.get("CanChangeTrackingBeEnabled") or {}).get("Value")
        if can is False:
            raise ChangeTrackingOffError(
                f"change tracking is not enabled on table {self.object_type!r} and cannot be "
                "(CanChangeTrackingBeEnabled is false): its changes cannot be polled; disable the sync "
                "steps that sync it, or poll other tables (poll.dataverse_tables)"
            )
        raise ChangeTrackingOffError(
            f"change tracking is not enabled on table {self.object_type!r}: run `cdc provision "
            "--dataverse` (or turn on Track changes in the table's advanced settings)"
        )

    def _tracking_on(self) -> None:
        if self.told_off:
            log.warning("dataverse %s: change tracking is on now; polling the table", self.table)
        self.tracked, self.told_off = True, False
        self.metrics.change_tracking.labels(table=self.table).set(1)

    def _tracking_off(self, why: str) -> None:
        """Nothing of this pass was committed; forget it, say so once, check again later."""
        self.tracked, self.link, self.full_pass = False, None, False
        self.pass_rows = self.pass_pages = 0
        self.seen.clear()
        self.metrics.change_tracking.labels(table=self.table).set(0)
        if self.told_off:
            log.debug("dataverse %s: still no change tracking", self.table)
            return
        self.told_off = True
        log.error(
            "dataverse %s: %s. Nothing of %s is read or published until it is; the other tables keep "
            "polling, and this one is checked again every %gs",
            self.table,
            why,
            self.table,
            self.poll.dataverse_recheck_s,
        )

    async def _read(self, url: str, prefer: str) -> tuple[dict[str, Any], bool]:
        """One page and whether its answer applied ``odata.track-changes``."""
        endpoint = paths.rows_label(self.table, "track")
        answer = await self.client.send("GET", url, endpoint=endpoint, headers={"Prefer": prefer})
        return answer.json_object(endpoint), _tracking_applied(answer.headers)

    async def step(self) -> float:
        """Read and commit one page; the delay before the next step (0 while a pass has more pages)."""
        if self.link is None:
            self.link = self.initial_url()
            self.full_pass = True
            self.seen.clear()
            log.info("dataverse %s: full change-tracking pass starts", self.table)
        first_page = self.pass_pages == 0 and self.link == self.initial_url()
        if self.pass_pages == 0:
            self.pass_started = self.last_progress_log = time.monotonic()
        prefer = f"{TRACKING},odata.maxpagesize={self.poll.dataverse_page_size}"
        read = await unless_stopped(self.stop, self._read(self.link, prefer))
        if read is STOPPED:
            return 0.0  # stopping: nothing of this page was committed
        page, applied = read
        next_link, delta_link = page.get("@odata.nextLink"), page.get("@odata.deltaLink")
        cursor = next_link or delta_link
        if (first_page and not applied) or not isinstance(cursor, str) or not cursor:
            # An ordinary query's answer (fact sheet §1.1): publishing it would send the whole table,
            # then fail for want of a delta link, and send it all again on every restart.
            raise ChangeTrackingOffError(
                f"table {self.object_type!r} answered a change-tracking read as an ordinary query (no "
                "delta link): change tracking is not enabled on it; run `cdc provision --dataverse`"
            )
        received = datetime.now(UTC)
        entries = page.get("value") or []
        events = [
            row_to_event(entry, tenant=self.tenant, object_type=self.object_type, received_at=received)
            for entry in entries
        ]
        if self.full_pass:
            self.seen.update(e.object_id for e in events if e.operation is Operation.UPSERT)
            if not next_link:
                events += await self._vanished(received)
        self.pass_rows += len(events)
        checkpoint = Checkpoint(
            source=SourceSystem.DATAVERSE,
            tenant=self.tenant,
            object_type=self.object_type,
            kind=CursorKind.DELTA_LINK,
            cursor=cursor,
            updated_at=received,
            events_published=self.pass_rows,
        )
        # Not interrupted by stop: a page whose transaction has begun finishes (or aborts on timeout).
        await asyncio.wait_for(self.writer.commit(events, checkpoint), COMMIT_TIMEOUT_S)
        self.link = cursor
        self.pass_pages += 1
        self._count(len(events))
        if next_link:
            self._log_progress()
            return 0.0
        self.full_pass = False
        self.seen.clear()
        self._finish_pass(received)
        return self.poll.dataverse_interval_s

    async def _vanished(self, received: datetime) -> list[ChangeEvent]:
        """Delete events for the linked rows this full pass did not list and Dataverse no longer has."""
        if self.linked is None:
            return []
        missing = sorted((await self.linked(self.object_type)) - self.seen)
        key = f"{self.object_type}id"
        alive: set[str] = set()
        for start in range(0, len(missing), VERIFY_IDS):
            chunk = missing[start : start + VERIFY_IDS]
            where = " or ".join(f"{key} eq {record_id}" for record_id in chunk)
            url = paths.with_options(paths.rows(self.client.api_root, self.table), select=[key], where=where)
            page = await self.client.get_json(url, endpoint=paths.rows_label(self.table, "verify"))
            alive.update(str(row.get(key) or "").lower() for row in page.get("value") or [])
        gone = [record_id for record_id in missing if record_id not in alive]
        if gone:
            log.warning(
                "dataverse %s: %d linked row(s) are gone though no delete was listed (deleted while the "
                "delta token expired): publishing their deletes",
                self.table,
                len(gone),
            )
        entry = {"@odata.context": f"{self.table}/$deletedEntity", "reason": "missing_after_full_pass"}
        return [
            row_to_event(
                {**entry, "id": record_id},
                tenant=self.tenant,
                object_type=self.object_type,
                received_at=received,
            )
            for record_id in gone
        ]

    def _count(self, rows: int) -> None:
        labels = {"system": "dataverse", "table": self.table}
        self.metrics.poll_rows.labels(**labels).inc(rows)
        self.metrics.events_ingested.labels(source="dataverse", object=object_label(self.object_type)).inc(
            rows
        )
        self.metrics.progress(COMPONENT)

    def _log_progress(self) -> None:
        now = time.monotonic()
        if now - self.last_progress_log < PROGRESS_EVERY_S:
            return
        self.last_progress_log = now
        elapsed = now - self.pass_started
        log.info(
            "dataverse %s: %d rows in %d pages so far (%.0f rows/s)",
            self.table,
            self.pass_rows,
            self.pass_pages,
            self.pass_rows / elapsed if elapsed > 0 else 0.0,
        )

    def _finish_pass(self, received: datetime) -> None:
        elapsed = time.monotonic() - self.pass_started
        labels = {"system": "dataverse", "table": self.table}
        self.metrics.poll_seconds.labels(**labels).observe(elapsed)
        self.metrics.poll_last_success.labels(**labels).set(received.timestamp())
        self.token_issued = received.timestamp()
        if self.pass_pages > 1 or self.pass_rows:
            log.info(
                "dataverse %s: %d rows in %d pages, %.2fs",
                self.table,
                self.pass_rows,
                self.pass_pages,
                elapsed,
            )
        self.pass_rows = self.pass_pages = 0


class DataverseTables:
    """What the tables of one org share (msal tokens, the HTTP session), and :meth:`run_table` per table.

    ``cdc poll`` hands :meth:`run_table` to its leases, which start and stop tables as replicas come and
    go; :func:`run_dataverse_poller` runs every configured table in this process. Enter it first: the
    credentials are checked on entry, so a wrong secret fails before anything else runs.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        retry_policy: RetryPolicy | None = None,
        config: SyncConfig | None = None,
    ) -> None:
        # The tables first: a setting that leaves out a table the steps sync fails before any I/O.
        self.tables = dataverse_tables(settings, config or sync_config(settings))
        self._settings = settings
        self._metrics = metrics
        self._tokens = TokenProvider(settings.dataverse)
        self._client = DataverseClient(settings.dataverse, self._tokens, metrics, policy=retry_policy)
        self.tenant = self._tokens.org_host
        self.auth = SourceAuth("dataverse", metrics)

    async def __aenter__(self) -> DataverseTables:
        try:
            await self._tokens.token()
            await self._client.start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.close()
        self._tokens.close()

    async def _linked(self, object_type: str) -> set[str]:
        return await linked_ids(self._settings.kafka, SourceSystem.DATAVERSE, self.tenant, object_type)

    def unit(self, table: str) -> str:
        """The table's name for leases and logs: ``dataverse/<org host>/<entity set>``."""
        return join_key(SourceSystem.DATAVERSE, self.tenant, table)

    def transactional_id(self, table: str) -> str:
        return f"{self._settings.kafka.topic_prefix}cdc-poll-dataverse-{self.tenant}-{table}"

    async def run_table(
        self, table: str, stop: asyncio.Event, beat: Callable[[float], None] = lambda _wait_s: None
    ) -> None:
        """Own one table until ``stop``, or until another poller fences it. Raises :class:`FatalError`.

        In order: start the table's transactional writer (this fences any earlier owner and aborts its
        open transaction), then read the checkpoint (final now), then poll; on the way out, close the
        writer (bounded) and drop the table's gauges, which another replica reports from now on.
        """
        writer = TransactionalChangeWriter(self._settings.kafka, self.transactional_id(table))
        poller = _TablePoller(
            table, self.tenant, self._settings.poll, self._client, writer, self._metrics, stop
        )
        poller.linked, poller.auth, poller.beat = self._linked, self.auth, beat
        try:
            await writer.start()
            key = checkpoint_key(SourceSystem.DATAVERSE, self.tenant, poller.object_type)
            resumed = (await read_checkpoints(self._settings.kafka)).get(key)
            if resumed is not None:
                poller.link = resumed.cursor
                # Resumed mid-pass (a page link, not a delta link): the deletes check still runs at its end;
                # the rows listed before the restart are not in `seen`, so they are asked about, not lost.
                poller.full_pass = "$deltatoken" not in resumed.cursor
                poller.token_issued = resumed.updated_at.timestamp()
                log.info("dataverse %s: resuming from the checkpoint of %s", table, resumed.updated_at)
            await poller.run()
        except WriterFencedError as fenced:
            log.warning(
                "dataverse %s: another poller took the table over (%s); this one stops polling it",
                table,
                fenced,
            )
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(writer.stop(), CLOSE_TIMEOUT_S)
            for gauge in (self._metrics.checkpoint_age, self._metrics.poll_last_success):
                with contextlib.suppress(KeyError):
                    gauge.remove("dataverse", table)
            with contextlib.suppress(KeyError):
                self._metrics.change_tracking.remove(table)


async def run_dataverse_poller(
    settings: Settings,
    stop: asyncio.Event,
    *,
    metrics: Metrics,
    retry_policy: RetryPolicy | None = None,
    config: SyncConfig | None = None,
) -> None:
    """Poll every table ``config``'s enabled steps sync (default: ``sync.config``'s; or the
    ``poll.dataverse_tables`` override, `cdc.sources.polled`) in this process until ``stop`` is set.
    Raises a :class:`FatalError`, or `SettingsError` for an override that leaves out a table.

    Start: credentials are checked first (a wrong secret fails here, before anything else runs), then
    one task per table runs under one ``asyncio.TaskGroup`` (see :meth:`DataverseTables.run_table`).

    Shutdown, in order, each step bounded:

    1. stop fetching: an in-flight GET is cancelled (nothing of it was committed yet);
    2. a page whose transaction has begun finishes it (at most ``COMMIT_TIMEOUT_S``; on timeout the broker
       aborts it and the restart re-reads that page);
    3. close each table's transactional producer (``CLOSE_TIMEOUT_S`` each);
    4. close the HTTP session, then msal's HTTP session;
    5. one summary log line.
    """
    started = time.monotonic()
    tables_count = 0
    try:
        async with DataverseTables(settings, metrics, retry_policy=retry_policy, config=config) as tables:
            tables_count = len(tables.tables)
            try:
                async with asyncio.TaskGroup() as group:
                    for table in tables.tables:
                        group.create_task(tables.run_table(table, stop), name=f"dataverse-poll-{table}")
            except* FatalError as failures:
                raise failures.exceptions[0] from None
    finally:
        log.info("dataverse poller stopped after %.0fs: %d tables", time.monotonic() - started, tables_count)
