"""The admin page's actions against the sandbox CRMs and the session's real broker, without a browser:
what `cdc.admin.kafka_source.KafkaHealth` does when a user presses "Sync now" or "Redrive".

What an admin relies on: sync now publishes the record as its CRM has it now (``origin=resync``) and
writes an audit record naming the user; a record the CRM does not have is a clear not-found and nothing is
published or audited; a redrive re-sends the letter once, audited as the user's, and a second press says it
was redriven already.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from cdc.admin.kafka_source import KafkaHealth
from cdc.admin.source import NotFoundError
from cdc.metrics import Metrics
from cdc.ops._kafka import start_client
from cdc.sandbox.runner import Sandbox, run_sandbox
from cdc.sources.publisher import ChangePublisher
from streams.admin import ensure_topics, open_admin
from streams.clients import make_producer
from streams.config import KafkaSettings
from streams.deadletters import DeadLetter
from streams.events import CHANGE_CODEC, ChangeEvent, Operation, Origin
from streams.keys import RecordRef, SourceSystem
from streams.topics import TopicCatalog, TopicRole
from streams.transactions import dead_letter_record
from tests.integration.sync_stack import small_config
from tests.integration.test_resync import hubspot_admin, seed_dataverse
from tests.integration.test_sync_exclusions import entry
from tests.kafka_reading import read_changes, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
async def health(kafka_settings: KafkaSettings) -> AsyncIterator[tuple[KafkaHealth, Sandbox]]:
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka_settings))
    async with run_sandbox(seed=18) as box:
        settings = box.daemon_settings(kafka_settings)
        publisher = ChangePublisher(kafka_settings, Metrics(CollectorRegistry()), deadline_s=30.0)
        await publisher.start()
        producer = make_producer(kafka_settings, linger_ms=0)
        await start_client(producer, kafka_settings)
        try:
            yield KafkaHealth(settings, small_config(), publisher, producer), box
        finally:
            await producer.stop()
            await publisher.stop()


async def test_sync_now_publishes_the_record_as_its_crm_has_it_and_audits_the_user(
    health: tuple[KafkaHealth, Sandbox],
) -> None:
    source, box = health
    kafka, portal = source.settings.kafka, str(source.settings.hubspot.portal_id)
    created = await hubspot_admin(
        box, "/_admin/objects/contacts", {"properties": {"email": "now@example.com"}}
    )
    ref = RecordRef(
        system=SourceSystem.HUBSPOT, tenant=portal, object_type="contact", object_id=str(created["id"])
    )

    said = await source.sync_now(ref, "ada")

    assert "read again and sent to the sync" in said
    events = [e for e in await read_changes(kafka) if e.origin is Origin.RESYNC]
    assert [(e.object_id, e.operation, (e.record or {}).get("email")) for e in events] == [
        (ref.object_id, Operation.UPSERT, "now@example.com")
    ]
    audit = await read_topic(kafka, TopicRole.AUDIT)
    assert [(a["action"], a["actor"], a["source"]["object_id"]) for a in audit] == [
        ("resync", "ada", ref.object_id)
    ]

    (row_id,) = await seed_dataverse(box, [{"emailaddress1": "dv-now@example.com", "lastname": "Now"}])
    tenant = box.info.dataverse.base_url.removeprefix("https://")
    row = RecordRef(system=SourceSystem.DATAVERSE, tenant=tenant, object_type="contact", object_id=row_id)
    await source.sync_now(row, "bob")
    dataverse = [
        e for e in await read_changes(kafka, TopicRole.CHANGES_DATAVERSE) if e.origin is Origin.RESYNC
    ]
    assert [(e.object_id, (e.record or {}).get("emailaddress1")) for e in dataverse] == [
        (row_id, "dv-now@example.com")
    ]


@pytest.mark.parametrize(
    ("system", "object_type", "object_id", "says"),
    [
        ("hubspot", "contact", "999999999", "HubSpot has no contact 999999999"),
        ("dataverse", "contact", "00000000-0000-0000-0000-0000000000ff", "Dataverse has no contact"),
        ("hubspot", "ticket", "1", "hubspot has no object 'ticket'"),
    ],
)
async def test_sync_now_of_an_unknown_record_is_not_found_and_changes_nothing(
    health: tuple[KafkaHealth, Sandbox], *, system: str, object_type: str, object_id: str, says: str
) -> None:
    source, _ = health
    ref = RecordRef(system=SourceSystem(system), tenant="t", object_type=object_type, object_id=object_id)
    with pytest.raises(NotFoundError, match=says):
        await source.sync_now(ref, "ada")
    kafka = source.settings.kafka
    assert await read_changes(kafka) == []
    assert await read_changes(kafka, TopicRole.CHANGES_DATAVERSE) == []
    assert await read_topic(kafka, TopicRole.AUDIT) == []


async def test_redrive_resends_the_letter_once_and_audits_the_user(
    health: tuple[KafkaHealth, Sandbox],
) -> None:
    source, _ = health
    kafka = source.settings.kafka
    catalog = TopicCatalog.from_settings(kafka)
    now = datetime.now(UTC)
    event = ChangeEvent(
        source=SourceSystem.HUBSPOT, tenant="123", object_type="contact", object_id="42",
        operation=Operation.UPSERT, origin=Origin.WEBHOOK, record={"email": "dead@example.com"},
        occurred_at=now, received_at=now,
    )  # fmt: skip
    letter = DeadLetter(
        topic=catalog.name(TopicRole.CHANGES_HUBSPOT), partition=0, offset=0, key=event.key,
        value=CHANGE_CODEC.encode(event).decode(), step="contacts_to_contacts", error_class="RecordError",
        error="a value no field takes", failed_at=now,
    )  # fmt: skip
    producer = make_producer(kafka)
    await start_client(producer, kafka)
    try:
        topic, key, value, headers = dead_letter_record(catalog.name(TopicRole.DEADLETTER), letter)
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()
    (pending,) = (await source.deadletters()).letters

    assert "redriven to" in await source.redrive(pending, "ada")
    assert "already redriven" in await source.redrive(pending, "ada")

    (entry,) = (await source.deadletters()).letters
    assert entry.status == "redriven"
    assert [e.object_id for e in await read_changes(kafka)] == ["42"]
    audit = await read_topic(kafka, TopicRole.AUDIT)
    assert [(a["action"], a["actor"], a["step"]) for a in audit] == [
        ("redrive", "ada", "contacts_to_contacts")
    ]


async def test_retry_sends_what_its_crm_has_and_audits_each_record_sent_as_the_user(
    health: tuple[KafkaHealth, Sandbox],
) -> None:
    source, box = health
    kafka, portal = source.settings.kafka, str(source.settings.hubspot.portal_id)
    created = await hubspot_admin(
        box, "/_admin/objects/contacts", {"properties": {"email": "fixed@example.com"}}
    )
    found = entry(
        RecordRef(
            system=SourceSystem.HUBSPOT, tenant=portal, object_type="contact", object_id=str(created["id"])
        )
    )
    gone = entry(
        RecordRef(system=SourceSystem.HUBSPOT, tenant=portal, object_type="contact", object_id="987654321")
    )

    said = await source.retry([found, gone], "ada")

    assert said.startswith("1 excluded record(s) read again and sent to the sync")
    assert f"1 no longer in their CRM, nothing sent: {gone.key}" in said
    assert [e.key for e in await read_changes(kafka)] == [found.key]
    audit = await read_topic(kafka, TopicRole.AUDIT)
    assert [(a["action"], a["actor"], a["source"]["object_id"], a["reason"]) for a in audit] == [
        ("resync", "ada", found.record.object_id, f"excluded retry ({found.reason}) (admin page)")
    ]


@pytest.mark.parametrize(
    ("winner", "object_id", "says"),
    [
        (SourceSystem.HUBSPOT, "999999999", "no such record: 999999999"),
        (SourceSystem.DATAVERSE, "999999999", "not linked to a record in the other system yet"),
    ],
)
async def test_a_push_or_pull_of_an_unknown_or_unlinked_record_is_not_found_and_changes_nothing(
    health: tuple[KafkaHealth, Sandbox], *, winner: SourceSystem, object_id: str, says: str
) -> None:
    source, _ = health
    portal = str(source.settings.hubspot.portal_id)
    ref = RecordRef(system=SourceSystem.HUBSPOT, tenant=portal, object_type="contact", object_id=object_id)
    with pytest.raises(NotFoundError, match=says):
        await source.push(ref, winner, "ada")
    kafka = source.settings.kafka
    assert await read_changes(kafka) == []
    assert await read_changes(kafka, TopicRole.CHANGES_DATAVERSE) == []
    assert await read_topic(kafka, TopicRole.AUDIT) == []


async def test_pause_and_resume_write_the_control_topic_as_the_user_and_an_unknown_step_writes_nothing(
    health: tuple[KafkaHealth, Sandbox],
) -> None:
    source, _ = health
    kafka = source.settings.kafka
    with pytest.raises(NotFoundError, match="unknown step 'no-such-step': the configuration's steps are"):
        await source.set_pause("no-such-step", paused=True, actor="ada", reason=None)
    assert await read_topic(kafka, TopicRole.CONTROL) == []
    assert await read_topic(kafka, TopicRole.AUDIT) == []

    said = await source.set_pause(None, paused=True, actor="ada", reason="a bulk import")
    assert said == "paused everything: the sync stops consuming, changes wait in Kafka"
    state = await source.pauses()
    [(target, pause)] = state.pauses.active.items()
    assert (target, pause.by, pause.reason) == ("*", "ada", "a bulk import")
    assert state.lines[0].startswith("paused: everything, by ada since")
    assert "is paused already, by ada" in await source.set_pause(None, paused=True, actor="bob", reason=None)
    assert await source.set_pause(None, paused=False, actor="bob", reason=None) == "resumed everything"
    assert (await source.pauses()).pauses.active == {}
    audit = await read_topic(kafka, TopicRole.AUDIT)
    assert [(a["action"], a["target"], a["by"]) for a in audit] == [
        ("pause", "*", "ada"),
        ("resume", "*", "bob"),
    ]
