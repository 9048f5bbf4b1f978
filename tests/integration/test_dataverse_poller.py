"""End to end over real sockets: sandbox Dataverse (HTTPS, msal) -> the change-tracking poller -> Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from cdc.dataverse import DataverseAuthError
from cdc.dataverse.poller import run_dataverse_poller
from cdc.metrics import Metrics
from cdc.provisioning.run import enable_change_tracking
from cdc.sandbox.runner import Sandbox, run_sandbox
from cdc.settings import PollSettings, Settings
from consumers.retries import RetryPolicy
from streams.admin import ensure_topics, open_admin
from streams.clients import make_consumer
from streams.codec import Position
from streams.config import KafkaSettings
from streams.events import CHANGE_CODEC, ChangeEvent, Operation, Origin
from streams.keys import join_key
from streams.topics import TopicCatalog, TopicRole
from tests.kafka_reading import read_changes
from tests.sync_configs import CONTACT_STEPS, enabled_only

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
FAST = RetryPolicy(retries=3, wait_initial_s=0.01, wait_max_s=0.05, jitter_s=0.01)
CONTACTS = enabled_only(*CONTACT_STEPS)
"""The contact steps only: the poller polls the contacts table."""


@pytest.fixture
async def topics(kafka_settings: KafkaSettings) -> KafkaSettings:
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka_settings))
    return kafka_settings


def poller_settings(
    kafka: KafkaSettings,
    box: Sandbox,
    *,
    page_size: int = 5000,
    interval_s: float = 0.2,
    secret: str | None = None,
) -> Settings:
    poll = PollSettings(
        dataverse_tables=("contacts",), dataverse_interval_s=interval_s, dataverse_page_size=page_size
    )
    settings = box.daemon_settings(kafka, poll=poll)
    if secret is None:
        return settings
    dataverse = settings.dataverse.model_copy(update={"client_secret": SecretStr(secret)})
    return settings.model_copy(update={"dataverse": dataverse})


def admin(box: Sandbox) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=box.info.dataverse.ca_bundle)
    return httpx.AsyncClient(base_url=f"{box.info.dataverse.base_url}/_admin", verify=context, timeout=60)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def rows_read(metrics: Metrics) -> float:
    return sample(metrics, "cdc_poll_rows_total", system="dataverse", table="contacts")


def passes_done(metrics: Metrics) -> float:
    return sample(metrics, "cdc_poll_duration_seconds_count", system="dataverse", table="contacts")


async def until(condition: Callable[[], bool], within: float = 20) -> None:
    """Wait for a metric to move (metrics have no change notification, so this polls)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 -- nothing to wait on: metrics are plain values
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def polling(settings: Settings, metrics: Metrics) -> AsyncIterator[asyncio.Event]:
    await enable_change_tracking(settings, ["contacts"])  # as `cdc provision --dataverse` does
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(
            run_dataverse_poller(settings, stop, metrics=metrics, retry_policy=FAST, config=CONTACTS)
        )
        try:
            yield stop
        finally:
            stop.set()


def contact_key(box: Sandbox, contact_id: str) -> str:
    return join_key("dataverse", box.info.dataverse.base_url.split("://")[1], "contact", contact_id)


async def dataverse_events(kafka: KafkaSettings) -> list[ChangeEvent]:
    return await read_changes(kafka, TopicRole.CHANGES_DATAVERSE)


async def seed(api: httpx.AsyncClient, rows: list[dict[str, Any]]) -> list[str]:
    answer = await api.post("/tables/contacts/rows", json={"rows": rows})
    assert answer.status_code == 201, answer.text
    return [row["contactid"] for row in answer.json()["value"]]


async def test_creates_updates_and_deletes_become_one_event_each_with_the_full_row(
    topics: KafkaSettings,
) -> None:
    metrics = Metrics(CollectorRegistry())
    async with run_sandbox(seed=21) as box, admin(box) as api:
        [before] = await seed(api, [{"firstname": "Ada", "lastname": "Lovelace"}])
        async with polling(poller_settings(topics, box), metrics):
            await until(lambda: passes_done(metrics) >= 1)
            [created] = await seed(api, [{"firstname": "Grace", "emailaddress1": "grace@example.com"}])
            await until(lambda: rows_read(metrics) >= 2)
            updated = await api.patch(f"/tables/contacts/rows/{created}", json={"lastname": "Hopper"})
            assert updated.status_code == 200, updated.text
            await until(lambda: rows_read(metrics) >= 3)
            deleted = await api.delete(f"/tables/contacts/rows/{before}")
            assert deleted.status_code == 204, deleted.text
            await until(lambda: rows_read(metrics) >= 4)

    events = await dataverse_events(topics)
    assert len(events) == 4, [(e.object_id, e.operation) for e in events]
    by_id: dict[str, list[ChangeEvent]] = {}
    for event in events:
        by_id.setdefault(event.object_id, []).append(event)
    assert [e.operation for e in by_id[before]] == [Operation.UPSERT, Operation.DELETE]
    assert [e.operation for e in by_id[created]] == [Operation.UPSERT, Operation.UPSERT]
    assert {e.key for e in events} == {contact_key(box, before), contact_key(box, created)}
    assert all(e.origin is Origin.CHANGE_TRACKING and e.object_type == "contact" for e in events)
    first, second = by_id[created]
    assert first.record is not None
    assert second.record is not None
    assert first.record["emailaddress1"] == "grace@example.com"
    assert second.record["lastname"] == "Hopper"
    assert second.record["firstname"] == "Grace"  # the full row, not only the changed column
    assert "modifiedon" in second.record
    assert int(second.source_version or 0) > int(first.source_version or 0)
    assert by_id[before][1].record is None
    assert sample(metrics, "cdc_events_ingested_total", source="dataverse", object="contact") == 4


async def test_three_pages_of_5000_and_a_restart_mid_pass_lose_and_repeat_nothing(
    topics: KafkaSettings,
) -> None:
    async with run_sandbox(seed=22) as box, admin(box) as api:
        started = time.perf_counter()
        ids = await seed(api, [{"firstname": f"n{i}", "lastname": "Seed"} for i in range(15_000)])
        seeded_s = time.perf_counter() - started
        settings = poller_settings(topics, box, page_size=5000)
        first = Metrics(CollectorRegistry())
        async with polling(settings, first) as stop:
            await until(lambda: rows_read(first) >= 5000)
            stop.set()
        first_run = await dataverse_events(topics)
        assert 5000 <= len(first_run) < 15_000, len(first_run)  # stopped mid-pass, on a page boundary
        assert len(first_run) % 5000 == 0

        # Changes while the poller is down: one row already published, one not yet.
        assert (await api.patch(f"/tables/contacts/rows/{ids[0]}", json={"lastname": "Again"})).is_success
        assert (await api.delete(f"/tables/contacts/rows/{ids[-1]}")).is_success

        second = Metrics(CollectorRegistry())
        started = time.perf_counter()
        async with polling(settings, second):
            await until(lambda: passes_done(second) >= 1, within=30)
            await until(lambda: rows_read(second) >= 15_000 - len(first_run) + 1)
        resumed_s = time.perf_counter() - started

    events = await dataverse_events(topics)
    upserts = Counter(e.object_id for e in events if e.operation is Operation.UPSERT)
    deletes = [e.object_id for e in events if e.operation is Operation.DELETE]
    # Every seeded row exactly once, except the one edited during the outage (again, as an update) and
    # the one deleted during the outage (whose page had not been read: it arrives as a delete only, or
    # as row then delete if that page was read first).
    assert set(upserts) | set(deletes) == set(ids)
    assert upserts[ids[0]] == 2
    assert deletes == [ids[-1]]
    assert all(count == 1 for object_id, count in upserts.items() if object_id not in {ids[0], ids[-1]})
    assert sample(first, "cdc_poll_rows_total", system="dataverse", table="contacts") == len(first_run)
    print(  # the figure the report quotes; shown with -s
        f"\nseed 15000 rows {seeded_s:.2f}s; first run {len(first_run)} rows; "
        f"resume + rest of pass + delta {resumed_s:.2f}s"
    )


async def test_an_expired_delta_token_starts_a_full_pass_without_crashing(topics: KafkaSettings) -> None:
    metrics = Metrics(CollectorRegistry())
    async with run_sandbox(seed=23) as box, admin(box) as api:
        ids = await seed(api, [{"firstname": f"e{i}"} for i in range(3)])
        assert (await api.put("/change-tracking", json={"expiry_days": 1})).is_success
        async with polling(poller_settings(topics, box, interval_s=0.5), metrics):
            await until(lambda: passes_done(metrics) >= 1)
            # Two days later: the delta token (and the OAuth token) have expired.
            assert (await api.post("/clock/advance", json={"seconds": 2 * 86_400})).is_success
            await until(lambda: sample(metrics, "cdc_delta_token_resets_total", table="contacts") >= 1)
            await until(lambda: passes_done(metrics) >= 3)
    events = await dataverse_events(topics)
    assert Counter(e.object_id for e in events) == dict.fromkeys(ids, 2)
    assert sample(metrics, "cdc_delta_token_resets_total", table="contacts") == 1
    # The clock jump also expired the OAuth token msal still held: one 401, then a fresh token.
    assert sample(
        metrics, "cdc_api_requests_total", system="dataverse", endpoint="contacts:track", status="401"
    )


async def test_service_protection_429s_are_waited_out(topics: KafkaSettings) -> None:
    metrics = Metrics(CollectorRegistry())
    async with run_sandbox(seed=24) as box, admin(box) as api:
        protection = {"requests_per_window": 3, "window_seconds": 1}
        assert (await api.put("/protection", json=protection)).is_success
        async with polling(poller_settings(topics, box, interval_s=0.05), metrics):
            await until(
                lambda: (
                    sample(metrics, "cdc_api_throttled_total", system="dataverse", endpoint="contacts:track")
                    >= 1
                )
            )
            [contact] = await seed(api, [{"firstname": "Throttled"}])
            await until(lambda: rows_read(metrics) >= 1)
    events = await dataverse_events(topics)
    assert [e.object_id for e in events] == [contact]
    assert sample(
        metrics, "cdc_api_requests_total", system="dataverse", endpoint="contacts:track", status="429"
    )


@pytest.mark.parametrize(("secret", "expected"), [("sbx~forged", "invalid_client"), ("", "client_secret")])
async def test_a_forged_or_missing_secret_fails_with_a_clear_error(
    topics: KafkaSettings, secret: str, expected: str
) -> None:
    async with run_sandbox(seed=25) as box:
        settings = poller_settings(topics, box, secret=secret)
        with pytest.raises(DataverseAuthError, match=expected) as caught:
            await run_dataverse_poller(
                settings, asyncio.Event(), metrics=Metrics(CollectorRegistry()), config=CONTACTS
            )
    assert box.info.dataverse.client_secret not in str(caught.value)


async def test_poll_to_kafka_latency_of_one_change(topics: KafkaSettings) -> None:
    """Measures edit -> read by a live ``read_committed`` consumer (the figure the report quotes)."""
    metrics = Metrics(CollectorRegistry())
    interval = 0.5
    latencies = []
    spec = TopicCatalog.from_settings(topics)[TopicRole.CHANGES_DATAVERSE]
    consumer = make_consumer(topics, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        async with run_sandbox(seed=26) as box, admin(box) as api:
            [contact] = await seed(api, [{"firstname": "Lat"}])
            async with polling(poller_settings(topics, box, interval_s=interval), metrics):
                await until(lambda: passes_done(metrics) >= 1)
                for round_ in range(5):
                    await asyncio.sleep(0.13 * round_)  # land at different points of the interval
                    started = time.perf_counter()
                    edit = {"lastname": str(round_)}
                    assert (await api.patch(f"/tables/contacts/rows/{contact}", json=edit)).is_success
                    while not any(
                        e.record and e.record.get("lastname") == str(round_) for e in await _next(consumer)
                    ):
                        pass
                    latencies.append(time.perf_counter() - started)
    finally:
        await consumer.stop()
    median_ms = statistics.median(latencies) * 1000
    print(  # the figure the report quotes; shown with -s
        f"\npoll interval {interval}s; edit -> on Kafka: median {median_ms:.0f} ms, "
        f"all {[round(x * 1000) for x in latencies]} ms"
    )
    assert max(latencies) < interval + 2


async def _next(consumer: Any) -> list[ChangeEvent]:
    batches = await consumer.getmany(timeout_ms=50)
    return [
        CHANGE_CODEC.decode(m.value, Position(m.topic, m.partition, m.offset))
        for messages in batches.values()
        for m in messages
    ]
