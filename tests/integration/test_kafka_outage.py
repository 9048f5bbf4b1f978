"""Kafka down while HubSpot posts: the receiver answers 503, HubSpot retries, nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from cdc.roles.ingest import run_ingest
from cdc.sandbox.runner import run_sandbox
from cdc.settings import IngestSettings
from cdc.tools.devkafka.runner import LocalKafka
from streams.admin import ensure_topics, open_admin
from streams.config import KafkaSettings
from streams.topics import TopicCatalog
from tests.kafka_reading import read_changes

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_webhooks_posted_during_a_kafka_outage_arrive_after_it(tmp_path: Path) -> None:
    broker = await asyncio.to_thread(LocalKafka(data_dir=tmp_path / "kafka").start)
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, topic_prefix="outage.", partitions=1)
    try:
        async with open_admin(kafka) as admin:
            await ensure_topics(admin, TopicCatalog.from_settings(kafka))
        async with run_sandbox(seed=21) as box:
            settings = box.daemon_settings(kafka, ingest=IngestSettings(port=0, publish_deadline_s=1.0))
            stop = asyncio.Event()
            listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            async with (
                asyncio.TaskGroup() as tasks,
                httpx.AsyncClient(base_url=box.info.hubspot.base_url) as api,
            ):
                tasks.create_task(run_ingest(settings, stop, on_listening=listening.set_result))
                box.hubspot.set_webhook_url(await asyncio.wait_for(listening, 30))
                await api.put("/_admin/webhooks", json={"retry_base_seconds": 0.5})

                await asyncio.to_thread(broker.stop)  # the outage: data dir and ports are kept
                created = await api.post(
                    "/_admin/objects/contacts", json={"properties": {"email": "o@example.com"}}
                )
                contact_id = created.json()["id"]
                await asyncio.sleep(3)  # HubSpot tries, gets 503, schedules retries
                refused = [d for d in (await api.get("/_admin/webhooks/deliveries")).json()["results"]]
                broker = await asyncio.to_thread(LocalKafka(data_dir=tmp_path / "kafka").start)
                await box.hubspot.wait_webhooks(60)
                deliveries = (await api.get("/_admin/webhooks/deliveries")).json()["results"]
                stop.set()
        assert any(d["status"] == 503 for d in refused), refused
        assert deliveries[-1]["status"] == 200, deliveries
        events = [e for e in await read_changes(kafka) if e.object_id == contact_id]
        assert events, "the contact created during the outage never reached Kafka"
    finally:
        await asyncio.to_thread(broker.stop)
