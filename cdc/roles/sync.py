"""`cdc sync`: the sync role's lifecycle.

Start-up, in order: load and validate the sync configuration; open the HubSpot and Dataverse gateways
(a Dataverse token, and a HubSpot one when ``hubspot.auth`` is OAuth, is fetched up front, so refused
credentials fail here with a clear error; refused later, they pause the batches); check the configuration
against both CRMs' metadata (`cdc.crm_metadata`: a problem refuses the start, exit 78); bring the link
store (a file under ``sync.state_dir``) up to date with the `links` topic: the tail after the offsets it
kept, or the whole topic when it cannot follow on from them (logged with its size and time); read the
`sync.sent` topic (what other replicas wrote whose links have not committed: `streams.sent_log`) and the
`exclusions` topic (the records refused or skipped now: `streams.exclusions`) and the `control` topic
(what an operator paused: `streams.control`; a replica started while paused stays paused); then run, under
one task group, the link tail, the sent-values tail, the exclusions tail, the control tail, the router
(change topics -> work topic), the apply loop (work topic -> CRM writes) and, when an option set is
``live``, the refresh of its labels (`cdc.live_options`; read once before the loops), each restarted after
an unexpected failure until ``sync.loop_failures_max`` fall within ``sync.loop_failures_window_s`` (then the
role exits 70: `cdc.supervision`), and serve ``/metrics``, ``/healthz`` and ``/readyz``
(`cdc.roles.probes`): ready while Kafka answers and the topics exist, the router and the apply loop are
members of their groups, and none of the loops stalls.

Shutdown is numbered and bounded:

1. ``stop`` is set: the router and the apply loop finish the batch in hand (a batch paused by a CRM
   outage is abandoned uncommitted, to be re-read by whoever owns the partition next);
2. their consumers leave the groups and their producers flush and close;
3. the link, sent-values, exclusions and control tails stop, the probe server stops;
4. the link store checkpoints its file and closes (a kill skips it: the file and its offsets still agree),
   then the gateways close;
5. one summary line is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

from prometheus_client import CollectorRegistry

from cdc.budget import shared_budgets
from cdc.crm_metadata import require_crm_fit
from cdc.dataverse.auth import TokenProvider
from cdc.dataverse.client import DataverseClient
from cdc.dataverse.errors import RetriableError
from cdc.dataverse.gateway import GATEWAY_POLICY as DATAVERSE_POLICY
from cdc.dataverse.gateway import DataverseGateway
from cdc.forms import FormSubmissionLoop
from cdc.hubspot.client import hubspot_client
from cdc.hubspot.errors import RetriableError as HubSpotRetriableError
from cdc.hubspot.gateway import GATEWAY_POLICY as HUBSPOT_POLICY
from cdc.hubspot.gateway import HubSpotGateway
from cdc.live_options import LiveOptions
from cdc.metrics import Metrics, object_label
from cdc.roles.probes import STALL_AFTER_S, Check, Heartbeats, KafkaCheck, Probes, joined
from cdc.serving import serve
from cdc.settings import Settings, require
from cdc.supervision import LoopFailedError, supervised
from consumers.applier import Applier
from consumers.apply_loop import ApplyLoop
from consumers.batch import BatchResult
from consumers.config import SyncConfig
from consumers.loader import load_config
from consumers.parking import held_pairs
from consumers.ports import CrmGateway, CrmUnavailableError
from consumers.retries import Retry, RetryPolicy, retrying
from consumers.router import Router
from consumers.sent import SentValues
from streams.admin import cluster_id
from streams.control import EVERYTHING, ControlView, Pauses
from streams.exclusion_view import ExcludedKeys
from streams.keys import SourceSystem
from streams.link_db import LinkStore
from streams.link_store import CommittedLinks
from streams.link_view import LinkView
from streams.sent_log import SentLog
from streams.topics import TopicCatalog, TopicRole
from streams.transactions import Lag
from streams.work import WorkItem

log = logging.getLogger("cdc.sync")
TOPICS = (
    TopicRole.CHANGES_HUBSPOT,
    TopicRole.CHANGES_DATAVERSE,
    TopicRole.WORK,
    TopicRole.SENT,
    TopicRole.LINKS,
    TopicRole.AUDIT,
    TopicRole.DEADLETTER,
    TopicRole.EXCLUSIONS,
    TopicRole.CONTROL,
    TopicRole.PARKED,
)
"""What `cdc sync` reads and writes: ``/readyz`` asks that each exists."""
FIRST_TOKEN = RetryPolicy(retries=7, wait_initial_s=1.0, wait_max_s=30.0)


@asynccontextmanager
async def open_gateways(
    settings: Settings, metrics: Metrics
) -> AsyncIterator[dict[SourceSystem, CrmGateway]]:
    """Both CRMs' gateways, authenticated, closed on exit."""
    require(settings.hubspot.portal_id, "hubspot.portal_id", "sync")
    require(settings.dataverse.base_url, "dataverse.base_url", "sync")
    assert settings.hubspot.portal_id is not None  # noqa: S101 -- checked above
    # The short client policies: a CRM that keeps refusing reaches the engine, whose pause is stop-aware
    # and keeps the consumer in its group (`consumers.retries`).
    client = hubspot_client(settings.hubspot, metrics, command="sync", policy=HUBSPOT_POLICY)
    tokens = TokenProvider(settings.dataverse)
    dataverse = DataverseClient(settings.dataverse, tokens, metrics, policy=DATAVERSE_POLICY)
    every = settings.sync.owners_refresh_s
    try:
        await _first_token(tokens.token, "dataverse_token", metrics)
        await _first_token(client.token, "hubspot_token", metrics)
        await dataverse.start()
        async with client as hubspot:
            yield {
                SourceSystem.HUBSPOT: HubSpotGateway(
                    hubspot,
                    portal_id=settings.hubspot.portal_id,
                    owners_refresh_s=every,
                    app_id=settings.hubspot.app_id,
                ),
                SourceSystem.DATAVERSE: DataverseGateway(
                    dataverse, tenant=tokens.org_host, owners_refresh_s=every
                ),
            }
    finally:
        await dataverse.close()
        tokens.close()


async def _first_token(token: Callable[[], Awaitable[str]], what: str, metrics: Metrics) -> None:
    """Fetch a CRM's token up front (Dataverse's; HubSpot's when it is issued by the token endpoint), so
    refused credentials fail the start-up with their reason, while a token endpoint that is briefly down
    (5xx, network) is waited out with backoff. Refused later, they pause the batches instead."""
    await retrying(
        token,
        policy=FIRST_TOKEN,
        on=(RetriableError, HubSpotRetriableError),
        what=what,
        on_retry=metrics.retried,
    )


@asynccontextmanager
async def _exclusions(
    settings: Settings, catalog: TopicCatalog, beat: Callable[[], None], count: Callable[[], None]
) -> AsyncIterator[tuple[ExcludedKeys, int]]:
    """The `exclusions` topic read to its end (and how many records it excludes), closed on exit. Each beat
    of its tail (every 200 ms at most) also ``count``s: the gauge follows what other replicas excluded or
    cleared, so an idle replica never holds up the `max` over replicas with a stale count."""

    def on_beat() -> None:
        beat()
        count()

    view = ExcludedKeys(settings.kafka, catalog, on_beat=on_beat)
    try:  # the gauge is counted at the tail's first beat, once the caller has the view in hand
        yield view, await view.load()
    finally:
        await view.close()


def _form_loop(
    settings: Settings,
    catalog: TopicCatalog,
    config: SyncConfig,
    index: CommittedLinks,
    gateways: dict[SourceSystem, CrmGateway],
) -> FormSubmissionLoop:
    """The form-submissions loop (`cdc.forms`), when the configuration has a ``form_submissions`` section."""
    hubspot, dataverse = gateways[SourceSystem.HUBSPOT], gateways[SourceSystem.DATAVERSE]
    assert isinstance(hubspot, HubSpotGateway), hubspot  # noqa: S101 -- open_gateways makes these
    assert isinstance(dataverse, DataverseGateway), dataverse  # noqa: S101
    assert config.form_submissions is not None  # noqa: S101 -- the caller checked
    return FormSubmissionLoop(
        settings.kafka,
        catalog,
        config.form_submissions,
        index,
        hubspot.client,
        dataverse.client,
        portal_id=int(hubspot.tenant),
        group=f"{settings.sync.group_prefix}sync-forms",
    )


class SyncStats:
    """Turns batch results into metrics and keeps the totals for the summary line."""

    def __init__(self, metrics: Metrics, index: CommittedLinks, config: SyncConfig) -> None:
        self.metrics = metrics
        self.index = index
        self.config = config
        self.exclusions: ExcludedKeys | None = None
        """Set once read: the records excluded now, for ``cdc_excluded_records``."""
        self._excluded_series: set[tuple[str, str]] = set()
        self._excluded_at = -1
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

    def applied(self, result: BatchResult, dead: int, batch_s: float) -> None:
        m = self.metrics
        self.batches += 1
        m.sync_batch_seconds.observe(batch_s)
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
        self.count_excluded()
        m.progress("sync-apply")

    def lag(self, lag: Lag) -> None:
        labels = {"group": f"sync-{lag.role}", "topic": lag.topic, "partition": str(lag.partition)}
        self.metrics.consumer_lag_records.labels(**labels).set(lag.records)
        self.metrics.consumer_lag_seconds.labels(**labels).set(lag.seconds)

    def retried(self, retry: Retry) -> None:
        self.metrics.retried(retry)
        if retry.what == "sync" and isinstance(retry.error, CrmUnavailableError):
            self.metrics.sync_paused.labels(system=str(retry.error.system)).inc()

    def count_excluded(self) -> None:
        """``cdc_excluded_records`` from the exclusions this replica knows (a series gone stays, at 0)."""
        if self.exclusions is None or self.exclusions.changed == self._excluded_at:
            return  # counted already: nothing was taken in or committed since
        self._excluded_at = self.exclusions.changed
        counts = self.exclusions.counts()
        for step, reason in self._excluded_series - counts.keys():
            self.metrics.excluded_records.labels(step=step, reason=reason).set(0)
        for (step, reason), n in counts.items():
            self.metrics.excluded_records.labels(step=step, reason=reason).set(n)
        self._excluded_series |= counts.keys()

    def paused(self, pauses: Pauses) -> None:
        """The operator's pauses as gauges: every enabled step and ``*`` (everything), 1 or 0."""
        active = pauses.active
        for step in (EVERYTHING, *(s.name for s in self.config.enabled_steps())):
            pause = active.get(step)
            self.metrics.sync_operator_paused.labels(step=step).set(0 if pause is None else 1)
            since = 0.0 if pause is None else pause.at.timestamp()
            self.metrics.sync_operator_paused_since.labels(step=step).set(since)

    def parked(self, items: list[WorkItem]) -> None:
        for item in items:
            self.metrics.sync_parked.labels(pair=item.pair).inc()

    def count_links(self) -> None:
        for kind, n in self.index.counts().items():
            self.metrics.links.labels(object=object_label(kind.split("~", 1)[0])).set(n)


async def _start_control(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    catalog: TopicCatalog,
    stats: SyncStats,
    beat: Callable[..., None],
) -> ControlView:
    """Read the operator's pauses before the loops start: a replica started while paused stays paused."""
    control = ControlView(settings.kafka, catalog, on_change=stats.paused, on_beat=beat)
    stack.push_async_callback(control.close)
    stats.paused(await control.start())
    config = stats.config
    if control.pauses.active:
        held = ", ".join(sorted(held_pairs(config, control.pauses.steps())))
        log.warning("starting paused: %s (pairs held: %s)", list(control.pauses.active), held or "none")
    return control


async def run_sync(
    settings: Settings,
    stop: asyncio.Event,
    *,
    metrics: Metrics | None = None,
    config: SyncConfig | None = None,
    on_ready: Callable[[str], None] = lambda _: None,
    stall_after_s: float = STALL_AFTER_S,
) -> None:
    """Run the sync stage until ``stop`` is set (``stall_after_s``: how late a loop's heartbeat may be)."""
    metrics = metrics or Metrics(CollectorRegistry())
    config = config or load_config(settings.sync.config)
    catalog = TopicCatalog.from_settings(settings.kafka)
    prefix = settings.sync.group_prefix
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        # One API budget per CRM for the whole deployment, before any client is opened (`cdc.budget`).
        await stack.enter_async_context(shared_budgets(settings, metrics, role="sync", stop=stop))
        gateways = await stack.enter_async_context(open_gateways(settings, metrics))
        # A CRM briefly down at start is waited out, as the first token is; a problem refuses the start.
        await retrying(
            partial(require_crm_fit, config, gateways, path=settings.sync.config),
            policy=FIRST_TOKEN,
            on=(CrmUnavailableError,),
            what="crm_check",
            on_retry=metrics.retried,
        )
        store = LinkStore.open(
            settings.sync.state_dir,
            topic=catalog.name(TopicRole.LINKS),
            cluster_id=await cluster_id(settings.kafka),
        )
        stack.callback(store.close)  # once the loops and the probe server stopped, before the gateways
        view = LinkView(settings.kafka, catalog, store)
        loaded = await view.load()
        heartbeats = Heartbeats(stall_after_s)
        view.on_beat = heartbeats.expect("sync-links")
        stats = SyncStats(metrics, store, config)
        stats.count_links()
        beat = heartbeats.expect("sync-exclusions")
        exclusions, excluded = await stack.enter_async_context(
            _exclusions(settings, catalog, beat, stats.count_excluded)
        )
        stats.exclusions = exclusions
        sent = SentValues()
        journal = SentLog(
            settings.kafka, catalog, on_note=sent.absorb, on_beat=heartbeats.expect("sync-sent")
        )
        stack.push_async_callback(journal.close)
        pending = await journal.start()
        control = await _start_control(stack, settings, catalog, stats, heartbeats.expect("sync-control"))
        applier = Applier(config, gateways, store, dry_run=settings.sync.dry_run, sent=sent, journal=journal)
        options = LiveOptions(config, gateways, applier, every_s=settings.sync.options_refresh_s)
        await options.refresh()
        router = Router(
            settings.kafka,
            catalog,
            config,
            store,
            gateways,
            group=f"{prefix}sync-route",
            batch_wait_ms=settings.sync.batch_wait_ms,
            on_routed=stats.routed,
            on_duplicates=metrics.sync_duplicates.inc,
            on_retry=stats.retried,
            on_lag=stats.lag,
            on_beat=heartbeats.expect("sync-route"),
            control=control,
        )
        apply = ApplyLoop(
            settings.kafka,
            catalog,
            applier,
            group=f"{prefix}sync-apply",
            batch_size=settings.sync.batch_size,
            batch_wait_ms=settings.sync.batch_wait_ms,
            on_batch=stats.applied,
            on_retry=stats.retried,
            on_lag=stats.lag,
            on_beat=heartbeats.expect("sync-apply"),
            links=view,
            sent=journal,
            exclusions=exclusions,
            control=control,
            on_parked=stats.parked,
        )
        kafka = KafkaCheck(settings.kafka, [catalog.name(role) for role in TOPICS])
        groups = joined({router.group: lambda: router.joined, apply.group: lambda: apply.joined})
        checks: dict[str, Check] = {"kafka": kafka, "groups": groups, "heartbeats": heartbeats.check}
        app = Probes(metrics, stopping=stop.is_set, checks=checks).app()
        async with (
            contextlib.aclosing(kafka),
            serve(
                app, host=settings.sync.host, port=settings.sync.port, name="sync", graceful_s=1.0
            ) as served,
        ):
            log.info(
                "sync running: %d steps enabled, %d links %s in %.2fs (%s), %d writes of other replicas not "
                "yet linked, %d records excluded; metrics at %s/metrics%s",
                len(config.enabled_steps()),
                loaded.links,
                "rebuilt from the topic" if loaded.rebuilt else "resumed",
                loaded.seconds,
                store.path,
                pending,
                excluded,
                served.base_url,
                " (dry run: nothing is written)" if settings.sync.dry_run else "",
            )
            on_ready(served.base_url)
            loops = {
                "sync-links": view.run,
                "sync-sent": journal.run,
                "sync-exclusions": exclusions.run,
                "sync-control": control.run,
                "sync-route": router.run,
                "sync-apply": apply.run,
            }
            if options.fields:
                loops["sync-options"] = options.run
            if config.form_submissions is not None:
                loops["sync-forms"] = _form_loop(settings, catalog, config, store, gateways).run
            bounded = partial(
                supervised,
                stop=stop,
                metrics=metrics,
                failures_max=settings.sync.loop_failures_max,
                window_s=settings.sync.loop_failures_window_s,
            )
            try:
                async with asyncio.TaskGroup() as group:
                    for name, loop in loops.items():
                        group.create_task(bounded(name, loop), name=name)
            except* LoopFailedError as failed:
                raise failed.exceptions[0] from None
    log.info(
        "sync stopped after %.0fs: %d batches, %d records written, %d dead letters",
        time.monotonic() - started,
        stats.batches,
        stats.writes,
        stats.dead,
    )
