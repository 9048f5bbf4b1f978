"""A batch's own state, without I/O: what it stages and publishes, how its writes are counted, what was
sent and not yet committed (a retry after a half-failed batch takes our own write for ours), and which
fields it reads of each object."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import consumers.sent
from consumers.batch import BatchResult
from consumers.config import COUNTERPART_ID
from consumers.planner import PairPlan, SideWrite
from consumers.ports import Record, WriteKind, WriteOp, WriteOutcome
from consumers.sent import SentValues, covered_by_own
from streams.keys import SourceSystem
from streams.link_store import StaleLinkError
from tests.unit.batch_world import AT, CONTACTS, DV, FIELDS, HS, batch_of, link, synced

PAIR = link("h1", "d1", hubspot={"firstname": "Ann"}, dataverse={"firstname": "Ann"})


def test_a_batch_stages_every_link_it_decides_and_publishes_those_it_is_told_to() -> None:
    batch = batch_of(PAIR)
    moved = PAIR.model_copy(update={"revision": 2})
    batch.take(BatchResult(links=[(PAIR.link_id, moved)], echoes=1), publish=False)
    assert batch.view.get(PAIR.link_id) == moved
    assert batch.result.links == []
    assert batch.result.echoes == 1
    with pytest.raises(StaleLinkError, match="revision 2 would replace revision 2"):
        batch.take(BatchResult(links=[(PAIR.link_id, moved)]))
    gone = BatchResult(links=[(PAIR.link_id, None)])
    batch.take(gone)
    assert batch.result.links == [(PAIR.link_id, None)]
    assert batch.linked(HS, "contact", "h1") is None
    assert batch.counterpart(DV, "contact", "d1") is None
    assert batch_of(PAIR).counterpart(DV, "contact", "d1") == "h1"


def test_writes_are_counted_by_target_object_operation_and_outcome() -> None:
    result = BatchResult()
    ops = [
        WriteOp(ref=str(n), kind=WriteKind.UPDATE, object_type="contact", values={}, object_id=str(n))
        for n in range(3)
    ]
    outcomes = [
        WriteOutcome(ref="0", ok=True),
        WriteOutcome(ref="1", ok=False, conflict=True),
        WriteOutcome(ref="2", ok=False, error="INVALID_EMAIL"),
    ]
    result.count_writes(DV, ops, outcomes)
    assert result.writes == {
        ("dataverse", "contact", "update", "ok"): 1,
        ("dataverse", "contact", "update", "conflict"): 1,
        ("dataverse", "contact", "update", "error"): 1,
    }


def update(values: dict[str, str]) -> tuple[SideWrite, PairPlan]:
    write = SideWrite(DV, WriteKind.UPDATE, "contact", "d1", 'W/"1"', values=dict(values))
    after = {DV: {p: f.fingerprint for p, f in synced(DV, values).items()}}
    return write, PairPlan(CONTACTS, (write,), after)


def test_a_value_that_is_exactly_what_was_sent_counts_as_synced_until_a_link_covers_it() -> None:
    """A batch sent Anna to Dataverse, then failed on its next call (a 429); read again, Dataverse holds
    Anna: our write, not a user's edit. A user's Annie is not."""
    sent = SentValues()
    write, plan = update({"firstname": "Anna"})
    sent.note(PAIR.dataverse.key, write, plan)
    tracked = FIELDS.tracked(CONTACTS)
    ours = Record("contact", "d1", {"firstname": "Anna"})
    covered = sent.covering(PAIR, {HS: None, DV: ours}, tracked, AT)
    assert (
        covered.dataverse.fields["firstname"].fingerprint
        == synced(DV, {"firstname": "Anna"})["firstname"].fingerprint
    )
    assert covered.hubspot == PAIR.hubspot
    theirs = Record("contact", "d1", {"firstname": "Annie"})
    assert sent.covering(PAIR, {HS: None, DV: theirs}, tracked, AT) == PAIR
    sent.forget([PAIR])
    assert sent.covering(PAIR, {HS: None, DV: ours}, tracked, AT) == PAIR


def test_what_was_sent_is_remembered_for_a_bounded_number_of_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumers.sent, "MAX_SENT", 3)
    sent = SentValues()
    write, plan = update({"firstname": "Anna"})
    for n in range(5):
        sent.note(f"dataverse/org/contact/{n}", write, plan)
    assert len(sent) == 3
    tracked = FIELDS.tracked(CONTACTS)
    oldest = link("h0", "0").model_copy(
        update={"dataverse": PAIR.dataverse.model_copy(update={"object_id": "0"})}
    )
    assert (
        sent.covering(oldest, {HS: None, DV: Record("contact", "0", {"firstname": "Anna"})}, tracked, AT)
        == oldest
    )


def test_a_field_the_crm_names_our_write_counts_as_synced_only_while_it_holds_that_value() -> None:
    """`covered_by_own`: HubSpot's history says the daemon wrote ``city`` = e65 and ``firstname`` = Bo;
    the record still holds e65 (covered) but a user has since typed Bea (kept); an untracked property
    and a field not named are left alone."""
    record = Record("contact", "h1", {"firstname": "Bea", "city": "e65", "jobtitle": "CTO"})
    own = {"city": "e65", "firstname": "Bo", "hs_lead_status": "NEW"}
    covered = covered_by_own(PAIR, record, HS, own, FIELDS.tracked(CONTACTS)[HS], now=AT)
    assert covered.hubspot.fields == {**PAIR.hubspot.fields, **synced(HS, {"city": "e65"})}
    assert covered.dataverse == PAIR.dataverse
    assert covered_by_own(PAIR, record, HS, {}, FIELDS.tracked(CONTACTS)[HS], now=AT) is PAIR


@given(
    st.dictionaries(st.sampled_from(["firstname", "lastname", "jobtitle"]), st.text(max_size=5), max_size=3)
)
def test_covering_changes_only_the_fields_sent_and_only_to_what_was_sent(values: dict[str, str]) -> None:
    sent = SentValues()
    write, plan = update(values)
    sent.note(PAIR.dataverse.key, write, plan)
    record = Record("contact", "d1", {**values, "emailaddress1": "x@example.com"})
    covered = sent.covering(PAIR, {HS: None, DV: record}, FIELDS.tracked(CONTACTS), AT)
    assert covered.hubspot == PAIR.hubspot
    for prop, fp in covered.dataverse.fields.items():
        if prop in values:
            assert fp.fingerprint == plan.after[DV][prop]
        else:
            assert fp == PAIR.dataverse.fields[prop]
    assert set(covered.dataverse.fields) == set(PAIR.dataverse.fields) | set(values)


def test_the_fields_read_of_an_object_are_what_its_pairs_track_match_and_filter_on() -> None:
    props, assocs = FIELDS.reads(HS, "contact")
    assert {"email", "firstname", "lastname", "city", "jobtitle", COUNTERPART_ID[HS]} <= set(props)
    assert assocs == ["company:1"]
    props, assocs = FIELDS.reads(SourceSystem.DATAVERSE, "contact")
    assert COUNTERPART_ID[DV] in props
    assert assocs == ["parentcustomerid:account"]
    assert FIELDS.reads(HS, "contact") is FIELDS.reads(HS, "contact")  # worked out once
