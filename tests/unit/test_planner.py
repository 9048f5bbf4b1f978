"""The planner, as a user checks it: what gets written where, what is skipped and why, who wins a conflict.

Small configurations built in code (a two-way contact pair with fields of every type, an option set, an
association, a one-way field each way) and the packaged defaults. `tests.unit.pair_world` applies plans to
in-memory records and keeps the link, so sequences of edits can be simulated; the hypothesis properties
check that after every applied plan re-planning writes nothing (echo suppression, idempotence) and that both
sides hold the same mapped values (convergence: no ping-pong, no silent divergence).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from consumers.config import (
    COUNTERPART_ID,
    AssociationMap,
    ConflictPolicy,
    Endpoint,
    FieldMap,
    MatchRule,
    OptionSet,
    Pair,
    SourceFilter,
    Step,
    SyncConfig,
    ValueType,
)
from consumers.loader import load_config
from consumers.planner import (
    ASSOCIATION_PREFIX,
    Conflict,
    MatchState,
    PairPlan,
    PairState,
    Pending,
    Skip,
    plan_pair,
    tracked_fields,
)
from consumers.ports import Record, WriteKind
from consumers.sent import SentValues
from consumers.values import Converted, convert, is_empty, same
from streams.codec import Scalar
from streams.keys import SourceSystem
from tests.unit.pair_world import CONTACTS, DV, HS, START, World, apply_plan, record

VT = ValueType
P = ConflictPolicy
H2D, D2H = "h2d_contacts", "d2h_contacts"
HS_FLAG, DV_FLAG = "sync_to_d365", "cdc_synctohubspot"
COMPANY, ACCOUNT = "company:1", "parentcustomerid:account"


@dataclass(frozen=True)
class Row:
    """A field mapped both ways: the HubSpot property and the Dataverse column, with their types."""

    hubspot: str
    dataverse: str
    hubspot_type: VT = VT.STRING
    dataverse_type: VT = VT.STRING
    options: str | None = None

    def on(self, system: SourceSystem) -> str:
        return self.hubspot if system is HS else self.dataverse


TWO_WAY = (
    Row("email", "emailaddress1"),
    Row("firstname", "firstname"),
    Row("phone", "telephone1"),
    Row("annualrevenue", "revenue", VT.NUMBER, VT.NUMBER),
    Row("numemployees", "numberofemployees", VT.NUMBER, VT.INTEGER),
    Row("birthdate", "birthdate", VT.DATE, VT.DATE),
    Row("lifecyclestage", "cdc_lifecyclestage", VT.OPTION, VT.OPTION, "stages"),
    Row("hs_email_optout", "donotbulkemail", VT.BOOL, VT.BOOL),
)
ROWS = {r.hubspot: r for r in TWO_WAY}
HS_ONE_WAY = Row("createdate", "cdc_hubspotcreatedate", VT.DATETIME, VT.DATETIME)  # HubSpot -> Dynamics only
DV_ONE_WAY = Row("d365_created_on", "createdon", VT.DATETIME, VT.DATETIME)  # Dynamics -> HubSpot only

STAGES = OptionSet(
    hubspot={"lead": "Lead", "customer": "Customer", "evangelist": "Evangelist"},
    dataverse={"1": "lead", "2": " CUSTOMER ", "3": "Partner"},  # labels match trimmed, case-insensitively
)


def _h2d(row: Row, **extra: object) -> FieldMap:
    return FieldMap.model_validate(
        {
            "source": row.hubspot,
            "target": row.dataverse,
            "source_type": row.hubspot_type,
            "target_type": row.dataverse_type,
            "options": row.options,
            **extra,
        }
    )


def _d2h(row: Row, **extra: object) -> FieldMap:
    return FieldMap.model_validate(
        {
            "source": row.dataverse,
            "target": row.hubspot,
            "source_type": row.dataverse_type,
            "target_type": row.hubspot_type,
            "options": row.options,
            **extra,
        }
    )


def contact_config(
    *,
    conflict: ConflictPolicy = P.STEP_ORDER,
    reverse_conflict: ConflictPolicy | None = None,
    overrides: Mapping[str, ConflictPolicy] | None = None,
    reverse_overrides: Mapping[str, ConflictPolicy] | None = None,
    allow_empty: frozenset[str] = frozenset(),
    create: bool = True,
    create_when_empty: bool = False,
    dynamics_first: bool = False,
) -> SyncConfig:
    """A HubSpot contact <-> Dataverse contact pair. ``overrides`` (by HubSpot property) set a field's
    conflict policy on the HubSpot -> Dynamics row and, unless ``reverse_overrides`` is given, on the
    reverse row too; ``reverse_conflict`` gives the Dynamics -> HubSpot step a policy of its own."""
    overrides = dict(overrides or {})
    reverse = dict(overrides if reverse_overrides is None else reverse_overrides)

    def extra(row: Row, chosen: Mapping[str, ConflictPolicy]) -> dict[str, object]:
        out: dict[str, object] = {"allow_empty": row.hubspot in allow_empty}
        if row.hubspot in chosen:
            out["conflict"] = chosen[row.hubspot]
        return out

    h2d = Step(
        name=H2D,
        source=Endpoint(system=HS, object="contact"),
        target=Endpoint(system=DV, object="contact"),
        filter=SourceFilter(flag=HS_FLAG),
        match=MatchRule(
            source="email", target="emailaddress1", kind="email", create_when_empty=create_when_empty
        ),
        fields=(*(_h2d(r, **extra(r, overrides)) for r in TWO_WAY), _h2d(HS_ONE_WAY)),
        associations=(AssociationMap(hubspot=COMPANY, dataverse=ACCOUNT),),
        create=create,
        conflict=conflict,
    )
    d2h = Step(
        name=D2H,
        source=Endpoint(system=DV, object="contact"),
        target=Endpoint(system=HS, object="contact"),
        filter=SourceFilter(flag=DV_FLAG),
        match=MatchRule(
            source="emailaddress1", target="email", kind="email", create_when_empty=create_when_empty
        ),
        fields=(*(_d2h(r, **extra(r, reverse)) for r in TWO_WAY), _d2h(DV_ONE_WAY)),
        associations=(AssociationMap(hubspot=COMPANY, dataverse=ACCOUNT),),
        create=create,
        conflict=reverse_conflict or conflict,
    )
    return SyncConfig(steps=(d2h, h2d) if dynamics_first else (h2d, d2h), option_sets={"stages": STAGES})


HS_VALUES: dict[str, Scalar] = {
    HS_FLAG: "true",
    "email": "Ann@Example.com",
    "firstname": "Ann",
    "phone": "",
    "annualrevenue": "1200.50",
    "numemployees": "12",
    "birthdate": "1990-05-17",
    "lifecyclestage": "customer",
    "hs_email_optout": "true",
    "createdate": "2024-01-02T03:04:05.678Z",
    "not_mapped": "ignored",
}
DV_CREATED: dict[str, Scalar] = {  # what creating the Dataverse contact from HS_VALUES writes
    "emailaddress1": "Ann@Example.com",
    "firstname": "Ann",
    "revenue": 1200.5,
    "numberofemployees": 12,
    "birthdate": "1990-05-17",
    "cdc_lifecyclestage": 2,
    "donotbulkemail": True,
    "cdc_hubspotcreatedate": "2024-01-02T03:04:05Z",
}
DV_VALUES: dict[str, Scalar] = {**DV_CREATED, DV_FLAG: True, "createdon": "2024-02-03T04:05:06Z"}


def plan_of(config: SyncConfig, state: PairState, resolve: World | None = None) -> PairPlan:
    return plan_pair(
        config, state, resolve=resolve.resolve if resolve is not None else (lambda *_: None), now=START
    )


def only_hubspot(config: SyncConfig, values: Mapping[str, Scalar] = HS_VALUES, **kw: object) -> World:
    world = World(config)
    world.hubspot = record(HS, "hs-1", values)
    for name, value in kw.items():
        setattr(world, name, value)
    return world


def synced(config: SyncConfig | None = None, *, company: bool = False) -> World:
    """A pair already in sync: created in Dynamics from HubSpot, then linked; nothing left to write."""
    world = World(config or contact_config())
    world.relate(("company", "c1"), ("account", "a1"))
    world.relate(("company", "c2"), ("account", "a2"))
    world.hubspot = record(HS, "hs-1", HS_VALUES, associations={COMPANY: "c1"} if company else None)
    world.sync()
    world.edit(DV, {DV_FLAG: True})  # the Dynamics user opts the contact into syncing back
    world.sync()
    assert world.link is not None
    assert world.plan().writes == ()
    return world


def values_written(plan: PairPlan, system: SourceSystem) -> dict[str, Scalar]:
    w = plan.write_for(system)
    return {} if w is None else dict(w.values)


def reasons(plan: PairPlan) -> set[tuple[str, str, str | None]]:
    return {(s.step, s.reason, s.field) for s in plan.skips}


# -- first sync -----------------------------------------------------------------------------------------


def test_first_sync_creates_the_target_with_the_mapped_converted_non_empty_values() -> None:
    world = only_hubspot(contact_config())
    plan = world.plan()
    assert len(plan.writes) == 1
    w = plan.writes[0]
    assert (w.system, w.kind, w.object_type, w.object_id, w.if_match) == (
        DV,
        WriteKind.CREATE,
        "contact",
        None,
        None,
    )
    # No empty phone, no unmapped property; the reverse step's sync flag, so the new pair syncs both ways.
    assert w.values == {**DV_CREATED, DV_FLAG: True}
    assert w.steps == [H2D]
    assert {d.rule for d in w.decisions} == {"create", "join_sync_set"}
    assert {d.target: d.new for d in w.decisions} == {**DV_CREATED, DV_FLAG: True}
    assert plan.conflicts == ()
    assert plan.pending == ()


def test_first_sync_from_dynamics_creates_the_hubspot_contact_with_hubspot_wire_values() -> None:
    world = World(contact_config())
    world.dataverse = record(DV, "dv-1", DV_VALUES)
    plan = world.plan()
    w = plan.write_for(HS)
    assert w is not None
    assert plan.write_for(DV) is None
    assert (w.kind, w.object_id, w.if_match, w.steps) == (WriteKind.CREATE, None, None, [D2H])
    assert w.values == {
        "email": "Ann@Example.com",
        "firstname": "Ann",
        "annualrevenue": "1200.5",
        "numemployees": "12",
        "birthdate": "1990-05-17",
        "lifecyclestage": "customer",
        "hs_email_optout": "true",
        "d365_created_on": "2024-02-03T04:05:06.000Z",
        HS_FLAG: "true",
    }


def test_after_a_create_the_link_fingerprints_every_tracked_field_and_nothing_is_left_to_write() -> None:
    config = contact_config()
    world = only_hubspot(config)
    plan = world.sync()
    tracked = tracked_fields(config, CONTACTS)
    assert set(plan.after) == {HS, DV}
    assert set(plan.after[HS]) == set(tracked[HS])
    # Dataverse fields the reverse step has not synced yet (its flag is off on the new row) stay without
    # a fingerprint, so they count as changes once the row joins the sync set; written fields have one.
    written = plan.write_for(DV)
    assert written is not None
    assert set(written.values) <= set(plan.after[DV]) <= set(tracked[DV])
    assert world.dataverse is not None
    assert world.dataverse.object_id == "dv-new"
    assert world.plan().writes == ()  # the create coming back is an echo


@pytest.mark.parametrize("email", [None, "", "   ", "not-an-address", "two@@example.com"])
def test_an_empty_match_key_creates_nothing(email: str | None) -> None:
    world = only_hubspot(contact_config(), {**HS_VALUES, "email": email})
    plan = world.plan()
    assert plan.writes == ()
    assert reasons(plan) == {(H2D, "empty_match_key", None)}
    assert DV not in plan.after


def test_create_when_empty_creates_a_counterpart_without_a_match_key() -> None:
    world = only_hubspot(contact_config(create_when_empty=True), {**HS_VALUES, "email": None})
    plan = world.plan()
    w = plan.write_for(DV)
    assert w is not None
    assert w.kind is WriteKind.CREATE
    assert "emailaddress1" not in w.values
    assert w.values["firstname"] == "Ann"


def test_an_ambiguous_match_is_refused_and_writes_nothing() -> None:
    world = only_hubspot(contact_config(), match=MatchState(ambiguous=2))
    plan = world.plan()
    assert plan.writes == ()
    assert reasons(plan) == {(H2D, "ambiguous_match", None)}


def test_a_step_that_may_not_create_writes_nothing_for_an_unmatched_record() -> None:
    plan = only_hubspot(contact_config(create=False)).plan()
    assert plan.writes == ()
    assert reasons(plan) == {(H2D, "create_disabled", None)}


def test_a_record_outside_the_sync_set_is_not_created() -> None:
    plan = only_hubspot(contact_config(), {**HS_VALUES, HS_FLAG: "false"}).plan()
    assert plan.writes == ()
    assert reasons(plan) == {(H2D, "not_in_sync_set", None)}


def test_a_linked_record_whose_counterpart_is_gone_is_not_recreated() -> None:
    world = synced()
    world.dataverse = None  # deleted in Dynamics; deletes are not propagated, and not undone either
    world.edit(HS, {"firstname": "Anna"})
    plan = world.plan()
    assert plan.writes == ()
    assert (H2D, "counterpart_deleted", None) in reasons(plan)


def test_a_matched_pair_is_brought_in_line_on_first_sync() -> None:
    world = World(contact_config())
    world.hubspot = record(HS, "hs-1", HS_VALUES)
    world.dataverse = record(
        DV, "dv-1", {**DV_VALUES, "emailaddress1": "ann@example.com", "firstname": "Dana"}
    )
    plan = world.sync()
    # Both sides hold values nobody has synced yet: step order decides, HubSpot's values go first.
    assert values_written(plan, DV) == {"emailaddress1": "Ann@Example.com", "firstname": "Ann"}
    assert values_written(plan, HS) == {"d365_created_on": "2024-02-03T04:05:06.000Z"}
    assert world.plan().writes == ()


def test_a_value_the_target_system_sets_on_create_flows_back_once() -> None:
    world = only_hubspot(contact_config())
    world.sync()
    # Dynamics stamps createdon on the new row, and the contact is opted into syncing back.
    world.edit(DV, {"createdon": "2024-05-01T12:00:01Z", DV_FLAG: True})
    plan = world.sync()
    assert values_written(plan, HS) == {"d365_created_on": "2024-05-01T12:00:01.000Z"}
    assert plan.write_for(DV) is None
    assert world.plan().writes == ()


# -- a change on one side flows; nothing changed writes nothing -------------------------------------------

ONE_SIDED = [
    ("email", "ann@new.example", "ann@new.example"),
    ("firstname", " Anna", " Anna"),  # a whitespace edit is an edit
    ("phone", "+1 555 0100", "+1 555 0100"),
    ("annualrevenue", "99.90", 99.9),
    ("numemployees", "40", 40),
    ("birthdate", "1991-01-02", "1991-01-02"),
    ("lifecyclestage", "lead", 1),
    ("hs_email_optout", "false", False),
]


@pytest.mark.parametrize(("prop", "hubspot", "dataverse"), ONE_SIDED)
def test_a_hubspot_change_flows_to_dynamics_alone(prop: str, hubspot: Scalar, dataverse: Scalar) -> None:
    world = synced()
    world.edit(HS, {prop: hubspot})
    plan = world.sync()
    assert plan.write_for(HS) is None
    assert values_written(plan, DV) == {ROWS[prop].dataverse: dataverse}
    w = plan.write_for(DV)
    assert w is not None
    assert [d.rule for d in w.decisions] == ["changed_on_source"]
    assert plan.conflicts == ()
    assert world.plan().writes == ()


@pytest.mark.parametrize(("prop", "hubspot", "dataverse"), ONE_SIDED)
def test_a_dynamics_change_flows_to_hubspot_alone(prop: str, hubspot: Scalar, dataverse: Scalar) -> None:
    world = synced()
    world.edit(DV, {ROWS[prop].dataverse: dataverse})
    plan = world.sync()
    assert plan.write_for(DV) is None
    written = values_written(plan, HS)
    assert list(written) == [prop]
    assert same(written[prop], hubspot, ROWS[prop].hubspot_type, HS)
    assert plan.conflicts == ()
    assert world.plan().writes == ()


def test_one_way_fields_flow_their_way_only() -> None:
    world = synced()
    world.edit(HS, {"createdate": "2024-03-03T00:00:00Z"})
    world.edit(DV, {"createdon": "2024-04-04T00:00:00Z"})
    plan = world.sync()
    assert values_written(plan, DV) == {"cdc_hubspotcreatedate": "2024-03-03T00:00:00Z"}
    assert values_written(plan, HS) == {"d365_created_on": "2024-04-04T00:00:00.000Z"}
    assert plan.conflicts == ()


def test_an_edit_of_a_one_way_target_is_not_overwritten_until_its_source_changes() -> None:
    world = synced()
    world.edit(DV, {"cdc_hubspotcreatedate": "2000-01-01T00:00:00Z"})
    assert world.plan().writes == ()
    world.edit(HS, {"createdate": "2024-03-03T00:00:00Z"})
    assert values_written(world.plan(), DV) == {"cdc_hubspotcreatedate": "2024-03-03T00:00:00Z"}


def test_nothing_changed_writes_nothing_however_often_it_is_planned() -> None:
    world = synced(company=True)
    for _ in range(3):
        plan = world.sync()
        assert plan.writes == ()
        assert plan.conflicts == ()
        assert plan.pending == ()


def test_the_echo_of_our_own_write_writes_nothing() -> None:
    world = synced()
    world.edit(HS, {"firstname": "Anna", "numemployees": "13"})
    world.sync()  # writes Dynamics, which answers with a new version and modification time
    assert world.dataverse is not None
    assert world.dataverse.version == 'W/"3"'
    echo = world.plan()
    assert echo.writes == ()
    assert echo.conflicts == ()


@pytest.mark.parametrize(
    ("prop", "spelling"),
    [
        ("annualrevenue", "1200.5000"),
        ("annualrevenue", "1.2005e3"),
        ("numemployees", "12.0"),
        ("birthdate", "642902400000"),  # HubSpot's epoch milliseconds for 1990-05-17
        ("hs_email_optout", "TRUE"),
    ],
)
def test_another_spelling_of_the_same_value_is_no_change(prop: str, spelling: str) -> None:
    world = synced()
    world.edit(HS, {prop: spelling})
    assert world.plan().writes == ()


# -- conflicts --------------------------------------------------------------------------------------------


def both_changed(config: SyncConfig, *, hubspot_later: bool = False) -> tuple[World, PairPlan]:
    world = synced(config)
    early, late = world.tick(), world.tick()
    world.edit(HS, {"firstname": "Hanna"}, at=late if hubspot_later else early)
    world.edit(DV, {"firstname": "Dana"}, at=early if hubspot_later else late)
    return world, world.plan()


def assert_winner(world: World, plan: PairPlan, winner: SourceSystem, rule: ConflictPolicy) -> None:
    loser = winner.other
    expected = {HS: "Hanna", DV: "Dana"}[winner]
    assert values_written(plan, loser) == {"firstname": expected}
    assert plan.write_for(winner) is None
    assert len(plan.conflicts) == 1
    conflict = plan.conflicts[0]
    assert (conflict.field, conflict.winner, conflict.rule) == ("firstname", winner, rule)
    w = plan.write_for(loser)
    assert w is not None
    assert [d.rule for d in w.decisions] == [f"conflict:{rule}"]
    world.apply(plan)
    assert world.plan().writes == ()


def test_step_order_lets_the_earlier_steps_source_win_hubspot_by_default() -> None:
    world, plan = both_changed(contact_config(), hubspot_later=False)
    assert_winner(world, plan, HS, P.STEP_ORDER)


def test_step_order_lets_dynamics_win_when_its_step_runs_first() -> None:
    world, plan = both_changed(contact_config(dynamics_first=True), hubspot_later=True)
    assert_winner(world, plan, DV, P.STEP_ORDER)


@pytest.mark.parametrize(("policy", "winner"), [(P.HUBSPOT, HS), (P.DYNAMICS, DV)])
@pytest.mark.parametrize("hubspot_later", [False, True])
def test_source_of_truth_wins_whoever_changed_last(
    policy: ConflictPolicy, winner: SourceSystem, hubspot_later: bool
) -> None:
    world, plan = both_changed(contact_config(conflict=policy), hubspot_later=hubspot_later)
    assert_winner(world, plan, winner, policy)


@pytest.mark.parametrize(("hubspot_later", "winner"), [(True, HS), (False, DV)])
@pytest.mark.parametrize("dynamics_first", [False, True])
def test_newest_lets_the_latest_modification_win(
    hubspot_later: bool, winner: SourceSystem, dynamics_first: bool
) -> None:
    config = contact_config(conflict=P.NEWEST, dynamics_first=dynamics_first)
    world, plan = both_changed(config, hubspot_later=hubspot_later)
    assert_winner(world, plan, winner, P.NEWEST)


def test_newest_falls_back_to_step_order_on_a_tie() -> None:
    world = synced(contact_config(conflict=P.NEWEST))
    moment = world.tick()
    world.edit(HS, {"firstname": "Hanna"}, at=moment)
    world.edit(DV, {"firstname": "Dana"}, at=moment)
    assert_winner(world, world.plan(), HS, P.NEWEST)


def test_newest_falls_back_to_step_order_without_modification_times() -> None:
    config = contact_config(conflict=P.NEWEST, dynamics_first=True)
    world = synced(config)
    world.edit(HS, {"firstname": "Hanna"})
    world.edit(DV, {"firstname": "Dana"})
    assert world.hubspot is not None
    world.hubspot = Record(
        world.hubspot.object_type, world.hubspot.object_id, world.hubspot.values, world.hubspot.version, None
    )
    assert_winner(world, world.plan(), DV, P.NEWEST)


@pytest.mark.parametrize(("override", "winner"), [(P.DYNAMICS, DV), (P.HUBSPOT, HS)])
def test_a_per_field_override_beats_the_step_policy(override: ConflictPolicy, winner: SourceSystem) -> None:
    step_policy = P.HUBSPOT if override is P.DYNAMICS else P.DYNAMICS
    config = contact_config(conflict=step_policy, overrides={"firstname": override})
    world = synced(config)
    world.edit(HS, {"firstname": "Hanna", "phone": "+1 111"})
    world.edit(DV, {"firstname": "Dana", "telephone1": "+1 222"})
    plan = world.plan()
    written = {HS: values_written(plan, HS), DV: values_written(plan, DV)}
    assert written[winner.other]["firstname"] == {HS: "Hanna", DV: "Dana"}[winner]
    phone_winner = HS if step_policy is P.HUBSPOT else DV
    assert (
        written[phone_winner.other][ROWS["phone"].on(phone_winner.other)]
        == {HS: "+1 111", DV: "+1 222"}[phone_winner]
    )
    # A conflict is named by the field the first step that meets it writes (the Dataverse column here).
    assert {(c.field, c.winner, c.rule) for c in plan.conflicts} == {
        ("firstname", winner, override),
        ("telephone1", phone_winner, step_policy),
    }


def test_a_conflict_is_reported_once_per_field() -> None:
    world = synced()
    world.edit(HS, {"firstname": "Hanna", "numemployees": "7", "lifecyclestage": "lead", "email": "h@x.org"})
    world.edit(
        DV, {"firstname": "Dana", "numberofemployees": 9, "cdc_lifecyclestage": 3, "emailaddress1": "d@x.org"}
    )
    plan = world.plan()
    fields = sorted(c.field for c in plan.conflicts)
    assert fields == ["cdc_lifecyclestage", "emailaddress1", "firstname", "numberofemployees"]
    assert all(c.winner is HS and c.step == H2D for c in plan.conflicts)


def test_both_sides_changed_to_the_same_value_is_no_conflict() -> None:
    world = synced()
    world.edit(HS, {"firstname": "Same", "annualrevenue": "5.50"})
    world.edit(DV, {"firstname": "Same", "revenue": 5.5})
    plan = world.plan()
    assert plan.writes == ()
    assert plan.conflicts == ()


def test_both_sides_changed_different_fields_is_no_conflict() -> None:
    world = synced()
    world.edit(HS, {"firstname": "Hanna"})
    world.edit(DV, {"telephone1": "+1 222"})
    plan = world.plan()
    assert values_written(plan, DV) == {"firstname": "Hanna"}
    assert values_written(plan, HS) == {"phone": "+1 222"}
    assert plan.conflicts == ()


def test_a_per_field_override_on_one_direction_still_resolves_the_conflict() -> None:
    # The override sits on the HubSpot -> Dynamics row only (FieldMap.conflict is per row).
    config = contact_config(overrides={"firstname": P.DYNAMICS}, reverse_overrides={})
    world = synced(config)
    world.edit(HS, {"firstname": "Hanna"})
    world.edit(DV, {"firstname": "Dana"})
    plan = world.sync()
    assert plan.writes != ()  # today: no write at all; HubSpot keeps Hanna, Dynamics keeps Dana
    assert world.hubspot is not None
    assert world.dataverse is not None
    assert world.hubspot.values["firstname"] == world.dataverse.values["firstname"]


def test_steps_with_different_policies_still_converge() -> None:
    config = contact_config(conflict=P.NEWEST, reverse_conflict=P.STEP_ORDER)
    world, plan = both_changed(config, hubspot_later=False)  # Dynamics is newer: NEWEST says Dynamics wins
    world.apply(plan)
    assert world.hubspot is not None
    assert world.dataverse is not None
    assert world.hubspot.values["firstname"] == world.dataverse.values["firstname"]


# -- empty values -----------------------------------------------------------------------------------------


def test_an_empty_value_never_overwrites_a_non_empty_one() -> None:
    world = synced()
    world.edit(HS, {"firstname": "  ", "annualrevenue": None})
    plan = world.sync()
    assert plan.writes == ()
    assert reasons(plan) == {
        (H2D, "empty_not_overwritten", "firstname"),
        (H2D, "empty_not_overwritten", "revenue"),
    }
    assert world.dataverse is not None
    assert world.dataverse.values["firstname"] == "Ann"
    again = world.plan()
    assert again.writes == ()
    assert again.skips == ()


def test_an_empty_value_overwrites_when_the_field_allows_it() -> None:
    world = synced(contact_config(allow_empty=frozenset({"firstname"})))
    world.edit(HS, {"firstname": ""})
    plan = world.sync()
    assert values_written(plan, DV) == {"firstname": None}
    assert world.plan().writes == ()


def test_a_value_that_reappears_after_being_emptied_flows_again() -> None:
    world = synced()
    world.edit(HS, {"firstname": None})
    world.sync()
    world.edit(HS, {"firstname": "Ann-Marie"})
    assert values_written(world.plan(), DV) == {"firstname": "Ann-Marie"}


def test_an_empty_source_fills_from_the_other_side_when_only_that_side_changed() -> None:
    world = synced()
    world.edit(HS, {"phone": None})  # already empty on both sides
    world.edit(DV, {"telephone1": "+1 333"})
    assert values_written(world.plan(), HS) == {"phone": "+1 333"}


def test_a_matched_pair_fills_the_empty_side_on_first_sync() -> None:
    world = World(contact_config())
    world.hubspot = record(HS, "hs-1", {**HS_VALUES, "phone": None})
    world.dataverse = record(DV, "dv-1", {**DV_VALUES, "telephone1": "+1 444"})
    plan = world.sync()
    assert values_written(plan, HS).get("phone") == "+1 444"
    assert "telephone1" not in values_written(plan, DV)
    assert world.plan().writes == ()


def test_an_emptied_winner_lets_the_other_sides_new_value_through() -> None:
    world = synced()
    world.edit(HS, {"firstname": None})
    world.edit(DV, {"firstname": "Dana"})
    plan = world.sync()  # step order says HubSpot, but HubSpot holds nothing and empty never overwrites
    assert values_written(plan, HS) == {"firstname": "Dana"}
    assert plan.write_for(DV) is None
    assert world.plan().writes == ()


# -- the sync set, option sets, lookups ---------------------------------------------------------------------


def test_a_flag_off_skips_that_direction_and_the_other_still_flows() -> None:
    world = synced()
    world.edit(HS, {HS_FLAG: "false", "firstname": "Hanna"})
    world.edit(DV, {"telephone1": "+1 555"})
    plan = world.sync()
    assert (H2D, "not_in_sync_set", None) in reasons(plan)
    assert plan.write_for(DV) is None
    assert values_written(plan, HS) == {"phone": "+1 555"}


def test_edits_made_outside_the_sync_set_flow_once_the_record_is_back_in() -> None:
    world = synced()
    world.edit(HS, {HS_FLAG: "false", "firstname": "Hanna"})
    world.sync()
    world.edit(HS, {HS_FLAG: "true"})
    assert values_written(world.plan(), DV) == {"firstname": "Hanna"}


def test_criteria_filter_the_sync_set() -> None:
    config = contact_config()
    step = config.steps[0].model_copy(
        update={
            "filter": SourceFilter.model_validate(
                {"criteria": [{"field": "lifecyclestage", "op": "in", "value": ["Customer"]}]}
            )
        }
    )
    config = config.model_copy(update={"steps": (step, config.steps[1])})
    assert only_hubspot(config).plan().write_for(DV) is not None
    lead = only_hubspot(config, {**HS_VALUES, "lifecyclestage": "lead"}).plan()
    assert lead.writes == ()
    assert (H2D, "not_in_sync_set", None) in reasons(lead)


def test_an_option_without_counterpart_skips_that_field_and_syncs_the_rest() -> None:
    world = synced()
    world.edit(HS, {"lifecyclestage": "evangelist", "firstname": "Hanna"})
    plan = world.sync()
    assert values_written(plan, DV) == {"firstname": "Hanna"}
    assert (H2D, "no_option_counterpart", "cdc_lifecyclestage") in reasons(plan)
    assert world.plan().writes == ()


def test_a_dynamics_option_without_counterpart_skips_that_field_and_syncs_the_rest() -> None:
    world = synced()
    world.edit(DV, {"cdc_lifecyclestage": 3, "firstname": "Dana"})
    plan = world.sync()
    assert values_written(plan, HS) == {"firstname": "Dana"}
    assert (D2H, "no_option_counterpart", "lifecyclestage") in reasons(plan)


def test_an_unmatched_option_on_create_still_creates_the_record() -> None:
    plan = only_hubspot(contact_config(), {**HS_VALUES, "lifecyclestage": "evangelist"}).plan()
    w = plan.write_for(DV)
    assert w is not None
    assert w.kind is WriteKind.CREATE
    assert "cdc_lifecyclestage" not in w.values
    assert w.values["firstname"] == "Ann"
    assert (H2D, "no_option_counterpart", "cdc_lifecyclestage") in reasons(plan)


@pytest.mark.parametrize(
    ("prop", "bad"), [("numemployees", "3.5"), ("annualrevenue", "lots"), ("birthdate", "soon")]
)
def test_a_value_that_does_not_convert_skips_that_field(prop: str, bad: str) -> None:
    world = synced()
    world.edit(HS, {prop: bad, "firstname": "Hanna"})
    plan = world.sync()
    assert values_written(plan, DV) == {"firstname": "Hanna"}
    assert {s.field for s in plan.skips} == {ROWS[prop].dataverse}
    assert world.plan().writes == ()


# -- associations -----------------------------------------------------------------------------------------


def test_a_linked_related_record_is_written_under_the_targets_association_key() -> None:
    world = World(contact_config())
    world.hubspot = record(HS, "hs-1", HS_VALUES, associations={COMPANY: "c1"})
    world.relate(("company", "c1"), ("account", "a1"))
    plan = world.plan()
    w = plan.write_for(DV)
    assert w is not None
    assert w.kind is WriteKind.CREATE
    assert w.associations == {ACCOUNT: "a1"}
    assert plan.pending == ()
    world.apply(plan)
    assert world.dataverse is not None
    assert world.dataverse.associations == {ACCOUNT: "a1"}
    assert world.plan().writes == ()


def test_an_unlinked_related_record_waits_and_is_written_once_linked() -> None:
    world = World(contact_config())
    world.hubspot = record(HS, "hs-1", HS_VALUES, associations={COMPANY: "c9"})
    plan = world.sync()
    assert plan.pending == (Pending(H2D, ACCOUNT, HS, "company", "c9"),)
    assert (H2D, "association_not_linked", ACCOUNT) in reasons(plan)
    w = plan.write_for(DV)
    assert w is not None
    assert w.associations == {}
    assert w.values == {**DV_CREATED, DV_FLAG: True}
    assert ASSOCIATION_PREFIX + COMPANY not in plan.after[HS]
    still = world.plan()
    assert still.writes == ()
    assert len(still.pending) == 1
    world.relate(("company", "c9"), ("account", "a9"))  # the company syncs and is linked
    later = world.sync()
    assert later.pending == ()
    w = later.write_for(DV)
    assert w is not None
    assert (w.kind, w.associations, w.values) == (WriteKind.UPDATE, {ACCOUNT: "a9"}, {})
    assert world.plan().writes == ()


def test_a_dynamics_association_flows_to_hubspot() -> None:
    world = synced(company=True)
    world.edit(DV, associations={ACCOUNT: "a2"})
    plan = world.sync()
    w = plan.write_for(HS)
    assert w is not None
    assert w.associations == {COMPANY: "c2"}
    assert w.values == {}
    assert plan.write_for(DV) is None
    assert world.plan().writes == ()


def test_a_hubspot_association_change_flows_to_dynamics() -> None:
    world = synced(company=True)
    world.edit(HS, associations={COMPANY: "c2"})
    plan = world.sync()
    w = plan.write_for(DV)
    assert w is not None
    assert w.associations == {ACCOUNT: "a2"}
    assert world.plan().writes == ()


def test_clearing_an_association_at_the_source_is_not_propagated() -> None:
    world = synced(company=True)
    world.edit(HS, associations={COMPANY: None})
    plan = world.sync()
    assert plan.write_for(DV) is None
    assert world.dataverse is not None
    assert world.dataverse.associations == {ACCOUNT: "a1"}


def test_clearing_an_association_is_not_undone_by_the_reverse_step() -> None:
    world = synced(company=True)
    world.edit(HS, associations={COMPANY: None})
    plan = world.sync()
    assert plan.writes == ()  # today: HubSpot gets company:1 = c1 back from Dynamics' unchanged a1


# -- concurrency tokens -----------------------------------------------------------------------------------


def test_updates_carry_the_version_they_were_planned_from() -> None:
    """Dataverse: the ETag for If-Match; HubSpot (no ETag): the updatedAt the gateway compares first."""
    world = synced()
    world.edit(HS, {"firstname": "Hanna"})
    world.edit(DV, {"telephone1": "+1 222"})
    assert world.dataverse is not None
    assert world.hubspot is not None
    plan = world.plan()
    dv, hs = plan.write_for(DV), plan.write_for(HS)
    assert dv is not None
    assert hs is not None
    assert (dv.kind, dv.object_id, dv.if_match) == (
        WriteKind.UPDATE,
        world.dataverse.object_id,
        world.dataverse.version,
    )
    assert dv.if_match is not None
    assert dv.if_match.startswith('W/"')
    assert (hs.kind, hs.object_id, hs.if_match) == (WriteKind.UPDATE, "hs-1", world.hubspot.version)


def test_creates_carry_no_version() -> None:
    world = World(contact_config())
    world.dataverse = record(DV, "dv-1", DV_VALUES)
    w = world.plan().write_for(HS)
    assert w is not None
    assert (w.kind, w.if_match, w.object_id) == (WriteKind.CREATE, None, None)


# -- the counterpart's id ---------------------------------------------------------------------------------

HS_ID, DV_ID = COUNTERPART_ID[HS], COUNTERPART_ID[DV]  # cdc_d365id on HubSpot, cdc_hubspotid on Dataverse


def matched(hs_extra: Mapping[str, Scalar], dv_extra: Mapping[str, Scalar]) -> World:
    """A first sync that matched an existing record by email: both records, no link yet."""
    world = World(contact_config())
    world.hubspot = record(HS, "hs-1", {**HS_VALUES, **hs_extra})
    world.dataverse = record(DV, "dv-1", {**DV_VALUES, "createdon": None, **dv_extra})
    return world


def test_a_matched_pair_gets_each_others_id_on_both_sides_in_its_first_sync_once() -> None:
    world = matched({HS_ID: None}, {DV_ID: None})  # the values agree: only the ids are missing
    plan = world.sync()
    assert values_written(plan, HS) == {HS_ID: "dv-1"}
    assert values_written(plan, DV) == {DV_ID: "hs-1"}
    for w in plan.writes:
        assert w.kind is WriteKind.UPDATE
        assert [(d.rule, d.old) for d in w.decisions] == [("counterpart_id", None)]
        assert w.steps == ([H2D] if w.system is DV else [D2H])
    assert HS_ID not in plan.after[HS]  # not tracked: the stamp's echo is no change
    assert DV_ID not in plan.after[DV]
    assert world.plan().writes == ()
    world.edit(HS, {"firstname": "Anna"})
    assert values_written(world.sync(), DV) == {"firstname": "Anna"}  # the id is not sent again


def test_a_matched_pairs_id_rides_on_the_first_syncs_other_writes() -> None:
    world = matched({HS_ID: ""}, {DV_ID: None, "firstname": "Dana"})
    plan = world.plan()
    assert values_written(plan, DV) == {"firstname": "Ann", DV_ID: "hs-1"}
    assert values_written(plan, HS) == {HS_ID: "dv-1"}


def test_an_id_held_already_is_not_written_and_a_wrong_one_is_corrected_on_first_sync() -> None:
    plan = matched({HS_ID: "DV-1"}, {DV_ID: "hs-999"}).plan()  # GUIDs compare case-insensitively
    assert values_written(plan, HS) == {}
    assert values_written(plan, DV) == {DV_ID: "hs-1"}


def test_a_record_whose_read_shows_no_id_property_is_not_given_one() -> None:
    # The target lacks the property (not provisioned): a read leaves it out, and writing it would fail.
    assert matched({}, {}).plan().writes == ()


def test_no_id_is_stamped_on_a_pair_no_step_syncs() -> None:
    world = matched({HS_ID: None, HS_FLAG: "false"}, {DV_ID: None, DV_FLAG: False})
    assert world.plan().writes == ()


def test_a_linked_records_missing_id_is_set_only_inside_a_write_the_sync_makes_anyway() -> None:
    world = only_hubspot(contact_config(), {**HS_VALUES, HS_ID: None})
    plan = world.sync()  # a create: the new row holds its origin's id; the HubSpot one cannot know it yet
    assert plan.write_for(HS) is None
    assert world.dataverse is not None
    assert world.dataverse.values[DV_ID] == "hs-1"
    assert world.plan().writes == ()  # never a write of its own once the pair is linked
    world.edit(DV, {DV_FLAG: True, "telephone1": "+1 555"})
    assert values_written(world.sync(), HS) == {"phone": "+1 555", HS_ID: "dv-new"}
    assert world.plan().writes == ()


# -- properties: random edits on both sides ---------------------------------------------------------------

HS_POOL: dict[str, list[Scalar]] = {
    "email": ["ann@example.com", "ANN@example.com ", "bob@example.com", None],
    "firstname": ["Ann", "Bob", " Ann", "", None],
    "phone": ["+1 555", "+1 666", None],
    "annualrevenue": ["12.50", "12.5", "1e3", "0", "-3.25", "nope", None],
    "numemployees": ["12", "12.0", "40", "3.5", None],
    "birthdate": ["1990-05-17", "642902400000", "2001-01-01", None],
    "lifecyclestage": ["lead", "customer", "evangelist", None],
    "hs_email_optout": ["true", "false", "TRUE", None],
    "createdate": ["2024-01-02T03:04:05.678Z", "1704164645000", None],
}
DV_POOL: dict[str, list[Scalar]] = {
    "emailaddress1": ["ann@example.com", "bob@example.com", "carol@example.com", None],
    "firstname": ["Ann", "Dana", "", None],
    "telephone1": ["+1 555", "+1 777", None],
    "revenue": [12.5, 1000, 1000.0, 0, 7.25, None],
    "numberofemployees": [12, 40, 7, None],
    "birthdate": ["1990-05-17", "2001-01-01", "2010-10-10", None],
    "cdc_lifecyclestage": [1, 2, 3, None],
    "donotbulkemail": [True, False, None],
    "createdon": ["2024-02-03T04:05:06Z", "2024-02-03T04:05:06.900Z", None],
}
HS_RELATED = ["c1", "c2", "c9", None]
DV_RELATED = ["a1", "a2", "a9", None]
ALL_POLICIES = [P.STEP_ORDER, P.HUBSPOT, P.DYNAMICS, P.NEWEST]


@st.composite
def side_edits(
    draw: st.DrawFn, pool: Mapping[str, list[Scalar]], related: list[str | None]
) -> dict[str, Scalar]:
    chosen = draw(st.lists(st.sampled_from(sorted(pool)), max_size=3, unique=True))
    edits: dict[str, Scalar] = {name: draw(st.sampled_from(pool[name])) for name in chosen}
    if draw(st.booleans()):
        edits[ASSOCIATION_PREFIX] = draw(st.sampled_from(related))
    return edits


rounds = st.lists(
    st.tuples(side_edits(HS_POOL, HS_RELATED), side_edits(DV_POOL, DV_RELATED), st.booleans()),
    min_size=1,
    max_size=6,
)


def apply_edits(world: World, system: SourceSystem, edits: Mapping[str, Scalar], key: str) -> None:
    if not edits:
        return
    values = {k: v for k, v in edits.items() if k != ASSOCIATION_PREFIX}
    associations: dict[str, str | None] | None = None
    if ASSOCIATION_PREFIX in edits:
        related = edits[ASSOCIATION_PREFIX]
        assert related is None or isinstance(related, str)
        associations = {key: related}
    world.edit(system, values, associations=associations)


def assert_converged(world: World, config: SyncConfig) -> None:
    """Where both sides hold a non-empty value that converts, the values are equal across the mapping; a
    one-way target holds its (convertible, non-empty) source; a linked association points at its counterpart.
    """
    hs, dv = world.hubspot, world.dataverse
    assert hs is not None
    assert dv is not None
    h2d, d2h = (s for s in config.steps if s.name == H2D), (s for s in config.steps if s.name == D2H)
    forward = {f.source: f for f in next(h2d).fields}
    backward = {f.source: f for f in next(d2h).fields}
    sets = config.option_sets
    for row in TWO_WAY:
        a, b = hs.values.get(row.hubspot), dv.values.get(row.dataverse)
        if is_empty(a) or is_empty(b):
            continue
        there = convert(a, forward[row.hubspot], source_system=HS, option_sets=sets)
        back = convert(b, backward[row.dataverse], source_system=DV, option_sets=sets)
        if isinstance(there, Converted) and isinstance(back, Converted):
            assert same(there.value, b, row.dataverse_type, DV), (row, a, b)
    for row, (src, dst) in ((HS_ONE_WAY, (hs, dv)), (DV_ONE_WAY, (dv, hs))):
        system = HS if src is hs else DV
        name, target = (row.hubspot, row.dataverse) if system is HS else (row.dataverse, row.hubspot)
        fmap = (forward if system is HS else backward)[name]
        value = src.values.get(name)
        moved = convert(value, fmap, source_system=system, option_sets=sets)
        if not is_empty(value) and isinstance(moved, Converted):
            target_type = row.dataverse_type if system is HS else row.hubspot_type
            assert same(moved.value, dst.values.get(target), target_type, system.other), (row, value)
    company, account = hs.associations.get(COMPANY), dv.associations.get(ACCOUNT)
    if company is not None and account is not None:
        counterpart = world.resolve(HS, "company", company)
        if counterpart is not None and world.resolve(DV, "account", account) is not None:
            assert counterpart == account, (company, account)


def run_rounds(config: SyncConfig, script: list[tuple[dict[str, Scalar], dict[str, Scalar], bool]]) -> World:
    world = synced(config, company=True)
    for hs_edits, dv_edits, dynamics_first in script:
        order = [(DV, dv_edits, ACCOUNT), (HS, hs_edits, COMPANY)]
        for system, edits, key in order if dynamics_first else reversed(order):
            apply_edits(world, system, edits, key)
        plan = world.sync()
        if plan.conflicts:
            assert len({c.field for c in plan.conflicts}) == len(plan.conflicts)  # once per field
        echo = world.plan()
        assert echo.writes == (), echo.writes  # idempotence: our writes coming back write nothing
        assert echo.conflicts == ()
        assert_converged(world, config)
    return world


@pytest.mark.parametrize("policy", ALL_POLICIES)
@settings(max_examples=60, deadline=None)
@given(script=rounds)
def test_random_two_sided_edits_converge_and_replanning_writes_nothing(
    policy: ConflictPolicy, script: list[tuple[dict[str, Scalar], dict[str, Scalar], bool]]
) -> None:
    run_rounds(contact_config(conflict=policy), script)


@settings(max_examples=40, deadline=None)
@given(script=rounds)
def test_random_edits_converge_when_dynamics_steps_run_first(
    script: list[tuple[dict[str, Scalar], dict[str, Scalar], bool]],
) -> None:
    run_rounds(contact_config(dynamics_first=True), script)


@settings(max_examples=60, deadline=None)
@given(
    script=rounds,
    prop=st.sampled_from([r.hubspot for r in TWO_WAY]),
    side=st.sampled_from([HS, DV]),
    data=st.data(),
)
def test_a_change_on_one_side_only_always_flows(
    script: list[tuple[dict[str, Scalar], dict[str, Scalar], bool]],
    prop: str,
    side: SourceSystem,
    data: st.DataObject,
) -> None:
    config = contact_config()
    world = run_rounds(config, script)
    row = ROWS[prop]
    name = row.on(side)
    pool = HS_POOL[prop] if side is HS else DV_POOL[row.dataverse]
    before = world.hubspot if side is HS else world.dataverse
    assert before is not None
    value_type = row.hubspot_type if side is HS else row.dataverse_type
    fresh = [v for v in pool if not is_empty(v) and not same(v, before.values.get(name), value_type, side)]
    assume(fresh)
    value = data.draw(st.sampled_from(fresh))  # a real change: not another spelling of the value it holds
    world.edit(side, {name: value})
    world.sync()
    src = world.hubspot if side is HS else world.dataverse
    dst = world.dataverse if side is HS else world.hubspot
    assert src is not None
    assert dst is not None
    step = next(s for s in config.steps if s.source.system is side)
    fmap = next(f for f in step.fields if f.source == name)
    moved = convert(value, fmap, source_system=side, option_sets=config.option_sets)
    if isinstance(moved, Converted):
        assert same(moved.value, dst.values.get(row.on(side.other)), fmap.target_type, side.other)
    assert world.plan().writes == ()


@settings(max_examples=40, deadline=None)
@given(
    script=rounds, hs_id=st.sampled_from([None, "", "dv-1", "dv-9"]), dv_id=st.sampled_from([None, "hs-1"])
)
def test_random_edits_after_a_match_send_each_missing_id_once_and_never_again(
    script: list[tuple[dict[str, Scalar], dict[str, Scalar], bool]], hs_id: str | None, dv_id: str | None
) -> None:
    world = matched({HS_ID: hs_id}, {DV_ID: dv_id})
    world.relate(("company", "c1"), ("account", "a1"))
    world.relate(("company", "c2"), ("account", "a2"))
    sent = {HS: 0, DV: 0}

    def sync() -> None:
        for w in world.sync().writes:
            sent[w.system] += COUNTERPART_ID[w.system] in w.values

    sync()
    for hs_edits, dv_edits, dynamics_first in script:
        order = [(DV, dv_edits, ACCOUNT), (HS, hs_edits, COMPANY)]
        for system, edits, key in order if dynamics_first else reversed(order):
            apply_edits(world, system, edits, key)
        sync()
        assert world.plan().writes == ()
    assert sent == {HS: hs_id != "dv-1", DV: dv_id != "hs-1"}
    assert world.hubspot is not None
    assert world.dataverse is not None
    assert (world.hubspot.values[HS_ID], world.dataverse.values[DV_ID]) == ("dv-1", "hs-1")


# -- the packaged defaults --------------------------------------------------------------------------------

S2, S4 = "s2_contacts_to_contacts", "s4_contacts_to_hubspot_contacts"
S1, S3, S5 = "s1_companies_to_accounts", "s3_accounts_to_companies", "s5_opportunities_to_deals"
ACCOUNTS = Pair(hubspot="company", dataverse="account")
DEALS = Pair(hubspot="deal", dataverse="opportunity")


@pytest.fixture(scope="module")
def defaults() -> SyncConfig:
    return load_config()


def default_contacts(defaults: SyncConfig) -> World:
    world = World(defaults)
    world.relate(("company", "c1"), ("account", "a1"))
    world.hubspot = record(
        HS,
        "hs-1",
        {
            "sync_to_d365": "true",
            "email": " Ann@Example.com",
            "firstname": "Ann",
            "lastname": "Lee",
            "jobtitle": "CTO",
            "hs_lead_status": "",
            "lifecyclestage": "customer",
            "hubspotscore": "42",
            "hs_email_optout": "true",
            "hubspot_owner_id": "123",
        },
        associations={"company:1": "c1"},
    )
    return world


def test_defaults_write_the_hubspot_owner_as_the_owners_email_and_follow_a_new_owner(
    defaults: SyncConfig,
) -> None:
    world = default_contacts(defaults)
    world.lookups = {"owner_email": {"123": "avery@example.com", "456": "jordan@example.com"}}
    plan = world.plan()
    w = plan.write_for(DV)
    assert w is not None
    assert w.values["cdc_hubspotowner"] == "avery@example.com"
    world.apply(plan)
    assert world.plan().writes == ()  # the raw owner id is what the HubSpot side fingerprints
    world.edit(HS, {"hubspot_owner_id": "456"})
    plan = world.plan()
    w = plan.write_for(DV)
    assert w is not None
    assert w.values == {"cdc_hubspotowner": "jordan@example.com"}
    world.apply(plan)
    world.edit(HS, {"hubspot_owner_id": ""})
    assert world.plan().write_for(DV) is None  # an empty value never overwrites a non-empty one


def test_defaults_first_sync_creates_the_dynamics_contact(defaults: SyncConfig) -> None:
    world = default_contacts(defaults)
    plan = world.plan()
    w = plan.write_for(DV)
    assert w is not None
    assert w.kind is WriteKind.CREATE
    assert w.steps == [S2]
    assert w.values["emailaddress1"] == " Ann@Example.com"
    assert w.values["firstname"] == "Ann"
    assert w.values["lastname"] == "Lee"
    assert w.values["jobtitle"] == "CTO"
    assert w.values["cdc_lifecyclestage"] == 100000005
    assert w.values["cdc_hubspotscore"] == 42
    assert w.values["donotbulkemail"] is True
    assert "cdc_hubspotleadstatus" not in w.values
    assert "cdc_hubspotowner" not in w.values  # the owner id was not found among the portal's owners
    assert (S2, "lookup_not_found", "cdc_hubspotowner") in reasons(plan)
    assert w.associations == {"parentcustomerid:account": "a1"}
    world.apply(plan)
    assert world.plan().writes == ()


def test_defaults_both_sides_changed_lets_hubspot_win(defaults: SyncConfig) -> None:
    world = default_contacts(defaults)
    world.sync()
    world.edit(DV, {"cdc_synctohubspot": True})
    world.sync()
    world.edit(DV, {"firstname": "Dana"}, at=world.clock + timedelta(hours=1))  # newer, yet loses
    world.edit(HS, {"firstname": "Hanna"})
    plan = world.plan()
    assert values_written(plan, DV) == {"firstname": "Hanna"}
    assert plan.write_for(HS) is None
    assert plan.conflicts == (Conflict(S2, "firstname", HS, P.STEP_ORDER, "firstname"),)
    world.apply(plan)
    assert world.plan().writes == ()


def test_defaults_a_dynamics_contact_creates_a_hubspot_contact(defaults: SyncConfig) -> None:
    world = World(defaults)
    world.dataverse = record(
        DV,
        "dv-1",
        {"cdc_synctohubspot": True, "emailaddress1": "dana@example.com", "lastname": "Doe", "statecode": 0},
    )
    w = world.plan().write_for(HS)
    assert w is not None
    assert w.kind is WriteKind.CREATE
    assert w.steps == [S4]
    assert w.values == {
        "email": "dana@example.com",
        "lastname": "Doe",
        "d365_contact_record_status": "0",
        "sync_to_d365": "true",
    }


def test_defaults_a_dynamics_contact_without_the_flag_is_not_synced(defaults: SyncConfig) -> None:
    world = World(defaults)
    world.dataverse = record(DV, "dv-1", {"emailaddress1": "dana@example.com"})
    plan = world.plan()
    assert plan.writes == ()
    assert reasons(plan) == {(S4, "not_in_sync_set", None)}


def test_defaults_companies_match_by_name_and_an_empty_name_creates_nothing(defaults: SyncConfig) -> None:
    world = World(defaults, pair=ACCOUNTS)
    world.hubspot = record(
        HS, "c1", {"sync_to_d365": "true", "name": "  ", "city": "Oslo"}, object_type="company"
    )
    plan = world.plan()
    assert plan.writes == ()
    assert reasons(plan) == {(S1, "empty_match_key", None)}
    world.hubspot = record(
        HS, "c1", {"sync_to_d365": "true", "name": "Acme", "city": "Oslo"}, object_type="company"
    )
    w = world.plan().write_for(DV)
    assert w is not None
    assert w.object_type == "account"
    assert w.values == {"name": "Acme", "address1_city": "Oslo", "cdc_synctohubspot": True}


def test_defaults_opportunities_sync_one_way_to_deals(defaults: SyncConfig) -> None:
    world = World(defaults, pair=DEALS)
    world.relate(("company", "c1"), ("account", "a1"))
    world.dataverse = record(
        DV,
        "o1",
        {
            "cdc_synctohubspot": True,
            "name": "Big deal",
            "statuscode": 3,
            "statecode": 1,
            "actualvalue": 1000.5,
        },
        object_type="opportunity",
        associations={"parentaccountid:account": "a1", "parentcontactid:contact": "x"},
    )
    plan = world.sync()
    w = plan.write_for(HS)
    assert w is not None
    assert w.kind is WriteKind.CREATE
    assert w.object_type == "deal"
    assert w.values["dealname"] == "Big deal"
    assert w.values["dealstage"] == "closedwon"
    assert w.values["amount"] == "1000.5"
    assert w.values["d365_opportunity_record_status"] == "1"
    assert w.associations == {"company:5": "c1"}
    assert plan.pending == (Pending(S5, "contact:3", DV, "contact", "x"),)
    world.edit(HS, {"dealname": "Renamed in HubSpot"})
    assert world.plan().write_for(DV) is None  # no deals -> opportunities step


def test_defaults_an_open_opportunity_creates_its_deal_in_the_first_stage(defaults: SyncConfig) -> None:
    world = World(defaults, pair=DEALS)
    world.dataverse = record(
        DV, "o1", {"cdc_synctohubspot": True, "name": "Open deal", "statuscode": 1}, object_type="opportunity"
    )
    w = world.plan().write_for(HS)
    assert w is not None
    assert w.values.get("dealstage") == "appointmentscheduled"


def test_defaults_an_open_opportunity_keeps_the_deals_stage_on_update(defaults: SyncConfig) -> None:
    world = World(defaults, pair=DEALS)
    world.dataverse = record(
        DV, "o1", {"cdc_synctohubspot": True, "name": "Deal", "statuscode": 3}, object_type="opportunity"
    )
    world.sync()
    world.edit(DV, {"statuscode": 1})
    plan = world.plan()
    assert "dealstage" not in values_written(plan, HS)
    assert (S5, "no_option_counterpart", "dealstage") in reasons(plan)


def test_defaults_tracked_fields_cover_both_directions_and_the_association(defaults: SyncConfig) -> None:
    tracked = tracked_fields(defaults, CONTACTS)
    assert {"email", "firstname", "d365_created_on", "@company:1"} <= set(tracked[HS])
    assert {"emailaddress1", "firstname", "createdon", "@parentcustomerid:account"} <= set(tracked[DV])
    assert tracked[HS]["lifecyclestage"] is VT.OPTION
    assert tracked_fields(defaults, Pair(hubspot="contact", dataverse="lead")) == {HS: {}, DV: {}}


DEFAULT_HS_POOL: dict[str, list[Scalar]] = {
    "firstname": ["Ann", "Bob", None],
    "lastname": ["Lee", "Kim"],
    "phone": ["+1 1", "+1 2", None],
    "d365_street_address_2": ["Suite 1", None],
    "lifecyclestage": ["lead", "customer", "nonsense"],
    "hubspotscore": ["1", "2.5", None],
}
DEFAULT_DV_POOL: dict[str, list[Scalar]] = {
    "firstname": ["Ann", "Dana", None],
    "lastname": ["Lee", "Park"],
    "telephone1": ["+1 1", "+1 3", None],
    "address1_line2": ["Suite 1", "Floor 2", None],
    "statecode": [0, 1],
    "parentcustomerid:account": ["a1", None],
}


@settings(max_examples=30, deadline=None)
@given(
    script=st.lists(
        st.tuples(
            st.lists(st.sampled_from(sorted(DEFAULT_HS_POOL)), max_size=3, unique=True),
            st.lists(st.sampled_from(sorted(DEFAULT_DV_POOL)), max_size=3, unique=True),
        ),
        min_size=1,
        max_size=5,
    ),
    data=st.data(),
)
def test_defaults_random_edits_never_ping_pong(
    defaults: SyncConfig,
    script: list[tuple[list[str], list[str]]],
    data: st.DataObject,
) -> None:
    world = default_contacts(defaults)
    world.sync()
    world.edit(DV, {"cdc_synctohubspot": True})
    world.sync()
    for hs_names, dv_names in script:
        hs_edits = {k: data.draw(st.sampled_from(DEFAULT_HS_POOL[k])) for k in hs_names}
        dv_edits = {k: data.draw(st.sampled_from(DEFAULT_DV_POOL[k])) for k in dv_names}
        dv_assoc = {k: v for k, v in dv_edits.items() if ":" in k and (v is None or isinstance(v, str))}
        world.edit(HS, hs_edits)
        world.edit(DV, {k: v for k, v in dv_edits.items() if ":" not in k}, associations=dv_assoc)
        world.sync()
        assert world.plan().writes == ()
        hs, dv = world.hubspot, world.dataverse
        assert hs is not None
        assert dv is not None
        for a, b in (("firstname", "firstname"), ("lastname", "lastname"), ("phone", "telephone1")):
            if not is_empty(hs.values.get(a)) and not is_empty(dv.values.get(b)):
                assert hs.values.get(a) == dv.values.get(b)


def test_apply_plan_leaves_nothing_to_link_when_the_create_was_skipped() -> None:
    world = only_hubspot(contact_config(), {**HS_VALUES, "email": None})
    state = world.state()
    plan = plan_of(world.config, state)
    assert Skip(H2D, "empty_match_key") in plan.skips
    applied = apply_plan(state, plan)
    assert applied.link is None
    assert applied.dataverse is None
    assert applied.hubspot == state.hubspot


# -- the packaged defaults in lead mode: "Last CRM Sync Date" ----------------------------------------------

L1, L2 = "l1_hubspot_contacts_to_leads", "l2_leads_to_hubspot_contacts"
LEADS = Pair(hubspot="contact", dataverse="lead")
LAST_SYNC = "d365_last_crm_sync_date"


@pytest.fixture(scope="module")
def lead_mode(defaults: SyncConfig) -> SyncConfig:
    """The seeds' "Leads Exclusive" set-up: L1, L2, 1, 3, 5."""
    steps = tuple(
        s.model_copy(update={"enabled": s.is_lead_step or s.pair.hubspot != "contact"})
        for s in defaults.steps
    )
    return SyncConfig.model_validate(defaults.model_copy(update={"steps": steps}).model_dump())


def linked_lead(config: SyncConfig) -> World:
    """A HubSpot contact matched to an existing lead, both in their sync sets, their first sync done."""
    world = World(config, pair=LEADS)
    world.hubspot = record(
        HS,
        "hs-1",
        {"sync_to_d365_lead": "true", "email": "lena@example.com", "lastname": "Lead", HS_ID: None},
    )
    world.dataverse = record(
        DV,
        "dv-1",
        {"cdc_synctohubspot": True, "emailaddress1": "lena@example.com", "lastname": "Lead", DV_ID: None},
        object_type="lead",
    )
    return world


def wire_time(moment: datetime) -> str:
    """A datetime as HubSpot writes it (whole seconds: Dataverse stores no fractions)."""
    return moment.replace(microsecond=0, tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def test_defaults_lead_mode_stamps_the_hubspot_contacts_last_crm_sync_date_inside_its_writes(
    lead_mode: SyncConfig,
) -> None:
    world = linked_lead(lead_mode)
    first = world.plan()  # the match: both ids, and the HubSpot write carries the time of the sync
    assert values_written(first, HS) == {HS_ID: "dv-1", LAST_SYNC: wire_time(world.clock)}
    assert values_written(first, DV) == {DV_ID: "hs-1"}
    stamped = first.write_for(HS)
    assert stamped is not None
    assert [(d.step, d.source, d.rule) for d in stamped.decisions] == [
        (L2, "", "counterpart_id"),
        (L2, "sync_time", "sync_time"),
    ]
    world.apply(first)
    world.edit(DV, {"jobtitle": "Buyer"})
    world.clock += timedelta(minutes=5, microseconds=250_000)
    plan = world.plan()
    assert values_written(plan, HS) == {"jobtitle": "Buyer", LAST_SYNC: wire_time(world.clock)}
    later = plan_pair(lead_mode, world.state(), resolve=world.resolve, now=world.clock + timedelta(hours=1))
    assert values_written(later, HS)[LAST_SYNC] == wire_time(world.clock + timedelta(hours=1))  # it is `now`


def test_defaults_lead_mode_never_writes_the_last_crm_sync_date_on_its_own(lead_mode: SyncConfig) -> None:
    world = linked_lead(lead_mode)
    world.sync()
    world.clock += timedelta(days=1)
    assert world.plan().writes == ()  # time passing is no reason to write
    world.edit(HS, {"firstname": "Lena"})  # L1 writes the lead; the HubSpot contact is not written
    plan = world.plan()
    assert values_written(plan, DV) == {"firstname": "Lena"}
    assert plan.write_for(HS) is None
    world.apply(plan)
    world.edit(DV, {"address1_line2": "Suite 1"}, associations={})  # a change L2 maps: a real write
    assert LAST_SYNC in values_written(world.plan(), HS)


def test_defaults_lead_mode_the_last_crm_sync_date_coming_back_is_no_change(lead_mode: SyncConfig) -> None:
    world = linked_lead(lead_mode)
    world.sync()
    world.edit(DV, {"jobtitle": "Buyer"})
    world.sync()
    assert world.hubspot is not None
    assert LAST_SYNC in world.hubspot.values
    assert world.plan().writes == ()  # the echo of the write
    world.edit(HS, {LAST_SYNC: "1714564801000"})  # read back as HubSpot spells it, or edited by a user
    assert world.plan().writes == ()
    tracked = tracked_fields(lead_mode, LEADS)
    assert LAST_SYNC not in tracked[HS]
    assert "sync_time" not in tracked[DV]
    assert "cdc_lastcrmsyncdate" not in tracked[DV]  # no Dataverse column is read for it


LEAD_HS_POOL: dict[str, list[Scalar]] = {
    "firstname": ["Lena", "Lee", None],
    "jobtitle": ["CTO", "Buyer"],
    "city": ["Leeds", "York", None],
    LAST_SYNC: ["2024-01-01T00:00:00.000Z", None],
}
LEAD_DV_POOL: dict[str, list[Scalar]] = {
    "firstname": ["Lena", "Dana", None],
    "jobtitle": ["CTO", "Owner"],
    "address1_city": ["Leeds", "Bath", None],
    "leadqualitycode": [1, 2, 3],
    "cdc_synctohubspot": [True, False],
}


@settings(max_examples=40, deadline=None)
@given(
    script=st.lists(
        st.tuples(
            st.lists(st.sampled_from(sorted(LEAD_HS_POOL)), max_size=3, unique=True),
            st.lists(st.sampled_from(sorted(LEAD_DV_POOL)), max_size=3, unique=True),
            st.integers(min_value=1, max_value=10**6),
        ),
        min_size=1,
        max_size=6,
    ),
    data=st.data(),
)
def test_defaults_lead_mode_random_edits_stamp_the_time_only_with_other_values_and_never_echo(
    lead_mode: SyncConfig, script: list[tuple[list[str], list[str], int]], data: st.DataObject
) -> None:
    world = linked_lead(lead_mode)
    world.sync()
    for hs_names, dv_names, seconds in script:
        world.edit(HS, {k: data.draw(st.sampled_from(LEAD_HS_POOL[k])) for k in hs_names})
        world.edit(DV, {k: data.draw(st.sampled_from(LEAD_DV_POOL[k])) for k in dv_names})
        world.clock += timedelta(seconds=seconds)
        plan = world.plan()
        w = plan.write_for(HS)
        if w is not None and set(w.values) - {LAST_SYNC}:
            assert w.values[LAST_SYNC] == wire_time(world.clock)
        else:
            assert w is None or LAST_SYNC not in w.values  # never a write of its own
        world.apply(plan)
        assert world.plan().writes == ()


# -- retries after a half-failed batch --------------------------------------------------------------------


def _attempt(world: World, sent: SentValues) -> PairPlan:
    """One attempt of a batch whose writes land and whose commit then fails (a 5xx on its next call): the
    CRMs hold what it wrote, the link does not move, and `SentValues` remembers what was sent."""
    link = world.link
    assert link is not None
    records = {HS: world.hubspot, DV: world.dataverse}
    covered = sent.covering(link, records, tracked_fields(world.config, world.pair), world.clock)
    plan = plan_pair(
        world.config,
        PairState(world.pair, world.hubspot, world.dataverse, covered),
        resolve=world.resolve,
        now=world.clock,
    )
    applied = apply_plan(
        PairState(world.pair, world.hubspot, world.dataverse, covered), plan, now=world.tick()
    )
    world.hubspot, world.dataverse = applied.hubspot, applied.dataverse
    for w in plan.writes:
        sent.note(link.side(w.system).key, w, plan)
    return plan


def test_two_failed_attempts_whose_sent_values_both_sides_then_hold_still_converge() -> None:
    """The chaos run's company race: Dynamics moves the contact to a2 and an attempt writes c2 to HubSpot;
    HubSpot moves it to c3 and the next attempt writes a3 to Dynamics; both attempts fail after their
    writes landed. Then the HubSpot user picks c2 and the Dynamics user a3: each side holds exactly what was
    sent to it, yet they disagree. Taking both for our own writes left the pair apart for good (no change
    seen on either side); the pair is settled by its conflict rule instead."""
    world = synced(company=True)
    world.relate(("company", "c3"), ("account", "a3"))
    sent = SentValues()
    world.edit(DV, associations={ACCOUNT: "a2"})
    first = _attempt(world, sent)
    assert (w := first.write_for(HS)) is not None
    assert w.associations == {COMPANY: "c2"}
    world.edit(HS, associations={COMPANY: "c3"})
    second = _attempt(world, sent)
    assert (w := second.write_for(DV)) is not None
    assert w.associations == {ACCOUNT: "a3"}
    world.edit(HS, associations={COMPANY: "c2"})
    world.edit(DV, associations={ACCOUNT: "a3"})
    _attempt(world, sent)
    assert world.hubspot is not None
    assert world.dataverse is not None
    assert (
        world.resolve(HS, "company", str(world.hubspot.associations[COMPANY]))
        == (world.dataverse.associations[ACCOUNT])
    )
