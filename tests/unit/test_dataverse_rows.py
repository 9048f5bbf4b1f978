"""Change-tracking entries -> change events: pure conversion, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.dataverse.paths import entity_logical_name
from cdc.dataverse.rows import RowError, is_deleted_entry, row_to_event
from streams.codec import Position
from streams.events import CHANGE_CODEC, Operation, Origin

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ORG = "contoso.crm.dynamics.com"
ID = "9A6B33E3-4C41-F011-877A-000D3A5A1C2B"


@pytest.mark.parametrize(
    ("entity_set", "logical"),
    [("contacts", "contact"), ("accounts", "account"), ("leads", "lead"), ("opportunities", "opportunity")],
)
def test_logical_names_of_the_synced_tables(entity_set: str, logical: str) -> None:
    assert entity_logical_name(entity_set) == logical


def test_a_row_is_an_upsert_with_the_full_row_and_no_annotations() -> None:
    row = {
        "@odata.etag": 'W/"915244"',
        "contactid": ID,
        "firstname": "Ada",
        "lastname": None,
        "numberofchildren": 2,
        "creditlimit": 1.5,
        "donotemail": False,
        "_parentcustomerid_value": "b1",
        "_parentcustomerid_value@OData.Community.Display.V1.FormattedValue": "Contoso",
        "modifiedon": "2026-11-20T08:00:00Z",
    }
    event = row_to_event(row, tenant=ORG, object_type="contact", received_at=NOW)
    assert event.operation is Operation.UPSERT
    assert event.origin is Origin.CHANGE_TRACKING
    assert event.key == f"dataverse/{ORG}/contact/{ID.lower()}"
    assert event.record == {
        "contactid": ID,
        "firstname": "Ada",
        "lastname": None,
        "numberofchildren": 2,
        "creditlimit": 1.5,
        "donotemail": False,
        "_parentcustomerid_value": "b1",
        "modifiedon": "2026-11-20T08:00:00Z",
    }
    assert event.source_version == "915244"
    assert event.occurred_at == datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert event.received_at == NOW


def test_versionnumber_wins_over_the_etag_and_a_missing_modifiedon_falls_back_to_received() -> None:
    event = row_to_event(
        {"accountid": "a1", "versionnumber": 77, "@odata.etag": 'W/"5"'},
        tenant=ORG,
        object_type="account",
        received_at=NOW,
    )
    assert event.source_version == "77"
    assert event.occurred_at == NOW


def test_a_deleted_entity_is_a_delete_with_its_bare_id() -> None:
    entry = {
        "@odata.context": f"https://{ORG}/api/data/v9.2/$metadata#contacts/$deletedEntity",
        "id": ID,
        "reason": "deleted",
    }
    assert is_deleted_entry(entry)
    event = row_to_event(entry, tenant=ORG, object_type="contact", received_at=NOW)
    assert event.operation is Operation.DELETE
    assert event.object_id == ID.lower()
    assert event.record is None
    assert event.source_event_type == "deleted"


def test_a_deleted_entry_without_context_is_recognised_by_its_shape() -> None:
    assert is_deleted_entry({"id": ID, "reason": "deleted"})
    assert not is_deleted_entry({"contactid": ID, "reason": "a column called reason"})


@pytest.mark.parametrize(
    "entry",
    [{"firstname": "no key"}, {"contactid": ""}, {"contactid": 5}, {"id": None, "reason": "deleted"}],
)
def test_entries_without_an_id_are_refused(entry: dict[str, object]) -> None:
    with pytest.raises(RowError, match="contact"):
        row_to_event(entry, tenant=ORG, object_type="contact", received_at=NOW)


def test_values_an_event_cannot_hold_are_kept_as_text() -> None:
    event = row_to_event(
        {"contactid": "c", "big": 2**70, "nested": {"a": [1]}, "nan": float("nan")},
        tenant=ORG,
        object_type="contact",
        received_at=NOW,
    )
    assert event.record is not None
    assert event.record["big"] == str(2**70)
    assert event.record["nested"] == '{"a":[1]}'
    assert event.record["nan"] == "nan"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@given(columns=st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=8))
def test_any_json_row_becomes_an_event_that_survives_the_codec(columns: dict[str, object]) -> None:
    row = {**columns, "contactid": ID}
    event = row_to_event(row, tenant=ORG, object_type="contact", received_at=NOW)
    assert CHANGE_CODEC.decode(CHANGE_CODEC.encode(event), Position("t", 0, 0)) == event
