"""Hypothesis strategies for the topic schemas: every field, including the awkward values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from streams.audit import AuditAction, AuditRecord, FieldWrite
from streams.checkpoints import Checkpoint, CursorKind
from streams.deadletters import DeadLetter
from streams.events import Association, ChangeEvent, Merge, Operation, Origin
from streams.keys import RecordRef, SourceSystem
from streams.links import FieldSync, Link, LinkSide

text = st.text(min_size=1, max_size=30)
ids = st.one_of(st.integers(0, 2**63 - 1).map(str), st.uuids().map(str), text)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=50),
)
properties = st.dictionaries(st.text(min_size=1, max_size=20), scalars, max_size=6)
aware = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 -- hypothesis wants naive bounds; timezones= makes them aware
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]),
)
systems = st.sampled_from(SourceSystem)
refs = st.builds(RecordRef, system=systems, tenant=text, object_type=text, object_id=ids)

merges = st.builds(
    Merge,
    primary_object_id=ids,
    merged_object_ids=st.lists(ids, max_size=3).map(tuple),
    new_object_id=st.none() | ids,
)
associations = st.builds(
    Association,
    to_object_type=text,
    to_object_id=ids,
    association_type_id=st.none() | st.integers(0, 10_000),
    category=st.none() | st.sampled_from(["HUBSPOT_DEFINED", "USER_DEFINED"]),
    primary=st.booleans(),
    removed=st.booleans(),
)


@st.composite
def change_events(draw: st.DrawFn) -> ChangeEvent:
    operation = draw(st.sampled_from(Operation))
    return ChangeEvent(
        source=draw(systems),
        tenant=draw(text),
        object_type=draw(text),
        object_id=draw(ids),
        operation=operation,
        origin=draw(st.sampled_from(Origin)),
        changed_properties=draw(properties),
        record=draw(st.none() | properties),
        source_event_id=draw(st.none() | ids),
        source_event_type=draw(st.none() | text),
        source_version=draw(st.none() | text),
        change_source=draw(st.none() | st.sampled_from(["CRM_UI", "INTEGRATION", "IMPORT", "API"])),
        source_app_id=draw(st.none() | ids),
        merge=draw(merges) if operation is Operation.MERGE else draw(st.none() | merges),
        association=draw(associations)
        if operation is Operation.ASSOCIATION
        else draw(st.none() | associations),
        merged_ids=tuple(draw(st.lists(ids, max_size=3))),
        occurred_at=draw(aware),
        received_at=draw(aware),
    )


field_syncs = st.builds(FieldSync, fingerprint=text, synced_at=aware, source_modified_at=st.none() | aware)


def sides(system: SourceSystem) -> st.SearchStrategy[LinkSide]:
    return st.builds(
        LinkSide,
        system=st.just(system),
        tenant=text,
        object_type=text,
        object_id=ids,
        fields=st.dictionaries(text, field_syncs, max_size=4),
        version=st.none() | text,
        modified_at=st.none() | aware,
        merged_ids=st.lists(ids, max_size=2).map(tuple),
    )


links = st.builds(
    Link,
    link_id=text,
    hubspot=sides(SourceSystem.HUBSPOT),
    dataverse=sides(SourceSystem.DATAVERSE),
    revision=st.integers(1, 2**31),
    created_at=aware,
    updated_at=aware,
)
checkpoints = st.builds(
    Checkpoint,
    source=systems,
    tenant=text,
    object_type=text,
    kind=st.sampled_from(CursorKind),
    cursor=text,
    updated_at=aware,
    events_published=st.integers(0, 2**40),
)


@st.composite
def dead_letters(draw: st.DrawFn) -> DeadLetter:
    value, encoding = DeadLetter.wrap_value(draw(st.none() | st.binary(max_size=64)))
    return DeadLetter(
        topic=draw(text),
        partition=draw(st.integers(0, 1000)),
        offset=draw(st.integers(0, 2**62)),
        key=draw(st.none() | text),
        value=value,
        value_encoding=encoding,
        step=draw(st.none() | text),
        error_class=draw(text),
        error=draw(text),
        attempts=draw(st.integers(1, 100)),
        failed_at=draw(aware),
    )


field_writes = st.builds(
    FieldWrite, field=text, source_field=st.none() | text, old=scalars, new=scalars, rule=text
)
audit_records = st.builds(
    AuditRecord,
    step=text,
    action=st.sampled_from(AuditAction),
    link_id=st.none() | text,
    source=refs,
    target=st.none() | refs,
    fields=st.lists(field_writes, max_size=4).map(tuple),
    reason=st.none() | text,
    source_event_ids=st.lists(ids, max_size=3).map(tuple),
    dry_run=st.booleans(),
    redacted=st.just(False),
    at=aware,
)
