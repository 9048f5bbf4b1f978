"""Grouping a batch into units and passes, as a user checks it: a burst of edits to one pair is one read and
one write, two new records with one email become one pair, our own writes coming back are dropped before
any read, and a unit follows its link when a merge or an earlier pass moved it. No I/O."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from consumers.config import Pair
from consumers.ports import Record
from consumers.units import (
    Grouping,
    Unit,
    current,
    first_step,
    linked_meanwhile,
    match_requests,
    nothing_new,
    step_name,
)
from streams.codec import Scalar
from streams.events import ChangeEvent, Operation
from streams.keys import SourceSystem
from streams.links import Link
from streams.work import WorkItem
from tests.unit.batch_world import (
    AT,
    CONFIG,
    CONTACTS,
    DV,
    FIELDS,
    HS,
    batch_of,
    change,
    index_of,
    item,
    link,
)

PAIR = link(
    "h1", "d1", hubspot={"email": "a@example.com", "firstname": "Ann"}, dataverse={"firstname": "Ann"}
)


def grouped(items: list[WorkItem], *links: Link) -> Grouping:
    grouping = Grouping(batch_of(*links).view, FIELDS)
    for each in items:
        grouping.add(each)
    return grouping


def test_every_change_of_a_linked_pair_is_one_unit_whichever_side_it_came_from() -> None:
    edits = [
        item(change(HS, "h1", changed_properties={"firstname": "Anna"}), PAIR),
        item(change(DV, "d1", changed_properties={"lastname": "Lee"}, at=AT + timedelta(seconds=1)), PAIR),
        item(change(HS, "h1", changed_properties={"city": "Oslo"}, at=AT + timedelta(seconds=2)), PAIR),
    ]
    [[unit]] = grouped(edits, PAIR).passes()
    assert unit.link == PAIR
    assert unit.ids == {HS: "h1", DV: "d1"}
    assert unit.items == edits
    assert unit.trigger is HS


def test_two_new_contacts_with_one_email_one_on_each_side_are_one_pair() -> None:
    hubspot = item(change(HS, "h9", Operation.CREATE, record={"email": "New@Example.com"}))
    dataverse = item(
        change(
            DV,
            "d9",
            Operation.CREATE,
            record={"emailaddress1": "new@example.com"},
            at=AT - timedelta(seconds=1),
        )
    )
    assert hubspot.route == dataverse.route  # one match key: one route
    [[unit]] = grouped([hubspot, dataverse]).passes()
    assert unit.link is None
    assert unit.ids == {HS: "h9", DV: "d9"}
    assert unit.items == [dataverse, hubspot]  # in the order they happened


def test_two_new_hubspot_contacts_with_one_email_run_in_successive_passes() -> None:
    """The second must see the link the first made, else both would create a Dataverse contact."""
    first = item(change(HS, "h1", Operation.CREATE, record={"email": "dup@example.com"}))
    second = item(change(HS, "h2", Operation.CREATE, record={"email": "dup@example.com"}))
    other = item(change(HS, "h3", Operation.CREATE, record={"email": "other@example.com"}))
    passes = grouped([first, second, other]).passes()
    assert [[u.ids[HS] for u in p] for p in passes] == [["h1", "h3"], ["h2"]]


def test_our_own_write_coming_back_is_dropped_before_any_read() -> None:
    echo = item(change(HS, "h1", changed_properties={"firstname": "Ann"}), PAIR)
    untracked = item(change(HS, "h1", changed_properties={"hs_lead_status": "NEW"}), PAIR)
    grouping = grouped([echo, untracked], PAIR)
    assert grouping.passes() == []
    assert grouping.echoes == 2


def test_a_change_is_kept_when_a_value_moved_or_the_change_cannot_tell() -> None:
    tracked = FIELDS.tracked(CONTACTS)
    edit = change(HS, "h1", changed_properties={"firstname": "Anna"})
    assert not nothing_new(edit, tracked[HS], PAIR)
    partial_record = change(
        HS, "h1", record={"firstname": "Ann"}
    )  # lacks tracked fields: only a read can tell
    assert not nothing_new(partial_record, tracked[HS], PAIR)
    assert not nothing_new(change(HS, "h1", changed_properties={}), tracked[HS], PAIR)
    for kept in (Operation.RESTORE, Operation.OTHER):
        assert not nothing_new(change(HS, "h1", kept), tracked[HS], PAIR)


def test_a_linked_records_creation_is_dropped_before_any_read() -> None:
    """Our own create's creation webhook coming back, or a creation replayed after the sync: the pair is
    linked, so the record was read (or made by us) after it was created. A replay of synced events made a
    read and a plan for each (issue 17: replay at 1,152-1,432 events/s)."""
    created = item(change(HS, "h1", Operation.CREATE), PAIR)
    with_values = item(change(HS, "h1", Operation.CREATE, changed_properties={"firstname": "Bo"}), PAIR)
    grouping = grouped([created, with_values], PAIR)
    assert grouping.passes() == []
    assert grouping.echoes == 2
    unlinked = item(change(HS, "h7", Operation.CREATE, record={"email": "new@example.com"}))
    assert len(grouped([unlinked], PAIR).passes()) == 1  # a new record is first-synced, as ever


def _associated(to_id: str, type_id: int | None = 1, *, removed: bool = False) -> ChangeEvent:
    association = {"to_object_type": "company", "to_object_id": to_id, "association_type_id": type_id}
    return change(HS, "h1", Operation.ASSOCIATION, association={**association, "removed": removed})


def test_an_association_the_link_holds_or_the_pair_does_not_map_is_dropped_before_any_read() -> None:
    """The primary company (``company:1``) the link holds, added again (our write coming back, a replay),
    and HubSpot's unlabeled association (type 279) beside it carry nothing new; a new primary company, a
    removal, or an association of no stated type is read."""
    pair = link("h1", "d1", hubspot={"@company:1": "c1"})
    tracked = FIELDS.tracked(CONTACTS)[HS]
    assert nothing_new(_associated("c1"), tracked, pair)
    assert nothing_new(_associated("c1", 279), tracked, pair)
    assert not nothing_new(_associated("c2"), tracked, pair)
    assert not nothing_new(_associated("c1", removed=True), tracked, pair)
    assert not nothing_new(_associated("c1", None), tracked, pair)
    assert not nothing_new(_associated("c1"), tracked, PAIR)  # no company synced yet


def test_a_dataverse_row_that_moved_only_its_parent_account_is_a_change() -> None:
    """A row carries its lookup as ``_parentcustomerid_value``: compared by the association's fingerprint."""
    values: dict[str, Scalar] = {p: None for p in FIELDS.tracked(CONTACTS)[DV] if not p.startswith("@")}
    pair = link("h1", "d1", dataverse={**values, "@parentcustomerid:account": "acc-1"})
    tracked = FIELDS.tracked(CONTACTS)[DV]
    same = change(DV, "d1", record={**values, "_parentcustomerid_value": "acc-1"})
    moved = change(DV, "d1", record={**values, "_parentcustomerid_value": "acc-2"})
    assert nothing_new(same, tracked, pair)
    assert not nothing_new(moved, tracked, pair)


def test_a_unit_follows_its_link_as_the_batch_moved_it() -> None:
    """A merge earlier in the batch moved the pair to the survivor, and another pair's unit now shares it;
    a third pair was deleted in this batch; an unlinked record was linked by an earlier pass."""
    other = link("h2", "d2")
    gone = link("h3", "d3")
    batch = batch_of(PAIR, other, gone)
    moved = PAIR.model_copy(
        update={"hubspot": PAIR.hubspot.model_copy(update={"object_id": "h9"}), "revision": 2}
    )
    batch.view.apply(PAIR.link_id, moved)
    batch.view.apply(gone.link_id, None)
    made = link("h4", "d4")
    batch.view.apply(made.link_id, made)
    a = Unit(
        CONTACTS,
        "r1",
        [item(change(DV, "d1", at=AT + timedelta(seconds=2)), PAIR)],
        {HS: "h1", DV: "d1"},
        PAIR,
    )
    b = Unit(CONTACTS, "r1", [item(change(HS, "h9", at=AT + timedelta(seconds=1)))], {HS: "h9", DV: None})
    c = Unit(CONTACTS, "r3", [item(change(HS, "h3"), gone)], {HS: "h3", DV: "d3"}, gone)
    d = Unit(CONTACTS, "r4", [item(change(HS, "h4"))], {HS: "h4", DV: None})
    units = current([a, b, c, d], batch)
    assert units == [a, d]
    assert a.link == moved
    assert a.ids == {HS: "h9", DV: "d1"}
    assert [i.change.object_id for i in a.items] == ["h9", "d1"]  # b's change joined, in time order
    assert d.link == made
    assert d.ids == {HS: "h4", DV: "d4"}


def test_a_record_another_replica_linked_while_the_batch_read_takes_that_link() -> None:
    """The link store's tail runs between any two awaits of a batch: a link made by another replica for a
    record this batch took for unlinked arrives in the committed view, and the unit takes it (else its
    counterpart looks linked to another record and a second one is created)."""
    batch = batch_of()
    unit = Unit(CONTACTS, "r", [item(change(DV, "d1"))], {HS: None, DV: "d1"})
    assert not linked_meanwhile(unit, batch)
    batch.view.base.commit([(PAIR.link_id, PAIR)])  # the tail, meanwhile
    assert linked_meanwhile(unit, batch)
    assert (unit.link, unit.ids) == (PAIR, {HS: "h1", DV: "d1"})
    assert not linked_meanwhile(unit, batch)  # linked already: nothing to take


def test_an_unlinked_record_asks_for_its_match_as_written_and_with_its_spacing_normalized() -> None:
    """The CRMs compare names exactly (bar case): a company named with a double space is looked up both
    ways, and its match key decides. A linked record, or one paired within the batch, asks nothing."""
    companies = Pair(hubspot="company", dataverse="account")
    lone = Unit(companies, "r1", [], {HS: "c1", DV: None})
    contact = Unit(CONTACTS, "r2", [], {HS: "h1", DV: None})
    paired = Unit(CONTACTS, "r3", [], {HS: "h2", DV: "d2"})
    linked = Unit(CONTACTS, "r4", [], {HS: "h1", DV: "d1"}, PAIR)
    values: dict[Unit, dict[str, Scalar]] = {
        lone: {"name": "  Acme  Corp "},
        contact: {"email": " Ann@Example.com "},
        paired: {"email": "b@example.com"},
        linked: {"email": "a@example.com"},
    }

    def read(unit: Unit, system: SourceSystem) -> Record | None:
        return (
            Record(unit.pair.object_on(system), str(unit.ids[system]), values[unit]) if system is HS else None
        )

    requests = match_requests([lone, contact, paired, linked], read, CONFIG)
    asked = {
        (system, object_type, step.name): {
            value: [u for u, _ in asking] for value, asking in by_value.items()
        }
        for (system, object_type, step), by_value in requests.items()
    }
    assert asked == {
        (DV, "account", "companies_to_accounts"): {"Acme  Corp": [lone], "Acme Corp": [lone]},
        (DV, "contact", "contacts_to_contacts"): {"Ann@Example.com": [contact]},
    }
    keys = {key for by_value in requests.values() for asking in by_value.values() for _, key in asking}
    assert len(keys) == 2  # one match key per record, whichever way its value is asked for


def test_a_unit_is_named_by_the_step_its_change_would_run() -> None:
    unit = Unit(CONTACTS, "r", [item(change(DV, "d1"))], {HS: None, DV: "d1"})
    assert step_name(CONFIG, unit) == "contacts_to_hubspot_contacts"
    step = first_step(CONFIG, CONTACTS, HS)
    assert step is not None
    assert step.name == "contacts_to_contacts"


records = st.sampled_from(["h1", "h2", "h3"]).map(lambda i: (HS, i)) | st.sampled_from(
    ["d1", "d2", "d3"]
).map(lambda i: (DV, i))
firstnames = st.sampled_from(["Ann", "Bo", None])


@given(st.lists(st.tuples(records, firstnames), max_size=20), st.booleans())
def test_every_change_is_in_exactly_one_unit_or_counted_as_an_echo(
    edits: list[tuple[tuple[SourceSystem, str], str | None]], linked: bool
) -> None:
    """Nothing is lost and nothing doubled, units of one pass never share a route (one writer per pair),
    and a linked pair's changes are one unit."""
    links = [
        link(f"h{n}", f"d{n}", hubspot={"firstname": "Ann"}, dataverse={"firstname": "Ann"}) for n in (1, 2)
    ]
    present = links if linked else []
    items = [
        item(
            change(system, object_id, changed_properties={"firstname": name}, at=AT + timedelta(seconds=n)),
            *present,
        )
        for n, ((system, object_id), name) in enumerate(edits)
    ]
    grouping = grouped(items, *present)
    passes = grouping.passes()
    units = [u for p in passes for u in p]
    assert sum(len(u.items) for u in units) + grouping.echoes == len(items)
    assert len({id(i) for u in units for i in u.items}) == sum(len(u.items) for u in units)
    for p in passes:
        assert len({u.route for u in p}) == len(p)
    assert len({u.link.link_id for u in units if u.link is not None}) == len([u for u in units if u.link])
    index = index_of(*present)
    for u in units:
        for i in u.items:
            found = index.find(i.change.ref)
            assert (u.link is None) if found is None else (u.link == found)


def test_a_dataverse_row_older_than_the_one_the_link_settled_on_is_dropped_before_any_read() -> None:
    """A replay re-reads the delta feed's history: a row as it was before the daemon (or a user) changed it
    again. Its version number is below the link's (a read's, or an If-Match write's on that read), so the
    link saw what came after it. The row the link settled on, a later one, and a HubSpot record (no
    If-Match there, so a write may land after an edit it never read) are still compared or read."""
    old = {"firstname": "Old"}  # differs from the link's "Ann": only the version can tell it is stale
    pair = PAIR.model_copy(update={"dataverse": PAIR.dataverse.model_copy(update={"version": 'W/"120"'})})
    tracked = FIELDS.tracked(CONTACTS)
    assert nothing_new(change(DV, "d1", changed_properties=old, source_version="119"), tracked[DV], pair)
    assert not nothing_new(change(DV, "d1", changed_properties=old, source_version="120"), tracked[DV], pair)
    assert not nothing_new(change(DV, "d1", changed_properties=old, source_version="121"), tracked[DV], pair)
    unversioned = change(DV, "d1", changed_properties=old)  # no version: compared by its values
    assert not nothing_new(unversioned, tracked[DV], pair)
    assert not nothing_new(change(DV, "d1", changed_properties=old, source_version="119"), tracked[DV], PAIR)
    hubspot = pair.model_copy(update={"hubspot": pair.hubspot.model_copy(update={"version": "200"})})
    edit = change(HS, "h1", changed_properties={"firstname": "Old"}, source_version="100")
    assert not nothing_new(edit, tracked[HS], hubspot)
