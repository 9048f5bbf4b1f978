"""Keys are unambiguous, and the link view finds a pair by either side, also after merges and tombstones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given

from streams.keys import RecordRef, SourceSystem, join_key, split_key
from streams.link_store import LinkIndex
from streams.links import Link, LinkSide, fingerprint, link_id_for, link_id_from_key, link_key
from tests.unit import strategies

NOW = datetime(2026, 11, 23, tzinfo=UTC)


@given(strategies.refs)
def test_record_keys_round_trip_whatever_the_ids_hold(ref: RecordRef) -> None:
    assert RecordRef.from_key(ref.key) == ref
    assert ref.key.count("/") == 3


def test_record_key_format_is_documented() -> None:
    ref = RecordRef(system=SourceSystem.HUBSPOT, tenant="1234567", object_type="contact", object_id="51")
    assert ref.key == "hubspot/1234567/contact/51"
    assert join_key("a/b", "c") == "a%2Fb/c"
    assert split_key("a%2Fb/c") == ["a/b", "c"]


def test_bad_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="not a record key"):
        RecordRef.from_key("hubspot/1/contact")
    with pytest.raises(ValueError, match="not a link key"):
        link_id_from_key("hubspot/1/contact/2")


def side(system: SourceSystem, object_id: str, merged: tuple[str, ...] = ()) -> LinkSide:
    tenant = "42" if system is SourceSystem.HUBSPOT else "org"
    return LinkSide(
        system=system, tenant=tenant, object_type="contact", object_id=object_id, merged_ids=merged
    )


def link(hubspot_id: str, dataverse_id: str, merged: tuple[str, ...] = (), revision: int = 1) -> Link:
    hubspot, dataverse = (
        side(SourceSystem.HUBSPOT, hubspot_id, merged),
        side(SourceSystem.DATAVERSE, dataverse_id),
    )
    return Link(
        link_id=link_id_for(hubspot.ref, dataverse.ref),
        hubspot=hubspot,
        dataverse=dataverse,
        revision=revision,
        created_at=NOW,
        updated_at=NOW,
    )


def test_index_finds_a_pair_by_either_side_and_forgets_it_on_a_tombstone() -> None:
    index = LinkIndex()
    pair = link("1", "g1")
    index.apply(pair.link_id, pair)
    assert index.find(pair.hubspot.ref) == pair
    assert index.find(pair.dataverse.key) == pair
    index.apply(pair.link_id, None)
    assert index.find(pair.hubspot.ref) is None
    assert len(index) == 0


def test_a_merge_repoints_the_pair_and_old_ids_still_find_it() -> None:
    index = LinkIndex()
    before = link("1", "g1")
    index.apply(before.link_id, before)
    after = before.model_copy(
        update={"hubspot": side(SourceSystem.HUBSPOT, "3", merged=("1", "2")), "revision": 2}
    )
    index.apply(after.link_id, after)
    for old_or_new in ("1", "2", "3"):
        assert index.find(side(SourceSystem.HUBSPOT, old_or_new).ref) == after
    assert len(index) == 1


def test_replacing_a_side_drops_the_old_sides_lookup() -> None:
    index = LinkIndex()
    first = link("1", "g1")
    index.apply(first.link_id, first)
    moved = first.model_copy(update={"dataverse": side(SourceSystem.DATAVERSE, "g2")})
    index.apply(first.link_id, moved)
    assert index.find(side(SourceSystem.DATAVERSE, "g1").ref) is None
    assert index.find(side(SourceSystem.DATAVERSE, "g2").ref) == moved


def test_the_index_knows_which_pairs_wait_for_a_record_through_updates_and_tombstones() -> None:
    company = join_key("hubspot", "portal-1", "company", "c1")
    other = join_key("hubspot", "portal-1", "company", "c2")
    index = LinkIndex()
    first, second = link("1", "g1"), link("2", "g2")
    for pair in (first, second):
        index.apply(pair.link_id, pair.model_copy(update={"waiting_for": (company,)}))
    assert index.waiting_on(company) == {first.link_id, second.link_id}
    index.apply(first.link_id, first.model_copy(update={"waiting_for": (other,), "revision": 2}))
    assert index.waiting_on(company) == {second.link_id}
    assert index.waiting_on(other) == {first.link_id}
    index.apply(second.link_id, None)
    index.apply_raw(first.link_id, first.model_dump_json().encode())  # as read back: waits for nothing
    assert index.waiting_on(company) == set()
    assert index.waiting_on(other) == set()


def test_link_sides_must_be_the_right_systems() -> None:
    with pytest.raises(ValueError, match="'hubspot' side must be a HubSpot record"):
        Link(
            link_id="x",
            hubspot=side(SourceSystem.DATAVERSE, "g"),
            dataverse=side(SourceSystem.DATAVERSE, "g"),
            created_at=NOW,
            updated_at=NOW,
        )


def test_link_ids_and_fingerprints_are_stable() -> None:
    a, b = side(SourceSystem.HUBSPOT, "1").ref, side(SourceSystem.DATAVERSE, "g1").ref
    assert link_id_for(a, b) == link_id_for(a, b) != link_id_for(b, a)
    assert link_key("abc") == "link/abc"
    assert fingerprint("x") == fingerprint("x") != fingerprint("X")
    assert fingerprint(1) != fingerprint("1")
    assert fingerprint(None) != fingerprint("")
