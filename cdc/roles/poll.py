"""`cdc poll`: the Dataverse change-tracking poller and the HubSpot reconciler, each table on one replica.

What it polls follows from the sync configuration `cdc sync` runs (``sync.config``, else the default
steps): every table and object type an enabled step syncs (`cdc.sources.polled`; ``poll.dataverse_tables``
and ``poll.hubspot_objects`` override it, and must name all of those). A part runs when its system is
configured too: Dataverse with ``dataverse.base_url``, HubSpot with its credentials (``hubspot.token`` or
``hubspot.auth``). Every table of both parts is a lease unit (`cdc.roles.leases`): however many replicas run,
one polls it at a time, and each table's task belongs to the one TaskGroup of :func:`run_poll`.

Start-up, in order:

1. the parts are set up (Dataverse: a first token, so a wrong secret fails here) and the topics checked
   (a missing lease topic would silently leave every table unpolled);
2. the health server binds ``poll.host:poll.port``: ``/metrics``, ``/healthz``, ``/readyz``
   (`cdc.roles.probes`; 503 until the replica is a member of the group, while Kafka does not answer, a
   table held here stalls, a source refuses the credentials, or a Dataverse table held here has no change
   tracking, naming it);
3. the replica joins the ``<prefix>poll`` group and starts the tables of the partitions it is given.

Shutdown (``stop`` is set, e.g. by SIGTERM through `cdc.signals.stop_on_signals`) is numbered and bounded:

1. ``/readyz`` answers 503; each table stops fetching (an in-flight GET is cancelled);
2. a page whose transaction has begun commits (bound ``poll.shutdown_grace_s``; past it the table is
   cancelled and the broker aborts its transaction: nothing half-written is ever visible);
3. each table closes its transactional producer (bounded);
4. the replica leaves the group, so the other replicas take its tables over at once;
5. the health server stops;
6. the HTTP sessions close (Dataverse and msal, HubSpot);
7. one summary line is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable

from prometheus_client import Gauge

from cdc.budget import shared_budgets
from cdc.dataverse.poller import COMPONENT as DATAVERSE
from cdc.dataverse.poller import DataverseTables, dataverse_tables
from cdc.hubspot.errors import HubSpotApiError
from cdc.hubspot.journal import JournalOffError, JournalSource, journal_tokens
from cdc.hubspot.reconciler import HubSpotObjects, hubspot_objects
from cdc.metrics import Metrics
from cdc.roles.leases import TableLeases, Unit
from cdc.roles.probes import STALL_AFTER_S, Check, Heartbeats, KafkaCheck, Probes, joined
from cdc.serving import serve
from cdc.settings import Settings, SettingsError
from cdc.sources.polled import sync_config
from consumers.config import SyncConfig
from streams.admin import describe, open_admin
from streams.topics import TopicCatalog, TopicRole

__all__ = ["MissingTopicsError", "run_poll"]

log = logging.getLogger("cdc.poll")


class MissingTopicsError(RuntimeError):
    """A topic `cdc poll` needs is missing or smaller than the catalog says; `cdc topics ensure` fixes it."""


def _source_checks(metrics: Metrics) -> dict[str, Check]:
    """``/readyz``'s checks of what `cdc poll` alone knows: a source refusing its credentials, a Dataverse
    table without change tracking (either waits, and is retried, while the rest keeps polling)."""

    async def credentials() -> str | None:
        refused = _labels_where(metrics.poll_auth_failing, "system", 1)
        return (
            "; ".join(
                f"{system} refuses the credentials: its polling is paused and retried with backoff "
                "(the other source keeps polling)"
                for system in refused
            )
            or None
        )

    async def change_tracking() -> str | None:
        untracked = _labels_where(metrics.change_tracking, "table", 0)
        if not untracked:
            return None
        return (
            f"{DATAVERSE}: change tracking is not enabled on {', '.join(untracked)}: nothing of it is "
            "polled (`cdc provision --dataverse`)"
        )

    return {"credentials": credentials, "change_tracking": change_tracking}


TOPICS = (
    TopicRole.CHANGES_DATAVERSE,
    TopicRole.CHANGES_HUBSPOT,
    TopicRole.CHECKPOINTS,
    TopicRole.POLL_LEASES,
)
"""What `cdc poll` writes and the topic of its leases: checked at start-up, and by ``/readyz``."""


async def _check_topics(settings: Settings) -> None:
    catalog = TopicCatalog.from_settings(settings.kafka)
    needed = [catalog[role] for role in TOPICS if role is not TopicRole.POLL_LEASES]
    leases = catalog[TopicRole.POLL_LEASES]
    async with open_admin(settings.kafka) as admin:
        actual = await describe(admin, [spec.name for spec in (*needed, leases)])
    missing = [spec.name for spec in (*needed, leases) if spec.name not in actual]
    if missing:
        raise MissingTopicsError(f"missing topics {missing}: run `cdc topics ensure`")
    if actual[leases.name].partitions < leases.partitions:
        raise MissingTopicsError(
            f"{leases.name} has {actual[leases.name].partitions} partitions, the catalog needs "
            f"{leases.partitions}: tables on the others would never be polled"
        )


async def _journal(
    settings: Settings, metrics: Metrics, objects: HubSpotObjects, parts: contextlib.AsyncExitStack
) -> JournalSource | None:
    """The Webhooks Journal source when ``hubspot.change_sources`` takes the journal and a client-credentials
    token can be had; else None, and the start-up log says why (the search reconciler runs instead)."""
    sources = settings.hubspot.sources
    if sources == "webhooks":
        log.info("poll: hubspot changes from webhooks (hubspot.change_sources); the search reconciler runs")
        return None
    tokens = journal_tokens(settings, metrics)
    if isinstance(tokens, str):
        log.warning(
            "poll: the hubspot Webhooks Journal is off: %s; the search reconciler runs instead", tokens
        )
        return None
    journal = await parts.enter_async_context(
        JournalSource(settings, metrics, tokens=tokens, objects=objects)
    )
    try:
        await journal.check()
    except (HubSpotApiError, JournalOffError) as refused:
        log.warning(
            "poll: the hubspot Webhooks Journal is off: %s; the search reconciler runs instead",
            refused if isinstance(refused, JournalOffError) else f"the app's client credentials: {refused}",
        )
        return None
    log.info(
        "poll: hubspot changes from the Webhooks Journal (hubspot.change_sources %s): no search "
        "reconciliation in steady state",
        sources,
    )
    return journal


def _labels_where(gauge: Gauge, label: str, value: float) -> list[str]:
    """The ``label`` of every series of ``gauge`` now at ``value``, sorted (what readiness names)."""
    return sorted(
        sample.labels[label]
        for metric in gauge.collect()
        for sample in metric.samples
        if sample.value == value
    )


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def run_poll(
    settings: Settings,
    stop: asyncio.Event,
    *,
    metrics: Metrics,
    on_ready: Callable[[str], None] | None = None,
    config: SyncConfig | None = None,
    stall_after_s: float = STALL_AFTER_S,
) -> None:
    """Poll what ``config`` syncs (default: the configuration ``sync.config`` names) on the tables this
    replica holds leases for until ``stop`` is set (module docstring). ``stall_after_s``: how late a
    table's heartbeat may be, on top of the wait it named.

    ``on_ready`` gets the health server's base URL once it serves. A fatal error of any table (a missing
    table, a missing scope) ends the whole process with that error, unwrapped from the TaskGroup's, and so
    do credentials refused at start-up. Neither a table without change tracking nor credentials refused
    later do: the table, or every table of that source, waits (`cdc.sources.auth_pause`), named by
    ``/readyz``, while the others keep polling.
    """
    poll = settings.poll
    config = config or sync_config(settings)
    dataverse_on = settings.dataverse.base_url is not None and bool(dataverse_tables(settings, config))
    hubspot_on = settings.hubspot.has_credentials and bool(hubspot_objects(settings, config))
    if not (dataverse_on or hubspot_on):
        raise SettingsError(
            "`cdc poll` has nothing to poll: set dataverse.base_url (CDC_DATAVERSE__BASE_URL) or "
            "HubSpot's credentials (hubspot.token, or hubspot.auth), and enable a sync step of that system"
        )
    started = time.monotonic()
    units: list[Unit] = []
    leases: TableLeases | None = None
    try:
        async with contextlib.AsyncExitStack() as parts:
            # One API budget per CRM for the whole deployment, before any client is opened (`cdc.budget`).
            await parts.enter_async_context(shared_budgets(settings, metrics, role="poll", stop=stop))
            if dataverse_on:
                tables = await parts.enter_async_context(DataverseTables(settings, metrics, config=config))
                units += [Unit(tables.unit(t), functools.partial(tables.run_table, t)) for t in tables.tables]
            if hubspot_on:
                objects = await parts.enter_async_context(HubSpotObjects(settings, metrics, config=config))
                journal = await _journal(settings, metrics, objects, parts)
                if journal is not None:
                    units.append(Unit(journal.unit, journal.run))
                else:
                    units += [
                        Unit(objects.unit(o), functools.partial(objects.run_object, o))
                        for o in objects.objects
                    ]
            await _check_topics(settings)
            heartbeats = Heartbeats(stall_after_s)
            leases = TableLeases(
                settings.kafka,
                units,
                grace_s=poll.shutdown_grace_s,
                heartbeats=heartbeats,
                session_timeout_s=poll.lease_session_timeout_s,
            )
            catalog = TopicCatalog.from_settings(settings.kafka)
            kafka = await parts.enter_async_context(
                contextlib.aclosing(KafkaCheck(settings.kafka, [catalog.name(role) for role in TOPICS]))
            )
            checks: dict[str, Check] = {
                "kafka": kafka,
                "groups": joined({leases.group_id: lambda: leases.joined}),
                "heartbeats": heartbeats.check,
                **_source_checks(metrics),
            }
            app = Probes(metrics, stopping=stop.is_set, checks=checks).app()
            async with serve(app, host=poll.host, port=poll.port, name="poll", graceful_s=1.0) as served:
                log.info(
                    "poll: /metrics at %s/metrics; %d tables (%s) shared in group %s",
                    served.base_url,
                    len(units),
                    ", ".join(unit.name for unit in units),
                    leases.group_id,
                )
                if on_ready is not None:
                    on_ready(served.base_url)
                try:
                    async with asyncio.TaskGroup() as tasks:
                        tasks.create_task(leases.run(stop, tasks), name="poll-leases")
                except ExceptionGroup as failures:
                    raise _first_leaf(failures) from None
    finally:
        published = sum(
            sample.value
            for metric in metrics.events_ingested.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
        log.info(
            "poll stopped after %.1fs: %d tables configured, %d lease generations, %d events published",
            time.monotonic() - started,
            len(units),
            leases.assignments if leases else 0,
            published,
        )
