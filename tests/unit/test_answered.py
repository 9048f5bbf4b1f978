"""Which change stands for the read of its record (`consumers.answered`): pure, over work items and links."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumers.answered import answering, newer_version
from streams.events import Operation
from streams.work import WorkItem
from tests.unit.batch_world import DV, HS, change, item, link

ROW = {"contactid": "d1", "emailaddress1": "ann@example.com", "firstname": "Ann"}
PAIR = link("h1", "d1", hubspot={"email": "ann@example.com"}, dataverse={"emailaddress1": "ann@example.com"})
SEEN = PAIR.model_copy(update={"dataverse": PAIR.dataverse.model_copy(update={"version": 'W/"120"'})})


def delta(version: str | None = "121", object_id: str = "d1") -> WorkItem:
    """A Dataverse delta row as `cdc poll` publishes it: an upsert with the whole row."""
    return item(change(DV, object_id, Operation.UPSERT, record=ROW, source_version=version))


def test_a_delta_row_of_a_linked_record_newer_than_the_link_answers_its_read() -> None:
    row = delta()
    assert answering([row], DV, "d1", SEEN, attempts=0) is row.change


def test_a_delta_row_of_a_record_no_link_knows_is_read() -> None:
    """The row may be late: the record deleted, with its link, since it was polled (test_late_rows.py)."""
    assert answering([delta()], DV, "d1", None, attempts=0) is None


def test_a_later_change_without_the_whole_record_asks_for_the_read() -> None:
    """A webhook or a change carrying one property tells nothing of the rest as of its position."""
    later = item(change(DV, "d1", changed_properties={"firstname": "Bo"}))
    assert answering([delta(), later], DV, "d1", SEEN, attempts=0) is None
    # A change from the other side after it does not: the row is still this side's latest.
    other = item(change(HS, "h1", changed_properties={"firstname": "Bo"}))
    first = delta()
    assert answering([first, other], DV, "d1", SEEN, attempts=0) is first.change


def test_a_unit_planned_again_reads_afresh() -> None:
    """After a 412 (the row changed since) or a link that moved, the row as the event had it is stale."""
    assert answering([delta()], DV, "d1", SEEN, attempts=1) is None


def test_a_delta_row_no_newer_than_the_links_is_read() -> None:
    """A replay re-reads old rows: one the link has seen, or older, is not the record's state."""
    assert answering([delta("121")], DV, "d1", SEEN, attempts=0) is not None
    assert answering([delta("120")], DV, "d1", SEEN, attempts=0) is None
    assert answering([delta("119")], DV, "d1", SEEN, attempts=0) is None
    assert answering([delta(None)], DV, "d1", SEEN, attempts=0) is None
    assert answering([delta("121")], DV, "d1", PAIR, attempts=0) is None  # the link's version unknown


def test_deletes_other_records_and_changes_without_the_record_are_read() -> None:
    assert answering([item(change(DV, "d1", Operation.DELETE))], DV, "d1", SEEN, attempts=0) is None
    assert answering([delta(object_id="d2")], DV, "d1", SEEN, attempts=0) is None
    assert answering([item(change(DV, "d1", changed_properties=ROW))], DV, "d1", SEEN, attempts=0) is None
    assert answering([delta()], HS, "h1", SEEN, attempts=0) is None


@given(st.integers(0, 10**12), st.integers(0, 10**12))
def test_only_a_strictly_newer_row_version_is_newer(event: int, seen: int) -> None:
    assert newer_version(str(event), f'W/"{seen}"') is (event > seen)
    assert newer_version(str(event), str(seen)) is (event > seen)
    assert not newer_version(str(event), None)
    assert not newer_version(None, f'W/"{seen}"')
    assert not newer_version("2026-12-07T00:00:00Z", f'W/"{seen}"')
