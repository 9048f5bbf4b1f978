"""Which settled plans exclude a record and which clear it, as an admin reads `cdc excluded list`: the
record, the reason, the values that caused it; a record that syncs later is cleared, and only a record that
was excluded gets a tombstone. Plans come from the real planner over the packaged default configuration.
No I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from cdc.metrics import Metrics
from cdc.roles.sync import SyncStats
from consumers.applier import Applier
from consumers.config import SyncConfig
from consumers.exclusions import excluded, record_gone
from consumers.planner import MatchState, PairState, plan_pair
from consumers.ports import Record, WriteOp, WriteOutcome
from consumers.units import Unit
from streams.codec import Scalar
from streams.events import Operation
from streams.exclusions import COUNTED_ONLY, LISTED, Exclusion, ExclusionReason, Observed, fold, short
from streams.keys import RecordRef, SourceSystem
from streams.link_store import LinkIndex
from tests.sync_configs import CONTACT_STEPS, enabled_only
from tests.unit.batch_world import AT, CONFIG, CONTACTS, DV, HS, TENANTS, NoMatches, batch_of, change, item

LATER = AT + timedelta(minutes=5)
ANN = {"email": "ann@example.com", "firstname": "Ann", "lastname": "Lee", "sync_to_d365": "true"}
HS_KEY = RecordRef(system=HS, tenant=TENANTS[HS], object_type="contact", object_id="h1").key


@pytest.fixture(scope="module")
def config() -> SyncConfig:
    return enabled_only(*CONTACT_STEPS)


def hubspot(values: Mapping[str, Scalar]) -> Record:
    return Record("contact", "h1", dict(values), version="v1", modified_at=AT)


def dataverse(values: Mapping[str, Scalar], object_id: str = "d1") -> Record:
    return Record("contact", object_id, dict(values), version='W/"1"', modified_at=AT)


def unit(dv: str | None = None) -> Unit:
    event = change(HS, "h1", Operation.UPDATE, source_event_id="e1")
    return Unit(CONTACTS, "r", [item(event)], {HS: "h1", DV: dv})


def observe(config: SyncConfig, state: PairState, u: Unit | None = None) -> list[Observed]:
    plan = plan_pair(config, state, resolve=lambda *_: None, now=LATER)
    return excluded(config, u or unit(), state, plan, batch=batch_of(), now=LATER)


def test_an_ambiguous_match_excludes_the_source_record_with_its_match_value(config: SyncConfig) -> None:
    state = PairState(CONTACTS, hubspot(ANN), None, None, MatchState(ambiguous=2))
    [(key, found)] = observe(config, state)
    assert key == HS_KEY
    assert found is not None
    assert (found.step, found.reason) == ("s2_contacts_to_contacts", ExclusionReason.AMBIGUOUS_MATCH)
    assert found.values == {"email": "ann@example.com"}
    assert found.detail == "2 candidates with this match key"
    assert found.counterpart is None  # two candidates: none is the counterpart
    assert (found.event_ids, found.count, found.first_seen, found.last_seen) == (("e1",), 1, LATER, LATER)


def test_an_empty_match_key_excludes_the_record(config: SyncConfig) -> None:
    state = PairState(CONTACTS, hubspot({**ANN, "email": "  "}), None, None, MatchState())
    [(key, found)] = observe(config, state)
    assert key == HS_KEY
    assert found is not None
    assert found.reason is ExclusionReason.EMPTY_MATCH_KEY
    assert found.values == {"email": "  "}


def test_an_option_without_counterpart_names_the_field_and_its_value(config: SyncConfig) -> None:
    state = PairState(CONTACTS, hubspot({**ANN, "lifecyclestage": "stage_x"}), None, None, MatchState())
    [(_, found)] = observe(config, state)
    assert found is not None
    assert found.reason is ExclusionReason.NO_OPTION_COUNTERPART
    assert found.fields == ("cdc_lifecyclestage",)
    assert found.values == {"lifecyclestage": "stage_x"}


def test_a_refusal_leads_a_field_skip_and_both_are_kept(config: SyncConfig) -> None:
    values = {**ANN, "lifecyclestage": "stage_x"}
    state = PairState(CONTACTS, hubspot(values), None, None, MatchState(ambiguous=3))
    [(_, found)] = observe(config, state)
    assert found is not None
    # The planner refuses the whole step before it looks at fields: only the refusal is there.
    assert found.reason is ExclusionReason.AMBIGUOUS_MATCH
    assert found.matches(reason="ambiguous_match")
    assert not found.matches(reason="ambiguous_match", step="other_step")


def test_a_matched_pair_that_syncs_observes_both_records_synced(config: SyncConfig) -> None:
    dv = dataverse({"emailaddress1": "ann@example.com", "firstname": "Ann", "lastname": "Lee"})
    state = PairState(CONTACTS, hubspot(ANN), dv, None, MatchState())
    observed = observe(config, state, unit(dv="d1"))
    assert {key for key, _ in observed} == {
        HS_KEY,
        RecordRef(system=DV, tenant=TENANTS[DV], object_type="contact", object_id="d1").key,
    }
    assert all(found is None for _, found in observed)


def test_a_record_out_of_the_sync_set_is_counted_not_listed(config: SyncConfig) -> None:
    state = PairState(CONTACTS, hubspot({**ANN, "sync_to_d365": "false"}), None, None, MatchState())
    assert observe(config, state) == [(HS_KEY, None)]


def test_a_deleted_record_is_observed_cleared() -> None:
    assert record_gone(change(HS, "h1", Operation.DELETE)) == (HS_KEY, None)


def test_every_reason_is_either_listed_or_counted() -> None:
    assert set(ExclusionReason) == LISTED | COUNTED_ONLY
    assert not LISTED & COUNTED_ONLY
    assert {"ambiguous_match", "empty_match_key", "no_option_counterpart", "owner_disabled"} <= LISTED


# -- fold: what the apply loop produces ----------------------------------------------------------------


def exclusion(at: int = 0, *, count: int = 1, events: tuple[str, ...] = ("e1",)) -> Exclusion:
    when = AT + timedelta(minutes=at)
    return Exclusion(
        step="s2_contacts_to_contacts",
        reason=ExclusionReason.AMBIGUOUS_MATCH,
        record=RecordRef.from_key(HS_KEY),
        event_ids=events,
        first_seen=when,
        last_seen=when,
        count=count,
    )


def test_a_record_synced_that_no_one_excluded_writes_nothing() -> None:
    assert fold({}, [(HS_KEY, None)]) == []


def test_an_excluded_record_that_syncs_gets_a_tombstone() -> None:
    assert fold({HS_KEY: exclusion()}, [(HS_KEY, None)]) == [(HS_KEY, None)]


def test_an_exclusion_seen_again_keeps_its_first_time_and_counts() -> None:
    [(key, again)] = fold({HS_KEY: exclusion(0, count=4)}, [(HS_KEY, exclusion(5, events=("e2",)))])
    assert key == HS_KEY
    assert again is not None
    assert (again.first_seen, again.last_seen, again.count) == (AT, AT + timedelta(minutes=5), 5)
    assert again.event_ids == ("e1", "e2")


def test_excluded_then_synced_in_one_batch_writes_nothing_new() -> None:
    assert fold({}, [(HS_KEY, exclusion()), (HS_KEY, None)]) == []


def test_synced_then_excluded_in_one_batch_keeps_the_last_word() -> None:
    [(_, last)] = fold({HS_KEY: exclusion()}, [(HS_KEY, None), (HS_KEY, exclusion(3))])
    assert last is not None
    assert (last.count, last.first_seen) == (1, AT + timedelta(minutes=3))


def test_a_long_value_is_cut() -> None:
    assert short("x" * 1000) == "x" * 200 + "…"
    assert short(12) == 12


# -- the applier: what a batch hands the apply loop ------------------------------------------------------


class Crm(NoMatches):
    """An in-memory CRM that holds ``records`` and answers every match lookup with ``found``."""

    def __init__(self, system: SourceSystem, records: Sequence[Record], found: Sequence[Record] = ()) -> None:
        super().__init__(system)
        self.records = {r.object_id: r for r in records}
        self.found = list(found)

    async def read(self, object_type: str, ids: Sequence[str], **_: object) -> dict[str, Record]:
        del object_type
        return {i: self.records[i] for i in ids if i in self.records}

    async def find(
        self, object_type: str, field: str, values: Sequence[str], **_: object
    ) -> dict[str, list[Record]]:
        del object_type, field
        return {v: self.found for v in values}

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        raise AssertionError(f"nothing may be written: {ops}")


async def test_the_applier_hands_an_ambiguous_record_to_the_apply_loop_and_a_delete_clears() -> None:
    duplicates = [dataverse({"emailaddress1": "dup@x.io"}, object_id=f"d{n}") for n in (1, 2)]
    hs = Crm(HS, [hubspot({"email": "dup@x.io", "firstname": "Dana"})])
    applier = Applier(CONFIG, {HS: hs, DV: Crm(DV, [], duplicates)}, LinkIndex())
    result = await applier.apply([item(change(HS, "h1", Operation.UPDATE))])
    [(key, found)] = result.exclusions
    assert key == HS_KEY
    assert found is not None
    assert (found.reason, found.values) == (ExclusionReason.AMBIGUOUS_MATCH, {"email": "dup@x.io"})

    gone = await applier.apply([item(change(HS, "h1", Operation.DELETE))])
    assert gone.exclusions == [(HS_KEY, None)]


async def test_one_ambiguous_record_moves_the_skipped_counter_by_exactly_one() -> None:
    """`cdc_sync_skipped_total{reason="ambiguous_match"}` counts refused records: one refusal is 1 (the
    applier counted it while reading and the planner's skip counted it again: 2)."""
    duplicates = [dataverse({"emailaddress1": "dup@x.io"}, object_id=f"d{n}") for n in (1, 2)]
    hs = Crm(HS, [hubspot({"email": "dup@x.io", "firstname": "Dana"})])
    index = LinkIndex()
    applier = Applier(CONFIG, {HS: hs, DV: Crm(DV, [], duplicates)}, index)
    registry = CollectorRegistry()
    stats = SyncStats(Metrics(registry), index, CONFIG)
    stats.applied(await applier.apply([item(change(HS, "h1", Operation.UPDATE))]), dead=0, batch_s=0.1)
    skipped = {
        (sample.labels["step"], sample.labels["reason"]): sample.value
        for family in registry.collect()
        if family.name == "cdc_sync_skipped"
        for sample in family.samples
        if sample.name == "cdc_sync_skipped_total"
    }
    assert skipped == {("contacts_to_contacts", "ambiguous_match"): 1.0}
