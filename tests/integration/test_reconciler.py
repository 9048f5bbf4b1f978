"""The HubSpot reconciler against the sandbox over HTTP and a real broker: backfill, lost webhooks, restart,
the 10,000-result window, throttling, a wrong token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from cdc.budget import Budget, hubspot_limits
from cdc.hubspot.client import HubSpotClient
from cdc.hubspot.errors import FatalError
from cdc.hubspot.paths import endpoints
from cdc.hubspot.reconciler import run_hubspot_reconciler
from cdc.metrics import Metrics
from cdc.sandbox.runner import HubSpotAuth, Sandbox, run_sandbox
from cdc.settings import PollSettings, Settings
from consumers.config import SyncConfig
from streams.admin import ensure_topics, open_admin
from streams.config import KafkaSettings
from streams.events import ChangeEvent, Operation, Origin
from streams.topics import TopicCatalog
from tests.kafka_reading import read_changes
from tests.sync_configs import CONTACT_STEPS, enabled_only

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
async def box(kafka_settings: KafkaSettings) -> AsyncIterator[Sandbox]:
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka_settings))
    async with run_sandbox(seed=7) as sandbox:
        async with httpx.AsyncClient(base_url=sandbox.info.hubspot.base_url) as api:
            answer = await api.put("/_admin/faults", json={"webhook_drop_rate": 1.0})
            assert answer.status_code == 200, answer.text
        yield sandbox


def settings_for(
    kafka: KafkaSettings,
    box: Sandbox,
    objects: tuple[str, ...] = ("contacts",),
    lookback_s: float = 60.0,
    hubspot_auth: HubSpotAuth = "oauth",
) -> Settings:
    poll = PollSettings(hubspot_objects=objects, hubspot_interval_s=0.3, hubspot_lookback_s=lookback_s)
    return box.daemon_settings(kafka, poll=poll, hubspot_auth=hubspot_auth)


STEPS = {
    "contacts": CONTACT_STEPS,
    "companies": ("s1_companies_to_accounts", "s3_accounts_to_companies"),
    "deals": ("s5_opportunities_to_deals",),
}


def config_for(settings: Settings) -> SyncConfig:
    """The default steps that sync exactly the object types the settings reconcile."""
    return enabled_only(*(step for obj in settings.poll.hubspot_objects or () for step in STEPS[obj]))


@asynccontextmanager
async def reconciling(settings: Settings, **options: Any) -> AsyncIterator[Metrics]:
    metrics = Metrics(CollectorRegistry())
    stop = asyncio.Event()
    options.setdefault("config", config_for(settings))
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(run_hubspot_reconciler(settings, stop, metrics=metrics, **options))
        try:
            yield metrics
        finally:
            stop.set()


async def wait_for_events(
    kafka: KafkaSettings, done: Callable[[list[ChangeEvent]], bool], timeout_s: float = 60
) -> list[ChangeEvent]:
    deadline = time.monotonic() + timeout_s
    while True:
        events = await read_changes(kafka)
        if done(events):
            return events
        assert time.monotonic() < deadline, f"gave up after {timeout_s}s with {len(events)} events"
        await asyncio.sleep(0.5)


def upserts(events: list[ChangeEvent]) -> list[ChangeEvent]:
    return [e for e in events if e.operation is Operation.UPSERT]


async def seed(box: Sandbox, **records: list[dict[str, Any]]) -> dict[str, list[str]]:
    async with httpx.AsyncClient(base_url=box.info.hubspot.base_url, timeout=120) as api:
        answer = await api.post("/_admin/seed", json=records)
        assert answer.status_code == 201, answer.text
        created: dict[str, list[str]] = answer.json()
        return created


async def admin(box: Sandbox, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=box.info.hubspot.base_url) as api:
        answer = await api.request(method, path, json=body)
        assert answer.status_code < 300, answer.text
        result: dict[str, Any] = answer.json()
        return result


async def test_backfill_then_a_change_and_an_association_whose_webhooks_were_dropped(
    kafka_settings: KafkaSettings, box: Sandbox
) -> None:
    ids = await seed(
        box,
        contacts=[{"email": f"c{i}@example.com", "firstname": f"C{i}"} for i in range(30)],
        companies=[{"name": f"Acme {i}", "domain": f"acme{i}.example"} for i in range(5)],
    )
    contacts, companies = ids["contacts"], ids["companies"]
    settings = settings_for(kafka_settings, box, ("contacts", "companies"))
    async with reconciling(settings) as metrics:
        events = await wait_for_events(kafka_settings, lambda ev: len(upserts(ev)) >= 35)
        assert {e.object_id for e in upserts(events) if e.object_type == "contact"} == set(contacts)
        assert {e.object_id for e in upserts(events) if e.object_type == "company"} == set(companies)
        first = next(e for e in upserts(events) if e.object_id == contacts[0])
        assert first.origin is Origin.RECONCILER
        assert first.record is not None
        assert first.record["email"] == "c0@example.com"
        assert first.source_version == first.record["lastmodifieddate"]
        assert first.key == f"hubspot/{box.info.hubspot.portal_id}/contact/{contacts[0]}"

        await admin(
            box, "PATCH", f"/_admin/objects/contacts/{contacts[3]}", {"properties": {"firstname": "Zed"}}
        )
        await admin(
            box,
            "POST",
            "/_admin/associations",
            {"fromType": "contacts", "fromId": contacts[5], "toType": "companies", "toId": companies[1]},
        )
        events = await wait_for_events(
            kafka_settings,
            lambda ev: (
                any(e.record and e.record.get("firstname") == "Zed" for e in ev)
                and any(e.operation is Operation.ASSOCIATION and e.object_id == contacts[5] for e in ev)
                # the companies loop reads the edge on its own next pass: wait for it before removing it
                and any(e.operation is Operation.ASSOCIATION and e.object_id == companies[1] for e in ev)
            ),
        )
        await admin(
            box,
            "POST",
            "/_admin/associations/remove",
            {"fromType": "contacts", "fromId": contacts[5], "toType": "companies", "toId": companies[1]},
        )
        events = await wait_for_events(
            kafka_settings,
            lambda ev: any(
                e.association and e.association.removed and e.object_id == contacts[5] for e in ev
            ),
        )
    linked = [e for e in events if e.operation is Operation.ASSOCIATION and e.object_id == contacts[5]]
    assert {(e.association.to_object_type, e.association.to_object_id) for e in linked if e.association} == {
        ("company", companies[1])
    }
    reverse = [e for e in events if e.operation is Operation.ASSOCIATION and e.object_id == companies[1]]
    assert reverse, "the company side of the association is read too"
    zed = [e for e in upserts(events) if e.object_id == contacts[3]]
    assert len(zed) == 2, "one event for the backfill, one for the change; none for quiet passes"
    assert metrics.poll_rows.labels(system="hubspot", table="contacts")._value.get() >= 30


async def test_restart_resumes_from_the_checkpoint_within_the_lookback(
    kafka_settings: KafkaSettings, box: Sandbox
) -> None:
    old = (await seed(box, contacts=[{"email": f"old{i}@example.com"} for i in range(20)]))["contacts"]
    box.clock.advance(120)
    recent = (await seed(box, contacts=[{"email": f"recent{i}@example.com"} for i in range(5)]))["contacts"]
    settings = settings_for(kafka_settings, box, lookback_s=30)
    async with reconciling(settings):
        await wait_for_events(kafka_settings, lambda ev: len(upserts(ev)) >= 25)
    restarted = datetime.now(UTC)

    box.clock.advance(120)
    await admin(box, "PATCH", f"/_admin/objects/contacts/{old[2]}", {"properties": {"firstname": "Back"}})
    new = (await seed(box, contacts=[{"email": f"new{i}@example.com"} for i in range(3)]))["contacts"]
    async with reconciling(settings):
        events = await wait_for_events(
            kafka_settings,
            lambda ev: {old[2], *new} <= {e.object_id for e in upserts(ev) if e.received_at > restarted},
        )
    second = {e.object_id for e in upserts(events) if e.received_at > restarted}
    assert second >= {old[2], *new}
    assert not (second & (set(old) - {old[2]})), "records older than cursor - lookback are not re-emitted"
    assert second - {old[2], *new} <= set(recent), "only the lookback overlap is read again"


async def test_more_changes_than_the_10000_result_window_are_all_published(
    kafka_settings: KafkaSettings, box: Sandbox
) -> None:
    count = 10_050
    ids = (await seed(box, contacts=[{"email": f"w{i}@example.com"} for i in range(count)]))["contacts"]
    settings = settings_for(kafka_settings, box)
    started = time.monotonic()
    async with reconciling(settings) as metrics:
        events = await wait_for_events(kafka_settings, lambda ev: len(upserts(ev)) >= count, timeout_s=240)
        elapsed = time.monotonic() - started
    searches = metrics.api_requests.labels(
        system="hubspot", endpoint=endpoints().search.label, status="200"
    )._value.get()
    print(
        f"backfill: {count} records in {elapsed:.1f}s = {count / elapsed:.0f}/s;",
        f"{searches / count * 100:.2f} searches per 100 records",
    )
    assert {e.object_id for e in upserts(events)} == set(ids)


async def test_ties_at_one_millisecond_are_read_by_id_with_small_pages(
    kafka_settings: KafkaSettings, box: Sandbox
) -> None:
    ids = (await seed(box, contacts=[{"email": f"t{i}@example.com"} for i in range(120)]))["contacts"]
    async with reconciling(settings_for(kafka_settings, box), page_size=7):
        events = await wait_for_events(kafka_settings, lambda ev: {e.object_id for e in ev} >= set(ids))
    assert {e.object_id for e in upserts(events)} == set(ids)


async def test_a_429_from_search_is_waited_out(kafka_settings: KafkaSettings, box: Sandbox) -> None:
    await admin(box, "PUT", "/_admin/ratelimits", {"search_per_second": 1})
    ids = (await seed(box, contacts=[{"email": f"r{i}@example.com"} for i in range(40)]))["contacts"]
    settings = settings_for(kafka_settings, box)
    metrics = Metrics(CollectorRegistry())
    # A budget that believes in 50 searches a second, so the sandbox's one a second answers 429s.
    believes = settings.hubspot.model_copy(
        update={"limits": settings.hubspot.limits.model_copy(update={"search_per_second": 50})}
    )
    eager = HubSpotClient(
        box.info.hubspot.base_url,
        box.info.hubspot.token,
        metrics=metrics,
        budget=Budget(hubspot_limits(believes)),
    )
    async with reconciling(settings, client=eager, page_size=5):
        events = await wait_for_events(kafka_settings, lambda ev: {e.object_id for e in ev} >= set(ids))
    assert {e.object_id for e in upserts(events)} == set(ids)
    throttled = metrics.api_throttled.labels(system="hubspot", endpoint=endpoints().search.label)
    assert throttled._value.get() > 0


async def test_a_wrong_token_stops_with_a_clear_error(kafka_settings: KafkaSettings, box: Sandbox) -> None:
    settings = settings_for(kafka_settings, box, hubspot_auth="static")
    wrong = settings.model_copy(
        update={"hubspot": settings.hubspot.model_copy(update={"token": SecretStr("pat-na1-wrong")})}
    )
    with pytest.raises(FatalError, match=r"401.*CDC_HUBSPOT__TOKEN") as caught:
        await run_hubspot_reconciler(
            wrong, asyncio.Event(), metrics=Metrics(CollectorRegistry()), config=config_for(wrong)
        )
    assert "pat-na1-wrong" not in str(caught.value)


async def test_a_daily_429_is_waited_on_and_stop_still_ends_within_the_grace(
    kafka_settings: KafkaSettings, box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cdc.hubspot.reconciler.SHUTDOWN_GRACE_S", 1.0)
    ids = (await seed(box, contacts=[{"email": f"d{i}@example.com"} for i in range(6)]))["contacts"]
    await admin(box, "PUT", "/_admin/ratelimits", {"daily": 1})
    async with reconciling(settings_for(kafka_settings, box), page_size=5) as metrics:
        events = await wait_for_events(kafka_settings, lambda ev: len(ev) >= 5)  # the one allowed search
        throttled = metrics.api_throttled.labels(system="hubspot", endpoint=endpoints().search.label)
        for _ in range(100):  # the next search meets the DAILY limit
            if throttled._value.get():
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("no DAILY 429 was seen")
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5, "shutdown is bounded even while a DAILY 429 is being waited out"
    assert {e.object_id for e in events} < set(ids)
