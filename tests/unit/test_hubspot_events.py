"""HubSpot webhook bodies become change events: every documented type, both type fields, bad bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.hubspot.events import (
    MAX_OCCURRED_AT_MS,
    Tenant,
    TooManyEventsError,
    WebhookBodyError,
    WebhookEventError,
    parse_body,
    read_body,
    translate,
)
from streams.events import Operation

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OURS = Tenant("62515")


def body(*events: dict[str, Any]) -> bytes:
    return orjson.dumps(list(events))


def base(subscription_type: str, **fields: Any) -> dict[str, Any]:
    return {
        "eventId": 1001,
        "subscriptionId": 25,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": 1_764_000_000_123,
        "subscriptionType": subscription_type,
        "attemptNumber": 0,
        **fields,
    }


def one(event: dict[str, Any]) -> Any:
    [parsed] = parse_body(body(event))
    return translate(parsed, NOW)


def test_property_change_carries_the_one_changed_property_and_who_made_it() -> None:
    result = one(
        base(
            "contact.propertyChange",
            objectId=546500061938,
            propertyName="email",
            propertyValue="ada@example.com",
            changeSource="CRM_UI",
            sourceId="userId:42",
        )
    )
    event = result.event
    assert result.known_type
    assert event.key == "hubspot/62515/contact/546500061938"
    assert event.operation is Operation.UPDATE
    assert event.changed_properties == {"email": "ada@example.com"}
    assert event.source_event_id == "1001"
    assert event.source_event_type == "contact.propertyChange"
    assert event.change_source == "CRM_UI"
    assert event.source_app_id is None
    assert event.occurred_at == datetime(2025, 11, 24, 16, 0, 0, 123000, tzinfo=UTC)
    assert event.received_at == NOW


def test_our_own_writes_are_recognisable_by_the_app_id() -> None:
    event = one(
        base(
            "company.propertyChange",
            objectId=7,
            propertyName="name",
            propertyValue="Acme",
            changeSource="INTEGRATION",
            sourceId="1160452",
        )
    ).event
    assert event.source_app_id == "1160452"


@pytest.mark.parametrize(
    ("subscription_type", "operation"),
    [
        ("contact.creation", Operation.CREATE),
        ("company.deletion", Operation.DELETE),
        ("deal.restore", Operation.RESTORE),
        ("contact.privacyDeletion", Operation.PRIVACY_DELETION),
    ],
)
def test_lifecycle_types(subscription_type: str, operation: Operation) -> None:
    event = one(base(subscription_type, objectId=5, changeFlag="CREATED")).event
    assert event.operation is operation
    assert event.object_type == subscription_type.split(".", maxsplit=1)[0]


def test_event_type_is_accepted_as_the_type_field() -> None:
    raw = base("contact.creation", objectId=5)
    raw["eventType"] = raw.pop("subscriptionType")
    assert one(raw).event.operation is Operation.CREATE


def test_generic_object_types_map_through_object_type_id() -> None:
    event = one(
        base(
            "object.propertyChange",
            objectTypeId="0-2",
            objectId=9,
            propertyName="domain",
            propertyValue="acme.com",
        )
    ).event
    assert event.key == "hubspot/62515/company/9"


def test_merge_keeps_primary_merged_and_new_ids() -> None:
    event = one(
        base(
            "contact.merge",
            objectId=300,
            primaryObjectId=100,
            mergedObjectIds=[200],
            newObjectId=300,
            numberOfPropertiesMoved=12,
        )
    ).event
    assert event.operation is Operation.MERGE
    assert event.merge is not None
    assert (event.merge.primary_object_id, event.merge.merged_object_ids) == ("100", ("200",))
    assert event.merge.surviving_id == "300"


def test_association_change_names_both_records() -> None:
    event = one(
        base(
            "contact.associationChange",
            associationType="CONTACT_TO_COMPANY",
            fromObjectId=11,
            toObjectId=22,
            associationRemoved=False,
            isPrimaryAssociation=True,
        )
    ).event
    assert event.key == "hubspot/62515/contact/11"
    assert event.association is not None
    assert event.association.to_object_type == "company"
    assert event.association.to_object_id == "22"
    assert event.association.primary
    assert not event.association.removed


def test_a_generic_association_change_names_both_records_by_type_id() -> None:
    """A project app's generic subscription sends ``object.associationChange`` with the types as ids and
    no legacy ``associationType`` (the sandbox's shape; issue 15): the record is the from side."""
    event = one(
        base(
            "object.associationChange",
            fromObjectTypeId="0-1",
            fromObjectId=11,
            toObjectTypeId="0-2",
            toObjectId=22,
            associationTypeId=1,
            associationRemoved=True,
        )
    ).event
    assert event.key == "hubspot/62515/contact/11"
    assert event.operation is Operation.ASSOCIATION
    assert event.association is not None
    assert (event.association.to_object_type, event.association.to_object_id) == ("company", "22")
    assert (event.association.association_type_id, event.association.removed) == (1, True)
    assert event.association.category == "CONTACT_TO_COMPANY"


@pytest.mark.parametrize(
    "fields",
    [
        # objectTypeId/objectId for the from side, as the other generic events carry them
        {"objectTypeId": "0-3", "objectId": 11, "toObjectTypeId": "0-2", "toObjectId": 22},
        # the legacy names inside a generic event
        {"associationType": "DEAL_TO_COMPANY", "fromObjectId": 11, "toObjectId": 22},
        # type ids given as strings of digits by a proxy, a custom object on the other side
        {"fromObjectTypeId": "0-3", "fromObjectId": "11", "toObjectTypeId": "2-99", "toObjectId": "22",
         "associationTypeId": "341"},
    ],
)  # fmt: skip
def test_a_generic_association_change_is_read_in_every_plausible_spelling(fields: dict[str, Any]) -> None:
    event = one(base("object.associationChange", **fields)).event
    assert (event.object_type, event.object_id) == ("deal", "11")
    assert event.association is not None
    assert event.association.to_object_id == "22"
    assert event.association.to_object_type in {"company", "2-99"}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"fromObjectTypeId": "0-1", "toObjectTypeId": "0-2"}, "fromObjectId, toObjectId: missing"),
        ({"fromObjectTypeId": "0-1", "fromObjectId": 1, "toObjectId": 2}, "toObjectTypeId: missing"),
        ({"fromObjectId": 1, "toObjectTypeId": "0-2", "toObjectId": 2}, "fromObjectTypeId: missing"),
        ({}, "fromObjectId, toObjectId, fromObjectTypeId, toObjectTypeId: missing"),
        ({"fromObjectTypeId": "0-1", "fromObjectId": 1, "toObjectTypeId": "0-2", "toObjectId": 2,
          "associationTypeId": "primary"}, "associationTypeId"),
    ],
)  # fmt: skip
def test_an_association_change_missing_its_ids_is_an_event_error(fields: dict[str, Any], reason: str) -> None:
    """Dead-lettered by the receiver (`read_body` sets it aside), never published as a change of nobody."""
    batch = read_body(body(base("object.associationChange", **fields)), NOW, OURS)
    assert batch.translated == []
    [rejected] = batch.rejected
    assert rejected.reason.startswith(f"event 0: {reason}")


def test_unknown_types_are_kept_not_rejected() -> None:
    result = one(base("conversation.newMessage", objectId=3, messageId="m1", messageType="MESSAGE"))
    assert not result.known_type
    assert result.event.operation is Operation.OTHER
    assert result.event.source_event_type == "conversation.newMessage"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "body is not JSON"),
        (b'{"eventId": 1}', "body must be a JSON array of events, not dict"),
        (b"[1]", "event 0 is not a JSON object"),
        (body({"eventId": 1}), "event 0: subscriptionType: Field required"),
        (body(base("contact.creation", portalId=None)), "event 0: portalId"),
        (body(base("contact.creation", objectId=True)), "event 0: objectId"),
        (body(base("contact.creation", occurredAt="yesterday")), "event 0: occurredAt"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(raw: bytes, reason: str) -> None:
    with pytest.raises(WebhookBodyError, match=reason):
        parse_body(raw)


def test_an_empty_array_is_no_events() -> None:
    assert parse_body(b"[]") == []


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_anything_but_a_body_error(raw: bytes) -> None:
    try:
        events = parse_body(raw)
    except WebhookBodyError:
        return
    for parsed in events:
        translate(parsed, NOW)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@given(st.lists(st.dictionaries(st.sampled_from(sorted(base("x"))) | st.text(max_size=12), json_values)))
def test_any_json_array_parses_or_fails_cleanly_and_translates(items: list[dict[str, Any]]) -> None:
    try:
        events = parse_body(orjson.dumps(items))
    except WebhookBodyError:
        return
    for parsed in events:
        assert translate(parsed, NOW).event.source_event_type


def test_occurred_at_past_the_last_representable_date_is_an_error_not_a_crash() -> None:
    with pytest.raises(WebhookBodyError, match="event 0: occurredAt"):
        parse_body(body(base("contact.creation", objectId=1, occurredAt=MAX_OCCURRED_AT_MS + 1)))
    last = one(base("contact.creation", objectId=1, occurredAt=MAX_OCCURRED_AT_MS))
    assert last.event.occurred_at.year == 9999


@pytest.mark.parametrize("association_type", ["_TO_", "CONTACT_TO_", "_to_"])
def test_an_association_type_naming_no_types_cannot_be_translated(association_type: str) -> None:
    event = base("object.associationChange", associationType=association_type, fromObjectId=1, toObjectId=2)
    [parsed] = parse_body(body(event))
    with pytest.raises(WebhookEventError, match="associationType"):
        translate(parsed, NOW)


def test_read_body_sets_bad_events_aside_and_keeps_the_good_ones() -> None:
    good = base("contact.creation", objectId=7)
    batch = read_body(body(good, base("contact.creation", occurredAt=-1), {"eventId": 3}, good), NOW, OURS)
    assert [item.event.object_id for item in batch.translated] == ["7", "7"]
    assert [(rejected.index, rejected.reason.split(":")[:2]) for rejected in batch.rejected] == [
        (1, ["event 1", " occurredAt"]),
        (2, ["event 2", " subscriptionType"]),
    ]


@given(st.lists(st.dictionaries(st.sampled_from(sorted(base("x"))) | st.text(max_size=12), json_values)))
def test_read_body_never_raises_for_an_array_of_objects(items: list[dict[str, Any]]) -> None:
    batch = read_body(orjson.dumps(items), NOW, OURS, max_events=len(items))
    assert len(batch.translated) + len(batch.rejected) + len(batch.foreign) == len(items)


@pytest.mark.parametrize(
    ("tenant", "fields", "foreign"),
    [
        (OURS, {}, None),
        (OURS, {"portalId": "62515"}, None),  # an id as a string is the same id
        (OURS, {"portalId": 99999}, "portalId"),
        (OURS, {"portalId": 99999, "occurredAt": "yesterday"}, "portalId"),  # foreign before unreadable
        (OURS, {"appId": 7}, None),  # no app configured: any app of our portal
        (Tenant("62515", "1160452"), {}, None),
        (Tenant("62515", "1160452"), {"appId": 7}, "appId"),
        (Tenant("62515", "1160452"), {"appId": None}, None),  # the signature proves the app
        (OURS, {"portalId": None}, None),  # no portal at all: unreadable, dead-lettered
        (OURS, {"portalId": True}, None),
        (OURS, {"portalId": 1.5}, None),
    ],
)
def test_the_tenant_names_events_of_another_portal_or_app(
    tenant: Tenant, fields: dict[str, Any], foreign: str | None
) -> None:
    assert tenant.foreign_field(base("contact.creation", objectId=7, **fields)) == foreign


def test_read_body_sets_foreign_events_apart_neither_translated_nor_rejected() -> None:
    ours = base("contact.creation", objectId=7)
    theirs = base("contact.creation", objectId=8, portalId=99999)
    theirs_unreadable = {**theirs, "occurredAt": -1}
    batch = read_body(body(theirs, ours, theirs_unreadable), NOW, OURS)
    assert [item.event.object_id for item in batch.translated] == ["7"]
    assert batch.rejected == []
    assert [(item.index, item.field, item.value) for item in batch.foreign] == [
        (0, "portalId", "99999"),
        (2, "portalId", "99999"),
    ]


def test_read_body_refuses_more_events_than_the_limit_before_reading_any() -> None:
    events = [base("contact.creation", objectId=n) for n in range(101)]
    assert len(read_body(body(*events[:100]), NOW, OURS).translated) == 100
    with pytest.raises(TooManyEventsError, match="body holds 101 events; the limit is 100"):
        read_body(body(*events), NOW, OURS)
