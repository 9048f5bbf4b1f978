"""Settling a pair once its writes landed, as a user checks it: the link names both records and what both
hold, an unchanged pair writes no link, every write has its audit record and latency, and a contact whose
company is not synced yet waits for it and is planned again once it is. Plans come from the real planner
over the packaged standard-fields configuration. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from consumers.batch import BatchResult
from consumers.planner import MatchState, PairPlan, PairState, plan_pair
from consumers.ports import Record, WriteKind, WriteOutcome
from consumers.settle import planned, rechecks, refusal, settle
from consumers.units import Unit
from streams.audit import AuditAction
from streams.codec import Scalar
from streams.events import Operation, Origin
from streams.keys import SourceSystem
from streams.links import Link
from streams.work import link_route
from tests.unit.batch_world import AT, CONFIG, CONTACTS, DV, HS, TENANTS, batch_of, change, item, link

LATER = AT + timedelta(seconds=5)
ANN = {"email": "ann@example.com", "firstname": "Ann", "lastname": "Lee"}


def hubspot(values: Mapping[str, Scalar], *, company: str | None = None, version: str = "v1") -> Record:
    return Record(
        "contact", "h1", values, version=version, modified_at=AT, associations={"company:1": company}
    )


def plan_of(state: PairState, *, resolve: dict[tuple[SourceSystem, str, str], str] | None = None) -> PairPlan:
    known = resolve or {}
    return plan_pair(CONFIG, state, resolve=lambda s, o, i: known.get((s, o, i)), now=LATER)


def new_contact_unit() -> Unit:
    return Unit(
        CONTACTS, "r", [item(change(HS, "h1", Operation.CREATE, source_event_id="e1"))], {HS: "h1", DV: None}
    )


def created(unit: Unit, plan: PairPlan) -> BatchResult:
    made = WriteOutcome(ref="0", ok=True, object_id="d1", version='W/"7"', modified_at=LATER)
    return settle(
        unit,
        PairState(CONTACTS, hubspot(ANN), None, None, MatchState()),
        plan,
        {DV: made},
        batch=batch_of(),
        now=LATER,
    )


def test_a_created_counterpart_makes_a_new_link_with_what_both_sides_hold() -> None:
    unit = new_contact_unit()
    state = PairState(CONTACTS, hubspot(ANN), None, None, MatchState())
    plan = plan_of(state)
    [write] = plan.writes
    assert (write.system, write.kind) == (DV, WriteKind.CREATE)
    decided = created(unit, plan)
    [(link_id, new)] = decided.links
    assert new is not None
    assert link_id == new.link_id
    assert (new.hubspot.object_id, new.dataverse.object_id, new.revision) == ("h1", "d1", 1)
    assert (new.hubspot.tenant, new.dataverse.tenant) == (TENANTS[HS], TENANTS[DV])
    assert new.dataverse.version == 'W/"7"'  # the write's answer, for the next update's If-Match
    assert new.hubspot.version == "v1"
    assert {p: f.fingerprint for p, f in new.hubspot.fields.items()} == dict(plan.after[HS])
    assert {p: f.fingerprint for p, f in new.dataverse.fields.items()} == dict(plan.after[DV])
    [audit] = decided.audits
    assert (audit.action, audit.link_id, audit.source_event_ids) == (AuditAction.CREATE, new.link_id, ("e1",))
    assert (audit.source.object_id, audit.target and audit.target.object_id) == ("h1", "d1")
    assert {f.field for f in audit.fields} >= {"emailaddress1", "firstname", "lastname"}
    assert decided.latencies == [(step, 5.0) for step in write.steps]


def test_a_pair_that_did_not_change_writes_no_link_and_counts_as_an_echo() -> None:
    unit = new_contact_unit()
    first = created(unit, plan_of(PairState(CONTACTS, hubspot(ANN), None, None, MatchState())))
    [(_, made)] = first.links
    assert made is not None
    dataverse = Record(
        "contact", "d1", {"emailaddress1": "ann@example.com", "firstname": "Ann", "lastname": "Lee"},
        version='W/"7"', modified_at=LATER, associations={"parentcustomerid:account": None},
    )  # fmt: skip
    state = PairState(CONTACTS, hubspot(ANN), dataverse, made, MatchState())
    plan = plan_of(state)
    assert plan.writes == ()
    assert planned(state, plan).echoes == 1
    unit.relink(made)
    again = settle(unit, state, plan, {}, batch=batch_of(made), now=LATER + timedelta(seconds=1))
    assert again.links == []
    assert again.audits == []


def test_an_update_bumps_the_revision_and_keeps_the_sync_time_of_fields_that_did_not_move() -> None:
    unit = new_contact_unit()
    [(_, made)] = created(unit, plan_of(PairState(CONTACTS, hubspot(ANN), None, None, MatchState()))).links
    assert made is not None
    unit.relink(made)
    dataverse = Record(
        "contact", "d1", {"emailaddress1": "ann@example.com", "firstname": "Ann", "lastname": "Lee"},
        version='W/"7"', modified_at=LATER, associations={"parentcustomerid:account": None},
    )  # fmt: skip
    edited = hubspot({**ANN, "firstname": "Anna"}, version="v2")
    state = PairState(CONTACTS, edited, dataverse, made, MatchState())
    plan = plan_of(state)
    [write] = plan.writes
    assert (write.kind, dict(write.values)) == (WriteKind.UPDATE, {"firstname": "Anna"})
    later = LATER + timedelta(minutes=1)
    outcome = WriteOutcome(ref="0", ok=True, object_id="d1", version='W/"8"', modified_at=later)
    [(_, updated)] = settle(unit, state, plan, {DV: outcome}, batch=batch_of(made), now=later).links
    assert updated is not None
    assert updated.revision == made.revision + 1
    assert updated.created_at == made.created_at
    assert updated.dataverse.version == 'W/"8"'
    assert updated.hubspot.fields["firstname"].synced_at == later
    assert updated.hubspot.fields["email"] == made.hubspot.fields["email"]  # did not move: kept as it was


def test_a_first_sync_that_wrote_nothing_links_nothing() -> None:
    unit = new_contact_unit()
    state = PairState(CONTACTS, hubspot(ANN), None, None, MatchState(ambiguous=2))
    plan = plan_of(state)
    assert plan.writes == ()
    assert settle(unit, state, plan, {}, batch=batch_of(), now=LATER) == BatchResult()


def test_a_contact_whose_company_is_not_synced_yet_waits_for_it_and_is_planned_again_when_it_is() -> None:
    unit = new_contact_unit()
    state = PairState(CONTACTS, hubspot(ANN, company="c1"), None, None, MatchState())
    plan = plan_of(state)
    assert [p.related_id for p in plan.pending] == ["c1"]
    made = WriteOutcome(ref="0", ok=True, object_id="d1")
    batch = batch_of()
    batch.take(settle(unit, state, plan, {DV: made}, batch=batch, now=LATER))
    [(_, waiting)] = batch.result.links
    assert waiting is not None
    company_key = batch.ref(HS, "company", "c1").key
    assert waiting.waiting_for == (company_key,)
    assert rechecks(batch, LATER) == []  # the company is still unlinked

    later = batch_of(waiting)
    company = Link.model_validate(
        {
            **link("x", "y").model_dump(),
            "link_id": "company-link",
            "hubspot": {**batch.ref(HS, "company", "c1").model_dump(), "fields": {}},
            "dataverse": {**batch.ref(DV, "account", "a1").model_dump(), "fields": {}},
        }
    )
    later.take(BatchResult(links=[(company.link_id, company)]))
    [again] = rechecks(later, LATER)
    assert (again.route, again.pair) == (link_route(waiting.link_id), "contact~contact")
    assert (again.change.source, again.change.object_id, again.change.operation) == (
        HS,
        "h1",
        Operation.UPDATE,
    )
    assert (again.change.origin, again.change.source_event_type) == (Origin.RESYNC, "association_recheck")


def test_a_dry_run_settles_into_the_batch_but_publishes_no_link() -> None:
    unit = new_contact_unit()
    state = PairState(CONTACTS, hubspot(ANN), None, None, MatchState())
    batch = batch_of(dry_run=True)
    made = WriteOutcome(ref="0", ok=True, object_id="dry-run-h1")
    batch.take(settle(unit, state, plan_of(state), {DV: made}, batch=batch, now=LATER), publish=False)
    assert batch.result.links == []
    assert batch.linked(HS, "contact", "h1") is not None  # the rest of the batch sees it
    assert [a.dry_run for a in batch.result.audits] == [True]


def test_a_refused_match_is_audited_with_its_reason() -> None:
    unit = new_contact_unit()
    audit = refusal(unit, "contacts_to_contacts", "ambiguous_match: 2 candidates", LATER, dry_run=False)
    assert (audit.action, audit.step, audit.reason) == (
        AuditAction.SKIP,
        "contacts_to_contacts",
        "ambiguous_match: 2 candidates",
    )
    assert audit.source.object_id == "h1"
