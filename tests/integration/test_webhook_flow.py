"""End to end over real sockets: a sandbox HubSpot change -> signed webhook -> `cdc ingest` -> Kafka."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from cdc.roles.ingest import run_ingest
from cdc.sandbox.runner import run_sandbox
from streams.admin import ensure_topics, open_admin
from streams.config import KafkaSettings
from streams.events import Operation
from streams.topics import TopicCatalog
from tests.kafka_reading import read_changes

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.mark.parametrize("days_ahead", [0, 8])
async def test_a_user_edit_in_hubspot_arrives_on_kafka_through_the_signed_webhook(
    kafka_settings: KafkaSettings, days_ahead: int
) -> None:
    """Also with the sandbox's clock moved days ahead (as tests do to expire its tokens): HubSpot signs a
    delivery with the time it sends it, which is the daemon's time too, so the receiver's clock-skew check
    must not refuse it (it did: every webhook after the chaos test's 8-day jump was refused as 'future')."""
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka_settings))
    async with run_sandbox(seed=11) as box:
        stop = asyncio.Event()
        listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(
                run_ingest(box.daemon_settings(kafka_settings), stop, on_listening=listening.set_result)
            )
            box.hubspot.set_webhook_url(await asyncio.wait_for(listening, 30))
            async with httpx.AsyncClient(base_url=box.info.hubspot.base_url) as admin_api:
                advanced = await admin_api.post(
                    "/_admin/clock/advance", json={"seconds": days_ahead * 86_400}
                )
                assert advanced.status_code == 200, advanced.text
                created = await admin_api.post(
                    "/_admin/objects/contacts",
                    json={"properties": {"email": "ada@example.com", "firstname": "Ada"}},
                )
                assert created.status_code in (200, 201), created.text
                contact_id = created.json()["id"]
                updated = await admin_api.patch(
                    f"/_admin/objects/contacts/{contact_id}", json={"properties": {"firstname": "Augusta"}}
                )
                assert updated.status_code == 200, updated.text
                await box.hubspot.wait_webhooks()
                deliveries = (await admin_api.get("/_admin/webhooks/deliveries")).json()
            stop.set()

    events = [e for e in await read_changes(kafka_settings) if e.object_id == contact_id]
    assert {e.key for e in events} == {f"hubspot/{box.info.hubspot.portal_id}/contact/{contact_id}"}
    operations = {e.operation for e in events}
    assert Operation.CREATE in operations
    renamed = [e for e in events if e.changed_properties.get("firstname") == "Augusta"]
    assert renamed, [e.changed_properties for e in events]
    assert all(e.change_source == "CRM_UI" for e in events)
    assert {attempt["status"] for attempt in deliveries["results"]} == {200}
