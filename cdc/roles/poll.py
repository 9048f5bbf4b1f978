"""`cdc poll`: the Dataverse change-tracking poller and the HubSpot reconciler, each table on one replica.

What it polls follows from the sync configuration `cdc sync` runs (``sync.config``, else the default
steps): every table and object type an enabled step syncs (`cdc.sources.polled`; ``poll.dataverse_tables``
and ``poll.hubspot_objects`` override it, and must name all of those). A part runs when its system is
configured too: Dataverse with ``dataverse.base_url``, HubSpot with ``hubspot.token``. Every table of both
parts is a lease unit (`cdc.roles.leases`): however many replicas run,
one polls it at a time, and each table's task belongs to the one TaskGroup of :func:`run_poll`.

Start-up, in order:

1. the parts are set up (Dataverse: a first token, so a wrong secret fails here) and the topics checked
   (a missing lease topic would silently leave every table unpolled);
2. the health server binds ``poll.host:poll.port``: ``/metrics``, ``/healthz``, ``/readyz`` (503 while a
   source refuses the credentials, or a Dataverse table held here has no change tracking, naming it);
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

from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cdc.dataverse.poller import COMPONENT as DATAVERSE
from cdc.dataverse.poller import DataverseTables, dataverse_tables
from cdc.hubspot.reconciler import COMPONENT as HUBSPOT
from cdc.hubspot.reconciler import HubSpotObjects, hubspot_objects
from cdc.metrics import Metrics
from cdc.roles.leases import TableLeases, Unit
from cdc.serving import serve
from cdc.settings import Settings, SettingsError
from cdc.sources.polled import sync_config
from consumers.config import SyncConfig
from streams.admin import describe, open_admin
from streams.topics import TopicCatalog, TopicRole

__all__ = ["MissingTopicsError", "create_health_app", "run_poll"]

log = logging.getLogger("cdc.poll")
Readiness = Callable[[], tuple[bool, str]]
PROGRESS_SAMPLE = "cdc_last_progress_timestamp_seconds"


class MissingTopicsError(RuntimeError):
    """A topic `cdc poll` needs is missing or smaller than the catalog says; `cdc topics ensure` fixes it."""


def create_health_app(metrics: Metrics, ready: Readiness) -> Starlette:
    """``/healthz`` (the process answers), ``/readyz`` (it makes progress), ``/metrics``."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        ok, reason = ready()
        return JSONResponse({"status": reason}, status_code=200 if ok else 503)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics_endpoint)]
    )


class _Progress:
    """``/readyz``: a member of the group, and every part with a table here progressed lately.

    "Lately" is a few of the part's intervals (a Dataverse table commits a heartbeat every poll; the
    reconciler progresses per page), counted from when the table started here at the earliest.
    """

    def __init__(
        self, settings: Settings, leases: TableLeases, metrics: Metrics, stop: asyncio.Event
    ) -> None:
        poll = settings.poll
        self._stale_after = {
            DATAVERSE: max(60.0, 5 * poll.dataverse_interval_s),
            HUBSPOT: max(300.0, 3 * poll.hubspot_interval_s),
        }
        self._leases, self._metrics, self._stop = leases, metrics, stop

    def __call__(self) -> tuple[bool, str]:
        if self._stop.is_set():
            return False, "shutting down"
        if not self._leases.joined:
            return False, f"not (yet) a member of the {self._leases.group_id} group"
        refused = _labels_where(self._metrics.poll_auth_failing, "system", 1)
        if refused:
            return False, "; ".join(
                f"{system} refuses the credentials: its polling is paused and retried with backoff "
                "(the other source keeps polling)"
                for system in refused
            )
        untracked = _labels_where(self._metrics.change_tracking, "table", 0)
        if untracked:
            return False, (
                f"{DATAVERSE}: change tracking is not enabled on {', '.join(untracked)}: nothing of it is "
                "polled (`cdc provision --dataverse`)"
            )
        now = time.time()
        for component, since in sorted(self._leases.components().items()):
            labels = {"component": component}
            last = self._metrics.registry.get_sample_value(PROGRESS_SAMPLE, labels) or 0.0
            quiet = now - max(last, since)
            if quiet > self._stale_after[component]:
                return False, f"{component}: no progress for {quiet:.0f}s"
        return True, "ready"


async def _check_topics(settings: Settings) -> None:
    catalog = TopicCatalog.from_settings(settings.kafka)
    needed = [
        catalog[role]
        for role in (TopicRole.CHANGES_DATAVERSE, TopicRole.CHANGES_HUBSPOT, TopicRole.CHECKPOINTS)
    ]
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
) -> None:
    """Poll what ``config`` syncs (default: the configuration ``sync.config`` names) on the tables this
    replica holds leases for until ``stop`` is set (module docstring).

    ``on_ready`` gets the health server's base URL once it serves. A fatal error of any table (a missing
    table, a missing scope) ends the whole process with that error, unwrapped from the TaskGroup's, and so
    do credentials refused at start-up. Neither a table without change tracking nor credentials refused
    later do: the table, or every table of that source, waits (`cdc.sources.auth_pause`), named by
    ``/readyz``, while the others keep polling.
    """
    poll = settings.poll
    config = config or sync_config(settings)
    dataverse_on = settings.dataverse.base_url is not None and bool(dataverse_tables(settings, config))
    hubspot_on = settings.hubspot.token is not None and bool(hubspot_objects(settings, config))
    if not (dataverse_on or hubspot_on):
        raise SettingsError(
            "`cdc poll` has nothing to poll: set dataverse.base_url (CDC_DATAVERSE__BASE_URL) or "
            "hubspot.token (CDC_HUBSPOT__TOKEN), and enable a sync step of that system"
        )
    started = time.monotonic()
    units: list[Unit] = []
    leases: TableLeases | None = None
    try:
        async with contextlib.AsyncExitStack() as parts:
            if dataverse_on:
                tables = await parts.enter_async_context(DataverseTables(settings, metrics, config=config))
                units += [
                    Unit(tables.unit(t), DATAVERSE, functools.partial(tables.run_table, t))
                    for t in tables.tables
                ]
            if hubspot_on:
                objects = await parts.enter_async_context(HubSpotObjects(settings, metrics, config=config))
                units += [
                    Unit(objects.unit(o), HUBSPOT, functools.partial(objects.run_object, o))
                    for o in objects.objects
                ]
            await _check_topics(settings)
            leases = TableLeases(
                settings.kafka,
                units,
                grace_s=poll.shutdown_grace_s,
                session_timeout_s=poll.lease_session_timeout_s,
            )
            app = create_health_app(metrics, _Progress(settings, leases, metrics, stop))
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
