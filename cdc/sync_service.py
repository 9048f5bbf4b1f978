"""`cdc sync`: the sync role's lifecycle.

Start-up, in order: load and validate the sync configuration; open the HubSpot and Dataverse gateways
(a Dataverse token is fetched up front, so bad credentials fail here with a clear error); rebuild the link
view from the `links` topic (logged with its size and time); then run, under one task group, the link
tail, the router (change topics -> work topic) and the apply loop (work topic -> CRM writes), and serve
``/metrics``, ``/healthz`` and ``/readyz``.

Shutdown is numbered and bounded:

1. ``stop`` is set: the router and the apply loop finish the batch in hand (a batch paused by a CRM
   outage is abandoned uncommitted, to be re-read by whoever owns the partition next);
2. their consumers leave the groups and their producers flush and close;
3. the link tail stops, the gateways close, the probe server stops;
4. one summary line is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry

from cdc.dataverse.auth import TokenProvider
from cdc.dataverse.client import DataverseClient
from cdc.dataverse.errors import RetriableError
from cdc.dataverse.gateway import DataverseGateway
from cdc.hubspot.client import HubSpotClient
from cdc.hubspot.gateway import HubSpotGateway
from cdc.metrics import Metrics, object_label
from cdc.probes import probe_app
from cdc.serving import serve
from cdc.settings import Settings, require
from consumers.applier import Applier
from consumers.apply_loop import ApplyLoop
from consumers.batch import BatchResult
from consumers.config import SyncConfig
from consumers.loader import load_config
from consumers.ports import CrmGateway, CrmUnavailableError
from consumers.router import Router
from streams.keys import SourceSystem
from streams.link_store import LinkIndex
from streams.link_view import LinkView
from streams.topics import TopicCatalog
from streams.transactions import Lag

log = logging.getLogger("cdc.sync")
RESTART_RESET_S = 60.0


@asynccontextmanager
async def open_gateways(
    settings: Settings, metrics: Metrics
) -> AsyncIterator[dict[SourceSystem, CrmGateway]]:
    """Both CRMs' gateways, authenticated, closed on exit."""
    require(settings.hubspot.token, "hubspot.token", "sync")
    require(settings.hubspot.portal_id, "hubspot.portal_id", "sync")
    require(settings.dataverse.base_url, "dataverse.base_url", "sync")
    assert settings.hubspot.token is not None  # noqa: S101 -- checked above
    assert settings.hubspot.portal_id is not None  # noqa: S101 -- checked above
    tokens = TokenProvider(settings.dataverse)
    dataverse = DataverseClient(settings.dataverse, tokens, metrics)
    await _first_token(tokens)
    await dataverse.start()
    try:
        async with HubSpotClient(
            settings.hubspot.base_url,
            settings.hubspot.token.get_secret_value(),
            metrics=metrics,
            version=settings.hubspot.api_version,
        ) as hubspot:
            yield {
                SourceSystem.HUBSPOT: HubSpotGateway(hubspot, portal_id=settings.hubspot.portal_id),
                SourceSystem.DATAVERSE: DataverseGateway(dataverse, tenant=tokens.org_host),
            }
    finally:
        await dataverse.close()
        tokens.close()


async def _first_token(tokens: TokenProvider, *, attempts: int = 8) -> None:
    """Fetch a Dataverse token up front, so refused credentials fail the start-up with their reason, while an
    identity provider that is briefly down (5xx, network) is waited out with backoff."""
    for attempt in range(1, attempts + 1):
        try:
            await tokens.token()
        except RetriableError as error:
            if attempt == attempts:
                raise
            delay = min(30.0, 0.5 * 2**attempt)
            log.warning("dataverse token not available yet (%s); retrying in %.0fs", error, delay)
            await asyncio.sleep(delay)
        else:
            return


class SyncStats:
    """Turns batch results into metrics and keeps the totals for the summary line."""

    def __init__(self, metrics: Metrics, index: LinkIndex, config: SyncConfig) -> None:
        self.metrics = metrics
        self.index = index
        self.batches = 0
        self.writes = 0
        self.dead = 0
        # Series that alerts take `increase()` of exist from the start at 0: the first one counts.
        metrics.sync_deadletters.labels(step="route", reason="unreadable_event")
        for step in config.enabled_steps():
            metrics.sync_deadletters.labels(step=step.name, reason="record_error")
        for system in SourceSystem:
            metrics.sync_paused.labels(system=str(system))

    def routed(self, items: int, dead: int) -> None:
        self.metrics.sync_routed.inc(items)
        if dead:
            self.metrics.sync_deadletters.labels(step="route", reason="unreadable_event").inc(dead)
            self.dead += dead
        self.metrics.progress("sync-route")

    def applied(self, result: BatchResult, dead: int) -> None:
        m = self.metrics
        self.batches += 1
        for (target, obj, operation, outcome), n in result.writes.items():
            m.sync_writes.labels(
                target=target, object=object_label(obj), operation=operation, outcome=outcome
            ).inc(n)
            if outcome == "ok":
                self.writes += n
        for step, seconds in result.latencies:
            m.sync_latency.labels(step=step).observe(seconds)
        for (step, rule), n in result.conflicts.items():
            m.sync_conflicts.labels(step=step, rule=rule).inc(n)
        for (step, reason), n in result.skips.items():
            m.sync_skipped.labels(step=step, reason=reason).inc(n)
        if result.echoes:
            m.sync_echoes.inc(result.echoes)
        for failure in result.failed:
            m.sync_deadletters.labels(step=failure.step or "unknown", reason="record_error").inc(
                len(failure.items)
            )
        self.dead += dead
        self.count_links()
        m.progress("sync-apply")

    def lag(self, lag: Lag) -> None:
        labels = {"group": f"sync-{lag.role}", "topic": lag.topic, "partition": str(lag.partition)}
        self.metrics.consumer_lag_records.labels(**labels).set(lag.records)
        self.metrics.consumer_lag_seconds.labels(**labels).set(lag.seconds)

    def paused(self, error: CrmUnavailableError) -> None:
        self.metrics.sync_paused.labels(system=str(error.system)).inc()

    def count_links(self) -> None:
        for kind, n in self.index.counts().items():
            self.metrics.links.labels(object=object_label(kind.split("~", 1)[0])).set(n)


async def run_sync(
    settings: Settings,
    stop: asyncio.Event,
    *,
    metrics: Metrics | None = None,
    config: SyncConfig | None = None,
    on_ready: Callable[[str], None] = lambda _: None,
) -> None:
    """Run the sync stage until ``stop`` is set."""
    metrics = metrics or Metrics(CollectorRegistry())
    config = config or load_config(settings.sync.config)
    catalog = TopicCatalog.from_settings(settings.kafka)
    prefix = settings.sync.group_prefix
    started = time.monotonic()
    async with open_gateways(settings, metrics) as gateways:
        view = LinkView(settings.kafka, catalog)
        loaded = await view.load()
        stats = SyncStats(metrics, view.index, config)
        stats.count_links()
        applier = Applier(config, gateways, view.index, dry_run=settings.sync.dry_run)
        router = Router(
            settings.kafka,
            catalog,
            config,
            view.index,
            gateways,
            group=f"{prefix}sync-route",
            on_routed=stats.routed,
            on_lag=stats.lag,
        )
        apply = ApplyLoop(
            settings.kafka,
            catalog,
            applier,
            group=f"{prefix}sync-apply",
            batch_size=settings.sync.batch_size,
            batch_wait_ms=settings.sync.batch_wait_ms,
            on_batch=stats.applied,
            on_pause=stats.paused,
            on_lag=stats.lag,
            links=view,
        )
        app = probe_app(metrics, ready=_true)
        async with serve(
            app, host=settings.sync.host, port=settings.sync.port, name="sync", graceful_s=1.0
        ) as served:
            log.info(
                "sync running: %d steps enabled, %d links loaded in %.2fs; metrics at %s/metrics%s",
                len(config.enabled_steps()),
                loaded.links,
                loaded.seconds,
                served.base_url,
                " (dry run: nothing is written)" if settings.sync.dry_run else "",
            )
            on_ready(served.base_url)
            async with asyncio.TaskGroup() as group:
                group.create_task(_supervised("sync-links", view.run, stop), name="sync-links")
                group.create_task(_supervised("sync-route", router.run, stop), name="sync-route")
                group.create_task(_supervised("sync-apply", apply.run, stop), name="sync-apply")
    log.info(
        "sync stopped after %.0fs: %d batches, %d records written, %d dead letters",
        time.monotonic() - started,
        stats.batches,
        stats.writes,
        stats.dead,
    )


async def _supervised(
    name: str, run: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event
) -> None:
    """Run a loop until ``stop``; an unexpected error (a rebalance race, a broker hiccup) restarts it with
    backoff instead of ending the process. Each restart resumes from the group's committed offsets."""
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            await run(stop)
        except Exception:
            failures = 1 if time.monotonic() - started > RESTART_RESET_S else failures + 1
            delay = min(30.0, 0.5 * 2**failures)
            log.exception("%s failed; restarting in %.1fs (restart %d)", name, delay, failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)


async def _true() -> bool:
    return True
