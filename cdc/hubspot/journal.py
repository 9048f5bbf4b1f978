"""The Webhooks Journal source (part of `cdc poll`): HubSpot's change log, read by offset like a database log.

Per portal, one loop (one lease unit, ``hubspot/<portal>/journal``: one replica reads it at a time):

1. start the transactional writer (fencing an earlier owner and aborting its open transaction), then read
   the offset from ``checkpoints`` (``checkpoint/hubspot/<portal>/journal``, `CursorKind.JOURNAL_OFFSET`);
   With no checkpoint at all (a first start), every existing record is read by search first (`_backfill`:
   the journal holds only what changed since the subscriptions were made);
2. read up to 100 entries after it (``batch/{offset}/next/100`` of the local journal, ``installPortalId``;
   from the earliest entry when there is no offset yet) with the journal's client-credentials token;
3. fetch each entry's file from its pre-signed URL *without* the bearer token (fact sheet hubspot_2026.md
   §5), translate its events (`cdc.hubspot.journal_entries`), and publish them with the offset of the last
   entry in **one Kafka transaction** (`streams.checkpoint_store`): a crash before the commit re-reads that
   batch, and the aborted first attempt is invisible to ``read_committed`` readers, so nothing reaches the
   sync twice;
4. read on at once while batches come back full; otherwise wait ``poll.hubspot_journal_interval_s``.

Falling behind: a 404 for the stored offset means it expired (the source was away for longer than the 3 days
HubSpot keeps entries) or never existed. The source says so once (a warning naming the checkpoint's time),
counts it (``cdc_journal_expired_total``), runs the search reconciliation over the gap from the
checkpoint's time, with the archived-records sweep (`HubSpotObjects.catch_up`), and reads on from the
earliest entry: what changed before it is in the search pass, what changed after in the journal.

Every journal call is rate-limit exempt (`cdc.hubspot.paths.JOURNAL_EXEMPTIONS`), so with the
journal on no search runs in steady state: the periodic reconciler is off (`cdc.roles.poll`).

Not documented by HubSpot, so not assumed: the order of events within and across entries (each event keeps
its own ``occurredAt``; the sync orders a pair's changes by it), and the delay before a change appears (the
source reads whatever is there; measured in the sandbox, see the README).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aiohttp
import orjson

from cdc.hubspot.client import HubSpotClient
from cdc.hubspot.errors import CredentialsRefusedError, RequestError, RetriableError
from cdc.hubspot.journal_entries import EntryFileError, read_entry
from cdc.hubspot.reconciler import HubSpotObjects
from cdc.hubspot.tokens import OAuthTokens, TokenSource
from cdc.metrics import Metrics, object_label
from cdc.settings import HubSpotAuthSettings, Settings
from consumers.retries import unless_stopped
from streams.checkpoint_store import TransactionalChangeWriter, WriterFencedError, read_checkpoints
from streams.checkpoints import Checkpoint, CursorKind, checkpoint_key
from streams.events import ChangeEvent
from streams.keys import SourceSystem, join_key

__all__ = [
    "BACKFILLED",
    "JOURNAL_READ",
    "JOURNAL_SCOPES",
    "JOURNAL_UNIT",
    "SUBSCRIPTIONS_WRITE",
    "JournalOffError",
    "JournalSource",
    "journal_tokens",
]

log = logging.getLogger(__name__)
COMPONENT = "hubspot_journal"
JOURNAL_UNIT = "journal"
"""The checkpoint's and the lease unit's object-type slot."""
JOURNAL_READ = "developer.webhooks_journal.read"
"""The scope a journal read needs (fact sheet hubspot_2026.md §2)."""
SUBSCRIPTIONS_READ = "developer.webhooks_journal.subscriptions.read"
"""The scope that lists the subscriptions (checked at start-up: an unsubscribed type is never journaled)."""
SUBSCRIPTIONS_WRITE = "developer.webhooks_journal.subscriptions.write"
JOURNAL_SCOPES = (JOURNAL_READ, SUBSCRIPTIONS_READ)
"""What `cdc poll` asks for; `cdc provision` asks for ``SUBSCRIPTIONS_WRITE`` too."""
BACKFILLED = "backfilled"
"""The checkpoint's cursor once the first start's search backfill ran, before any journal offset was read."""
TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}
GDPR_SUBSCRIPTION = "GDPR_PRIVACY_DELETION"
"""The subscription type that journals contacts' privacy deletions (`cdc.hubspot.journal_subscriptions`)."""
"""HubSpot's object type ids of the types the daemon syncs (fact sheet hubspot.md §3.1)."""


class JournalOffError(RuntimeError):
    """The journal cannot be this daemon's change feed; the message says why, for the start-up log."""


BATCH = 100
NOT_FOUND = 404
FILE_TIMEOUT_S = 30.0
SUBSCRIPTIONS_RECHECK_S = 600.0
"""How often a running source checks that every synced type is still subscribed: a subscription deleted in
HubSpot would leave the journal silent about that type, so the source ends with `JournalOffError` (and
`cdc poll` with it: restarted, it logs why the journal is off and runs the search reconciler)."""
AUTH_WAIT_S = 30.0
"""How long the source waits after HubSpot refused its token before it tries again."""
UNFETCHABLE_AFTER = 10
"""Reads of one entry whose file could not be fetched (each read gives a fresh pre-signed URL) before the
source gives it up: it logs the entry, counts it (``cdc_journal_events_total{outcome="unfetchable"}``),
runs the search reconciliation from the last batch's time so the change behind it is still published, and
reads on. Without a bound one broken file would stop the journal for good."""


def journal_tokens(
    settings: Settings, metrics: Metrics, *, scopes: tuple[str, ...] = JOURNAL_SCOPES, role: str = "poll"
) -> TokenSource | str:
    """The journal's client-credentials tokens, or why there are none (a sentence for the start-up log).

    ``client_credentials``: the role's own tokens, when their scopes hold the journal's; ``oauth``: a second
    provider, the client-credentials grant of the same app (its client id and secret) for the journal scope
    alone; a static token or a legacy app: none (fact sheet §5: the journal takes a client-credentials
    token)."""
    hubspot = settings.hubspot
    if hubspot.app_kind != "project":
        return "a legacy app has no Webhooks Journal (it needs a project app's client credentials)"
    if hubspot.auth.kind == "static":
        return (
            "hubspot.auth.kind is static: the Webhooks Journal takes a client-credentials token (set "
            "hubspot.auth.kind oauth or client_credentials with the app's client id and secret)"
        )
    if hubspot.auth.kind == "client_credentials":
        lacking = [scope for scope in scopes if scope not in hubspot.auth.scopes]
        if lacking:
            return f"hubspot.auth.scopes lacks {', '.join(lacking)}, which the Webhooks Journal needs"
        return OAuthTokens(hubspot, metrics, role=f"{role}-journal")
    auth = HubSpotAuthSettings(kind="client_credentials", client_id=hubspot.auth.client_id, scopes=scopes)
    return OAuthTokens(hubspot.model_copy(update={"auth": auth}), metrics, role=f"{role}-journal")


@dataclass
class Unfetched:
    """Which entry's file failed, and in how many reads of it in a row (`UNFETCHABLE_AFTER`). Only that
    entry's own success clears the count: the entries before it in the batch are fetched again at every
    read, and must not start it over."""

    after: int = UNFETCHABLE_AFTER
    offset: str = ""
    times: int = 0

    def failed(self, offset: str) -> bool:
        """Count a failed fetch of ``offset``'s file; whether it is the one that gives the entry up."""
        self.times = self.times + 1 if offset == self.offset else 1
        self.offset = offset
        return self.times >= self.after

    def fetched(self, offset: str) -> None:
        if offset == self.offset:
            self.offset, self.times = "", 0


@dataclass
class _Entries:
    """What one read's entry files gave: their events, the entries given up and why, and the change time
    of the last event read before the first entry given up."""

    events: list[ChangeEvent] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    error: RetriableError | None = None
    seen_at: datetime | None = None


class JournalSource:
    """The journal loop of one portal (module docstring); ``objects`` runs the catch-up reconciliation."""

    def __init__(
        self, settings: Settings, metrics: Metrics, *, tokens: TokenSource, objects: HubSpotObjects
    ) -> None:
        self.portal = objects.portal
        self._settings, self._metrics, self._objects = settings, metrics, objects
        self._client = HubSpotClient(
            settings.hubspot.base_url, tokens, metrics=metrics, version=settings.hubspot.api_version
        )
        self._files: aiohttp.ClientSession | None = None
        self.offset: str | None = None
        self.expired = 0
        self.recheck_s = SUBSCRIPTIONS_RECHECK_S
        self.unfetchable = Unfetched()
        self._seen_at: datetime | None = None
        """The change time of the last event published."""
        self._checked_at = time.monotonic()
        self._warned = False

    async def __aenter__(self) -> JournalSource:
        await self._client.__aenter__()
        # No Authorization header ever: the files are pre-signed (module docstring).
        self._files = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FILE_TIMEOUT_S))
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._files is not None:
            await self._files.close()
            self._files = None
        await self._client.__aexit__(None, None, None)

    async def check(self) -> None:
        """A first token (credentials the token endpoint refuses fail here), then the subscriptions: every
        type the sync reads must be journaled, else :class:`JournalOffError` naming the missing ones (the
        journal would be silent about them, with the search reconciler off). No GDPR_PRIVACY_DELETION
        subscription for synced contacts is a warning, once: the journal still serves every other change,
        and webhooks, when on, bring the privacy deletions."""
        await self._client.token()
        self._checked_at = time.monotonic()
        api = self._client.api
        listed = await self._client.call(api.journal_subscriptions)
        ours = [
            sub
            for sub in listed.get("results") or []
            if isinstance(sub, dict) and str(sub.get("portalId")) == self.portal
        ]

        def types_of(kind: str) -> set[str]:
            return {str(s.get("objectTypeId")) for s in ours if s.get("subscriptionType", "OBJECT") == kind}

        covered = types_of("OBJECT")
        missing = [obj for obj in self._objects.objects if TYPE_IDS.get(obj) not in covered]
        if missing:
            raise JournalOffError(
                f"no journal subscription of portal {self.portal} for {', '.join(missing)} "
                "(`cdc provision` creates them)"
            )
        gdpr = types_of(GDPR_SUBSCRIPTION)
        if "contacts" in self._objects.objects and TYPE_IDS["contacts"] not in gdpr and not self._warned:
            self._warned = True  # once: the read goes on (the webhooks may still bring them)
            log.warning(
                "no GDPR_PRIVACY_DELETION journal subscription of portal %s for contacts: a privacy deletion "
                "reaches the sync only by webhook, and is lost with it (`cdc provision` creates it)",
                self.portal,
            )

    @property
    def unit(self) -> str:
        return join_key(SourceSystem.HUBSPOT, self.portal, JOURNAL_UNIT)

    async def run(self, stop: asyncio.Event, beat: Callable[[float], None] = lambda _wait_s: None) -> None:
        """Read until ``stop``, or until another replica fences this one (module docstring)."""
        kafka = self._settings.kafka
        writer = TransactionalChangeWriter(kafka, f"{kafka.topic_prefix}cdc-journal-hubspot-{self.portal}")
        try:
            await writer.start()
            found = (await read_checkpoints(kafka)).get(self._key)
            if found is None and not await self._backfill(writer, stop, beat):
                return  # stopped during the backfill: the next start backfills again
            self.offset = found.cursor if found and found.cursor != BACKFILLED else None
            since = found.updated_at if found else datetime.now(UTC)
            while not stop.is_set():
                wait = self._settings.poll.hubspot_journal_interval_s
                try:
                    full = await self._batch(writer, partial(self._reconcile_gap, since, stop, beat))
                    if time.monotonic() - self._checked_at >= self.recheck_s:
                        await self.check()  # a subscription deleted meanwhile would leave the journal silent
                    since = datetime.now(UTC)  # everything journaled until now is published
                except RequestError as error:
                    if error.status != NOT_FOUND or self.offset is None:
                        raise
                    await self._fell_behind(since, stop, beat)
                    continue
                except RetriableError as error:
                    log.warning("hubspot journal: read interrupted, next in %.0fs: %s", wait, error)
                    full = False
                    wait = max(wait, error.retry_after or 0.0)
                except CredentialsRefusedError as refused:
                    # Accepted at start-up (`check`), refused now: revoked or uninstalled while running.
                    # The offset stays where it is, so what changed meanwhile is read once it works again.
                    log.warning(
                        "hubspot journal: credentials refused (%s); next try in %.0fs", refused, AUTH_WAIT_S
                    )
                    full, wait = False, AUTH_WAIT_S
                self._metrics.progress(COMPONENT)
                beat(0.0 if full else wait)
                if not full:
                    await unless_stopped(stop, asyncio.sleep(wait))
        except WriterFencedError as fenced:
            log.warning("hubspot journal: another replica took it over (%s); this one stops", fenced)
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(writer.stop(), 10.0)

    @property
    def _key(self) -> str:
        return checkpoint_key(SourceSystem.HUBSPOT, self.portal, JOURNAL_UNIT)

    async def _backfill(
        self, writer: TransactionalChangeWriter, stop: asyncio.Event, beat: Callable[[float], None]
    ) -> bool:
        """No checkpoint yet (a first start): the journal holds only what changed since the subscriptions were
        made, so the records that exist already are read by search first (the reconciler's backfill), the way
        a database log's reader takes an initial snapshot before following the log; reading then starts at
        the earliest entry (a change journaled during the backfill is read twice, and the sync finds the
        second time nothing new). The checkpoint `BACKFILLED` records that it ran; False when ``stop``
        came first."""
        log.info("hubspot journal: no checkpoint yet: reading every existing record by search first")
        await self._objects.catch_up(None, stop, beat)
        if stop.is_set():
            return False
        checkpoint = Checkpoint(
            source=SourceSystem.HUBSPOT, tenant=self.portal, object_type=JOURNAL_UNIT,
            kind=CursorKind.JOURNAL_OFFSET, cursor=BACKFILLED, updated_at=datetime.now(UTC),
            events_published=0,
        )  # fmt: skip
        await writer.commit([], checkpoint)
        return True

    async def _fell_behind(
        self, since: datetime | None, stop: asyncio.Event, beat: Callable[[float], None]
    ) -> None:
        """The stored offset expired: say so once, count it, reconcile the gap, read on from the earliest."""
        self.expired += 1
        self._metrics.journal_expired.inc()
        since_ms = int((since or datetime.now(UTC)).timestamp() * 1000)
        log.warning(
            "hubspot journal: offset %s expired (checkpoint of %s is older than the 3 days HubSpot keeps): "
            "running the search reconciliation from then, then reading on from the earliest entry",
            self.offset,
            since.isoformat() if since else "unknown",
        )
        await self._objects.catch_up(since_ms, stop, beat)
        self.offset = None

    async def _reconcile_gap(
        self,
        since: datetime | None,
        stop: asyncio.Event,
        beat: Callable[[float], None],
        read: _Entries,
    ) -> None:
        """Entries given up (`UNFETCHABLE_AFTER`): what they held is searched for from the earlier of
        ``since`` (everything journaled until then is published) and ``seen_at`` (the change time of the
        last event read before them: behind a backlog it is older than ``since``), less the lookback."""
        seen_at = read.seen_at or self._seen_at
        if seen_at is not None and (since is None or seen_at < since):
            since = seen_at
        self._metrics.journal_events.labels(outcome="unfetchable").inc(len(read.given_up))
        log.error(
            "hubspot journal: entry %s could not be fetched in %d reads (last: %s): given up; running the "
            "search reconciliation from %s so its changes are still published",
            ", ".join(read.given_up),
            self.unfetchable.after,
            read.error,
            since.isoformat() if since else "unknown",
        )
        await self._objects.catch_up(int((since or datetime.now(UTC)).timestamp() * 1000), stop, beat)

    async def _batch(
        self,
        writer: TransactionalChangeWriter,
        reconcile: Callable[[_Entries], Awaitable[None]],
    ) -> bool:
        """One read of up to 100 entries, published with their offset; whether the batch was full. An
        entry file that fails raises `RetriableError` (the batch is read again, with new URLs) until
        `Unfetched.failed` says so; then ``reconcile`` runs before the batch commits past the entry."""
        api = self._client.api
        query = {"installPortalId": self.portal}
        if self.offset is None:
            answer = await self._client.call(api.journal_earliest, str(BATCH), query=query)
        else:
            answer = await self._client.call(api.journal_next, self.offset, str(BATCH), query=query)
        results = [r for r in answer.get("results") or [] if isinstance(r, dict) and r.get("currentOffset")]
        if not results:
            return False
        received = datetime.now(UTC)
        read = await self._entries(results, received)
        events = read.events
        if read.error is not None:
            # Before the offset moves past them, so nothing is lost.
            await reconcile(read)
        last = str(results[-1]["currentOffset"])
        checkpoint = Checkpoint(
            source=SourceSystem.HUBSPOT, tenant=self.portal, object_type=JOURNAL_UNIT,
            kind=CursorKind.JOURNAL_OFFSET, cursor=last, updated_at=received, events_published=len(events),
        )  # fmt: skip
        await writer.commit(events, checkpoint)
        self.offset = last
        if events:
            self._seen_at = events[-1].occurred_at
        self._metrics.journal_entries.inc(len(results))
        self._metrics.journal_events.labels(outcome="published").inc(len(events))
        for event in events:
            self._metrics.events_ingested.labels(
                source="hubspot", object=object_label(event.object_type)
            ).inc()
        return len(results) >= BATCH

    async def _entries(self, results: list[dict[str, Any]], received: datetime) -> _Entries:
        """The events of a read's entries, in order; an entry whose file fails raises `RetriableError`
        until `Unfetched.failed` says so, then it is listed as given up."""
        read = _Entries()
        for result in results:
            offset = str(result["currentOffset"])
            try:
                file = await self._file(str(result.get("url") or ""))
            except RetriableError as error:
                if not self.unfetchable.failed(offset):
                    raise
                read.given_up.append(offset)
                read.error = error
                continue
            self.unfetchable.fetched(offset)
            try:
                entry = read_entry(file, portal=self.portal, offset=offset, received_at=received)
            except EntryFileError as error:
                log.error("hubspot journal: entry %s skipped: %s", offset, error)  # noqa: TRY400 -- no trace
                self._metrics.journal_events.labels(outcome="unreadable").inc()
                continue
            read.events += entry.events
            if entry.events and not read.given_up:
                read.seen_at = entry.events[-1].occurred_at
            self._metrics.journal_events.labels(outcome="foreign").inc(entry.foreign)
            self._metrics.journal_events.labels(outcome="unreadable").inc(entry.unreadable)
        return read

    async def _file(self, url: str) -> Any:
        """An entry's file, fetched without the bearer token; an ended URL is retried by reading again."""
        assert self._files is not None  # noqa: S101 -- used inside `async with`
        started = time.monotonic()
        try:
            async with self._files.get(url) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RetriableError(f"journal file fetch failed: {type(error).__name__}") from None
        if status != 200:  # noqa: PLR2004
            # An ended pre-signed URL (403) or a storage hiccup: the batch is read again for new URLs.
            raise RetriableError(f"journal file answered {status} after {time.monotonic() - started:.1f}s")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
