"""Every topic schema survives encode -> decode unchanged, and bad bytes give one typed, located error."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.audit import AUDIT_CODEC, AuditAction, AuditRecord, FieldWrite
from streams.checkpoints import CHECKPOINT_CODEC, Checkpoint
from streams.codec import Codec, Position, SchemaError, Versioned
from streams.deadletters import DEADLETTER_CODEC, DeadLetter
from streams.events import CHANGE_CODEC, ChangeEvent, Operation, Origin
from streams.keys import RecordRef, SourceSystem
from streams.links import LINK_CODEC, Link
from tests.unit import strategies

WHERE = Position("crm.changes.hubspot", 3, 1234)


def round_trip(codec: Codec[Any], value: Versioned) -> None:
    assert codec.decode(codec.encode(value), WHERE) == value


@given(strategies.change_events())
def test_change_events_round_trip(event: ChangeEvent) -> None:
    round_trip(CHANGE_CODEC, event)


@given(strategies.links)
def test_links_round_trip(link: Link) -> None:
    round_trip(LINK_CODEC, link)


@given(strategies.checkpoints)
def test_checkpoints_round_trip(checkpoint: Checkpoint) -> None:
    round_trip(CHECKPOINT_CODEC, checkpoint)


@given(strategies.dead_letters())
def test_dead_letters_round_trip_and_keep_the_original_bytes(letter: DeadLetter) -> None:
    round_trip(DEADLETTER_CODEC, letter)


@given(st.none() | st.binary(max_size=200))
def test_dead_letter_keeps_any_original_value_byte_for_byte(raw: bytes | None) -> None:
    value, encoding = DeadLetter.wrap_value(raw)
    letter = DeadLetter(
        topic="t", partition=0, offset=0, value=value, value_encoding=encoding, error_class="E", error="e",
        failed_at=datetime.now(UTC),
    )  # fmt: skip
    assert DEADLETTER_CODEC.decode(DEADLETTER_CODEC.encode(letter), WHERE).original_value() == raw


@given(strategies.audit_records)
def test_audit_records_round_trip(record: AuditRecord) -> None:
    round_trip(AUDIT_CODEC, record)


@given(strategies.change_events())
def test_the_one_step_decode_gives_the_step_by_step_one_s_values(event: ChangeEvent) -> None:
    """`Codec.decode` parses and validates a valid value in one step (pydantic's JSON parser), and reads
    an invalid one again step by step (orjson, then validation) to say what is wrong: both give one value."""
    data = CHANGE_CODEC.encode(event)
    decoded = CHANGE_CODEC.decode(data, WHERE)
    assert decoded == CHANGE_CODEC._decode_slowly(data, WHERE) == event
    assert [type(v) for v in decoded.changed_properties.values()] == [
        type(v) for v in event.changed_properties.values()
    ]


@given(st.binary(max_size=300))
def test_garbage_bytes_raise_schema_error_naming_topic_partition_offset(data: bytes) -> None:
    with pytest.raises(SchemaError) as raised:
        CHANGE_CODEC.decode(data, WHERE)
    assert raised.value.where == WHERE
    assert str(raised.value).startswith("cannot decode change value at crm.changes.hubspot[3]@1234: ")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b"{}", "source: Field required"),
        (None, "empty value (a tombstone"),
        (b'{"schema_version": 2}', "schema_version 2 is newer than this daemon reads (1)"),
    ],
)
def test_bad_values_say_what_is_wrong(data: bytes | None, reason: str) -> None:
    with pytest.raises(SchemaError, match=re.escape("crm.changes.hubspot[3]@1234")) as raised:
        CHANGE_CODEC.decode(data, WHERE)
    assert reason in raised.value.reason


def test_a_value_of_a_newer_schema_is_refused_even_when_it_would_validate() -> None:
    with pytest.raises(SchemaError, match="schema_version 2 is newer than this daemon reads"):
        CHANGE_CODEC.decode(orjson.dumps(valid_event(schema_version=2)), WHERE)


def valid_event(**changes: Any) -> dict[str, Any]:
    event = ChangeEvent(
        source=SourceSystem.DATAVERSE,
        tenant="org.crm.dynamics.com",
        object_type="contact",
        object_id="6f1d2a3b-0000-0000-0000-000000000001",
        operation=Operation.UPSERT,
        origin=Origin.CHANGE_TRACKING,
        record={"emailaddress1": "a@example.com", "versionnumber": 12345},
        source_version="12345",
        occurred_at=datetime(2026, 11, 23, tzinfo=UTC),
        received_at=datetime(2026, 11, 23, tzinfo=UTC),
    )
    raw: dict[str, Any] = orjson.loads(CHANGE_CODEC.encode(event))
    raw.update(changes)
    return raw


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"operation": "frobnicate"}, "operation: Input should be"),
        ({"occurred_at": "2026-11-23T00:00:00"}, "occurred_at: Input should have timezone info"),
        ({"operation": "merge"}, "a merge event needs 'merge'"),
        ({"operation": "association"}, "an association event needs 'association'"),
        ({"unexpected": 1}, "unexpected: Extra inputs are not permitted"),
        ({"changed_properties": {"n": [1, 2]}}, "changed_properties.n"),
        ({"object_id": ""}, "object_id: String should have at least 1 character"),
    ],
)
def test_invalid_events_are_refused_with_the_field_named(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(SchemaError) as raised:
        CHANGE_CODEC.decode(json.dumps(valid_event(**changes)).encode(), WHERE)
    assert reason in raised.value.reason


def test_encoded_event_is_compact_json_with_schema_version() -> None:
    raw = valid_event()
    assert raw["schema_version"] == 1
    assert "merge" not in raw  # None fields are left out
    assert raw["occurred_at"] == "2026-11-23T00:00:00+00:00"
    assert CHANGE_CODEC.header == ("cdc-schema", b"change.v1")


def test_redacted_audit_keeps_no_values() -> None:
    ref = RecordRef(system=SourceSystem.HUBSPOT, tenant="1", object_type="contact", object_id="9")
    with pytest.raises(ValidationError, match="keeps no field values"):
        AuditRecord(
            step="contacts",
            action=AuditAction.UNLINK,
            source=ref,
            fields=(FieldWrite(field="email", old="a@example.com", rule="privacy_deletion"),),
            redacted=True,
            at=datetime.now(UTC),
        )
