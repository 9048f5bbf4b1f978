"""Journal entry files -> change events (`cdc.hubspot.journal_entries`), and the identity a webhook event and
the journal entry of one change share (`streams.events.ChangeEvent.identity`, `consumers.seen`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cdc.hubspot.events import Tenant, read_body
from cdc.hubspot.journal_entries import EntryFileError, read_entry
from consumers.seen import SeenChanges
from streams.events import Operation, Origin

PORTAL = "62515"
NOW = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
OCCURRED_MS = 1_796_000_000_123
OCCURRED_ISO = "2026-11-30T00:53:20.123Z"


def entry(*events: Any) -> dict[str, Any]:
    return {"offset": "8d1c0f5e-0000-4000-8000-000000000001", "publishedAt": OCCURRED_ISO,
            "journalEvents": list(events)}  # fmt: skip


def crm(action: str, **fields: Any) -> dict[str, Any]:
    return {"type": "crmObject", "portalId": int(PORTAL), "objectTypeId": "0-1", "objectId": 901,
            "action": action, "occurredAt": OCCURRED_ISO, **fields}  # fmt: skip


def journal(*events: dict[str, Any]) -> list[Any]:
    return read_entry(entry(*events), portal=PORTAL, offset="o-1", received_at=NOW).events


def webhooks(*events: dict[str, Any]) -> list[Any]:
    """What `cdc ingest` publishes for these webhook events (generic ``object.*`` format)."""
    import orjson  # noqa: PLC0415 -- only here

    body = [
        {"eventId": i, "portalId": int(PORTAL), "occurredAt": OCCURRED_MS, **e} for i, e in enumerate(events)
    ]
    return [t.event for t in read_body(orjson.dumps(body), NOW, Tenant(PORTAL)).translated]


def test_an_update_is_one_event_per_changed_property_positioned_at_its_offset() -> None:
    events = journal(crm("UPDATE", propertyChanges={"email": "a@x.test", "firstname": None}))
    assert [(e.operation, e.changed_properties) for e in events] == [
        (Operation.UPDATE, {"email": "a@x.test"}),
        (Operation.UPDATE, {"firstname": None}),
    ]
    assert {e.origin for e in events} == {Origin.JOURNAL}
    assert [e.source_event_id for e in events] == ["o-1#0", "o-1#0"]
    assert {(e.object_type, e.object_id, e.key) for e in events} == {
        ("contact", "901", "hubspot/62515/contact/901")
    }


@pytest.mark.parametrize(
    ("journal_event", "webhook_event"),
    [
        (crm("CREATE"), {"subscriptionType": "object.creation", "objectTypeId": "0-1", "objectId": 901}),
        (
            crm("UPDATE", propertyChanges={"email": "a@x.test"}),
            {"subscriptionType": "object.propertyChange", "objectTypeId": "0-1", "objectId": 901,
             "propertyName": "email", "propertyValue": "a@x.test"},
        ),
        (crm("DELETE"), {"subscriptionType": "object.deletion", "objectTypeId": "0-1", "objectId": 901}),
        (
            crm("MERGE", primaryObjectId=901, mergedObjectIds=[902], newObjectId=903),
            {"subscriptionType": "object.merge", "objectTypeId": "0-1", "objectId": 901,
             "primaryObjectId": 901, "mergedObjectIds": [902], "newObjectId": 903},
        ),
        (
            {"type": "association", "portalId": int(PORTAL), "objectTypeId": "0-1", "objectId": 901,
             "action": "ASSOCIATION_ADDED", "occurredAt": OCCURRED_ISO, "associatedObjectTypeId": "0-2",
             "associatedObjectId": 77, "associationTypeId": 279},
            {"subscriptionType": "object.associationChange", "fromObjectTypeId": "0-1",
             "fromObjectId": 901, "toObjectTypeId": "0-2", "toObjectId": 77, "associationTypeId": 279,
             "associationRemoved": False},
        ),
    ],
    ids=["create", "update", "delete", "merge", "association"],
)  # fmt: skip
def test_the_same_change_by_webhook_and_by_journal_is_routed_once(
    journal_event: dict[str, Any], webhook_event: dict[str, Any]
) -> None:
    (from_journal,) = journal(journal_event)
    (from_webhook,) = webhooks(webhook_event)
    assert from_journal.identity == from_webhook.identity
    seen = SeenChanges()
    first = seen.unseen([from_webhook])
    seen.remember(first)
    assert seen.unseen([from_journal]) == []
    assert seen.dropped == 1


def test_a_batch_that_failed_to_commit_is_routed_again() -> None:
    (event,) = journal(crm("DELETE"))
    seen = SeenChanges()
    assert seen.unseen([event, event]) == [event]  # the second is a duplicate within the batch
    assert seen.unseen([event]) == [event]  # not remembered: its transaction never committed


def test_a_different_value_or_time_is_another_change() -> None:
    (one,) = journal(crm("UPDATE", propertyChanges={"email": "a@x.test"}))
    (other,) = journal(crm("UPDATE", propertyChanges={"email": "b@x.test"}))
    (later,) = journal(crm("UPDATE", propertyChanges={"email": "a@x.test"}, occurredAt=OCCURRED_MS + 1))
    assert len({one.identity, other.identity, later.identity}) == 3


def test_bad_input_is_published_as_other_or_counted_apart_never_dropped_silently() -> None:
    read = read_entry(
        entry(crm("TELEPORT"), {"objectId": 1}, "not an object",
              crm("UPDATE", portalId=999, propertyChanges={"a": 1})),
        portal=PORTAL, offset="o-2", received_at=NOW,
    )  # fmt: skip
    assert [(e.operation, e.source_event_type) for e in read.events] == [
        (Operation.OTHER, "journal.TELEPORT"),
        (Operation.OTHER, "journal.None"),
        (Operation.OTHER, "journal.?"),
    ]
    assert (read.unreadable, read.foreign) == (3, 1)
    with pytest.raises(EntryFileError, match="journalEvents"):
        read_entry({"offset": "x"}, portal=PORTAL, offset="o-3", received_at=NOW)


def test_a_resync_of_a_change_already_routed_is_applied_again() -> None:
    """Only the live feeds are compared: `cdc resync` and the reconciler re-read on purpose."""
    (event,) = journal(crm("DELETE"))
    seen = SeenChanges()
    seen.remember([event])
    again = event.model_copy(update={"origin": Origin.RESYNC})
    assert seen.unseen([again]) == [again]


def test_a_snapshot_is_an_upsert_with_the_values_it_holds() -> None:
    (event,) = journal(crm("SNAPSHOT", propertyChanges={"email": "a@x.test", "firstname": "A"}))
    assert (event.operation, event.record, event.changed_properties) == (
        Operation.UPSERT,
        {"email": "a@x.test", "firstname": "A"},
        {},
    )
