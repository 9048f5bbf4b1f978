"""`cdc admin`: the sync health page's lifecycle (the page itself is `cdc.admin`).

Start-up: at least one user must be configured (``admin.users``; `cdc admin hash-password` makes a
hash); then the producers for "sync now" (change events) and the actions' audit records start, and
uvicorn serves the page on ``admin.host`` (127.0.0.1 unless told) and ``admin.port``. Every request
reads Kafka afresh, so replicas need nothing from each other but the same ``admin.session_secret``.

Shutdown, bounded: uvicorn lets in-flight requests finish; the producers flush and close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from cdc.admin import create_app
from cdc.admin.kafka_source import KafkaHealth
from cdc.metrics import Metrics
from cdc.ops._kafka import start_client
from cdc.serving import serve
from cdc.settings import Settings, SettingsError, env_name
from cdc.sources.publisher import ChangePublisher
from consumers.config import SyncConfig
from streams.clients import make_producer

__all__ = ["run_admin"]

log = logging.getLogger("cdc.admin")
SHUTDOWN_GRACE_S = 5.0


async def run_admin(
    settings: Settings,
    stop: asyncio.Event,
    *,
    config: SyncConfig,
    on_listening: Callable[[str], None] = lambda _: None,
) -> None:
    """Serve the page until ``stop`` is set."""
    admin = settings.admin
    if not admin.users:
        raise SettingsError(
            f"admin.users ({env_name(('admin', 'users'))}) names no user: nobody could log in. Add one as "
            "NAME: HASH, the hash printed by `cdc admin hash-password`"
        )
    if admin.session_secret is None:
        log.warning(
            "admin.session_secret is not set: a random one signs this process's sessions, so a login lasts "
            "until it restarts and holds on this replica only; set it (the same on every replica)"
        )
    metrics = Metrics(CollectorRegistry())
    publisher = ChangePublisher(settings.kafka, metrics, deadline_s=30.0)
    await publisher.start()
    producer = make_producer(settings.kafka, linger_ms=0)
    try:
        await start_client(producer, settings.kafka)
        app = create_app(admin, KafkaHealth(settings, config, publisher, producer))
        async with serve(
            app, host=admin.host, port=admin.port, name="admin", graceful_s=SHUTDOWN_GRACE_S
        ) as served:
            on_listening(served.base_url)
            await stop.wait()
    finally:
        await producer.stop()
        await publisher.stop()
    log.info("admin stopped")
