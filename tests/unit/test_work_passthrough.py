"""The router passes a change it routes unaltered through to the work topic as the bytes it read
(`streams.work.passed_through`), not encoded again: the apply loop must read the very work item the router
would have encoded, and a work value it cannot read still gets the strict decode's error (a dead letter)."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.codec import Position, SchemaError
from streams.events import CHANGE_CODEC, ChangeEvent
from streams.work import WORK_CODEC, WorkItem, passed_through
from tests.unit import strategies

WHERE = Position("crm.sync.work", 2, 77)
texts = st.text(min_size=1, max_size=30)
# Change events are slow to draw on a machine busy with other work; the draws are the test, not its speed.
roomy = settings(suppress_health_check=[HealthCheck.too_slow])


@roomy
@given(strategies.change_events(), texts, texts)
def test_a_change_passed_through_reads_as_the_work_item_the_encoder_makes(
    event: ChangeEvent, pair: str, route: str
) -> None:
    item = WorkItem(pair=pair, route=route, change=event)
    data = passed_through(item, CHANGE_CODEC.encode(event))
    decoded = WORK_CODEC.decode(data, WHERE)
    encoded = WORK_CODEC.decode(WORK_CODEC.encode(item), WHERE)
    assert decoded == encoded == item
    assert decoded.model_fields_set == encoded.model_fields_set
    assert decoded.change.model_fields_set == encoded.change.model_fields_set
    assert orjson.loads(data) == orjson.loads(WORK_CODEC.encode(item))


@roomy
@given(strategies.change_events(), texts, texts)
def test_a_change_read_in_another_layout_passes_through_as_the_same_item(
    event: ChangeEvent, pair: str, route: str
) -> None:
    """What the change topic holds need not be this encoder's bytes (another version, a tool, spaces and
    nulls): the router read it as valid, so the work item holds what the router read."""
    loose = json.dumps(json.loads(event.model_dump_json()), indent=2).encode()
    read = CHANGE_CODEC.decode(loose, WHERE)
    item = WorkItem(pair=pair, route=route, change=read)
    assert WORK_CODEC.decode(passed_through(item, loose), WHERE) == item


EVENT = CHANGE_CODEC.decode(
    b'{"source":"hubspot","tenant":"1","object_type":"contact","object_id":"5","operation":"update",'
    b'"origin":"webhook","occurred_at":"2026-12-07T00:00:00+00:00","received_at":"2026-12-07T00:00:01Z"}',
    WHERE,
)


def test_a_pair_or_route_with_quotes_stays_json() -> None:
    item = WorkItem(pair='a"~\\b', route="link/\u00e9\n", change=EVENT)
    assert WORK_CODEC.decode(passed_through(item, CHANGE_CODEC.encode(EVENT)), WHERE) == item


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (b'{"source":"hubspot"', "not JSON"),
        (b'{"source":"nowhere"}', "change.source"),
        (b"[]", "change"),
    ],
)
def test_a_work_value_that_is_not_a_work_item_gets_the_strict_error(change: bytes, reason: str) -> None:
    """Bytes on the work topic that no router made valid (another producer, a bit flipped) are refused by
    the work topic's own decode, which names what is wrong: the apply loop dead-letters them."""
    item = WorkItem(pair="p", route="r", change=EVENT)
    with pytest.raises(SchemaError, match=reason) as refused:
        WORK_CODEC.decode(passed_through(item, change), WHERE)
    assert "crm.sync.work[2]@77" in str(refused.value)


def test_passed_through_writes_every_field_a_work_item_has() -> None:
    """`passed_through` writes the item's fields by hand: a field added to `WorkItem` must be added there
    too, or the apply loop would read the passed-through item with that field's default."""
    assert set(WorkItem.model_fields) == {"schema_version", "pair", "route", "change"}
