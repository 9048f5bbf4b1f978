"""`cdc ingest`: the webhook receiver's lifecycle.

Start-up: the settings are checked (client secret and portal required; a legacy app is warned about), the
producer connects, then uvicorn binds and serves the receiver and the probes (`cdc.roles.probes`):
``/readyz`` asks that Kafka answers and the change topics exist. Shutdown is numbered and bounded:

1. close intake: new webhooks get 503 (HubSpot retries them), ``/healthz`` and ``/readyz`` turn red;
2. uvicorn stops accepting and lets in-flight requests finish (``ingest.shutdown_grace_s``);
3. the producer flushes what is buffered and closes;
4. one summary line is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from cdc.hubspot.events import Tenant
from cdc.hubspot.receiver import Intake, ReceiverConfig, count_header_timeout, create_app
from cdc.metrics import Metrics
from cdc.roles.probes import KafkaCheck, Probes
from cdc.serving import serve
from cdc.settings import Settings, require
from cdc.sources.publisher import ChangePublisher
from streams.topics import TopicCatalog, TopicRole

log = logging.getLogger("cdc.ingest")


def receiver_config(settings: Settings) -> ReceiverConfig:
    """The receiver's configuration, or :class:`SettingsError` naming the setting `cdc ingest` lacks."""
    hubspot, ingest = settings.hubspot, settings.ingest
    require(hubspot.client_secret, "hubspot.client_secret", "ingest")
    require(hubspot.portal_id, "hubspot.portal_id", "ingest")
    assert hubspot.client_secret is not None  # noqa: S101 -- checked by require() above
    assert hubspot.portal_id is not None  # noqa: S101 -- checked by require() above
    return ReceiverConfig(
        client_secret=hubspot.client_secret.get_secret_value(),
        tenant=Tenant(hubspot.portal_id, None if hubspot.app_id is None else str(hubspot.app_id)),
        legacy_signatures=hubspot.app_kind == "legacy",
        max_body_bytes=ingest.max_body_bytes,
        max_events=ingest.max_events_per_request,
        clock_skew_s=ingest.clock_skew_s,
        read_timeout_s=ingest.read_timeout_s,
        max_concurrent=ingest.max_concurrent_requests,
        public_url=ingest.public_url,
        trust_forwarded_headers=ingest.trust_forwarded_headers,
    )


async def run_ingest(
    settings: Settings,
    stop: asyncio.Event,
    *,
    metrics: Metrics | None = None,
    on_listening: Callable[[str], None] = lambda _: None,
) -> None:
    """Serve webhooks until ``stop`` is set, then shut down in the documented order."""
    config = receiver_config(settings)
    if config.legacy_signatures:
        log.warning(
            "hubspot.app_kind is legacy: webhooks signed with v1 or v2 alone are accepted. Those signatures "
            "carry no timestamp, so whoever captures one such request can replay it for ever; HubSpot signs "
            "a project app's webhooks with v3 too (hubspot.app_kind: project, the default, takes v3 only)"
        )
    if settings.hubspot.sources == "journal":
        log.warning(
            "hubspot.change_sources is journal: `cdc poll` reads HubSpot's changes from the Webhooks "
            "Journal, so no webhook is expected here and this endpoint need not be public; set it to both "
            "to take webhooks too (the lowest latency, the journal filling their gaps)"
        )
    counted = metrics = metrics or Metrics(CollectorRegistry())
    publisher = ChangePublisher(settings.kafka, metrics, deadline_s=settings.ingest.publish_deadline_s)
    await publisher.start()
    intake = Intake()
    catalog = TopicCatalog.from_settings(settings.kafka)
    kafka = KafkaCheck(
        settings.kafka, [catalog.name(TopicRole.CHANGES_HUBSPOT), catalog.name(TopicRole.CHANGES_DATAVERSE)]
    )
    probes = Probes(metrics, stopping=lambda: not intake.open, checks={"kafka": kafka})
    app = create_app(config, publisher, metrics, intake=intake, routes=probes.routes)
    started = time.monotonic()
    try:
        async with serve(
            app,
            host=settings.ingest.host,
            port=settings.ingest.port,
            name="ingest",
            graceful_s=settings.ingest.shutdown_grace_s,
            header_timeout_s=config.read_timeout_s,
            on_header_timeout=lambda: count_header_timeout(counted),
        ) as served:
            on_listening(f"{served.base_url}/webhooks/hubspot")
            await stop.wait()
            intake.open = False  # 1. new webhooks get 503 from here on
        # 2. leaving serve() waited for in-flight requests
    finally:
        await publisher.stop()  # 3. flush and close
        await kafka.aclose()
    answered = sum(
        sample.value
        for metric in metrics.webhook_requests.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
    log.info("ingest stopped after %.0fs: %d webhook requests answered", time.monotonic() - started, answered)
