"""Lifecycle rules: HubSpot's stage order decides what a rule writes (never backwards unless allowed, then
cleared and set in two requests), a rule fires when its field changes to its value, ``on_create`` values
ride on creates, and `cdc config check` refuses unknown stages, objects and associations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from consumers.config import SyncConfig
from consumers.lifecycle import LIFECYCLE_STAGES, rule_writes, stage_rank
from consumers.planner import PairState, RuleEffect, plan_pair, tracked_fields
from consumers.ports import Record, WriteKind
from streams.codec import Scalar
from streams.keys import SourceSystem
from tests.sync_configs import DEAL_STEP, WON_RULE
from tests.unit.pair_world import START, apply_plan, record
from tests.unit.test_config_check import check

HS, DV = SourceSystem.HUBSPOT, SourceSystem.DATAVERSE
STAGE = "lifecyclestage"
stages = st.sampled_from(LIFECYCLE_STAGES)


# -- the ordering decision


def test_hubspot_order_is_the_documented_one() -> None:
    assert [stage_rank(s) for s in ("subscriber", "lead", "customer", "evangelist", "other")] == [
        0,
        1,
        5,
        6,
        7,
    ]
    assert stage_rank("") is None
    assert stage_rank("1234567") is None  # a portal's custom stage


@given(st.one_of(st.just(""), stages), stages, st.booleans())
def test_a_stage_moves_forward_only_unless_backwards_is_allowed(have: str, want: str, allow: bool) -> None:
    writes = rule_writes(HS, {STAGE: have}, {STAGE: want}, allow_backwards=allow)
    final = [r[STAGE] for r in writes.rounds]
    if have == want:
        assert writes.rounds == ()
        assert writes.skips == ()
    elif have == "" or LIFECYCLE_STAGES.index(want) > LIFECYCLE_STAGES.index(have):
        assert final == [want]  # forward (or from no stage): one request
    elif allow:
        assert final == ["", want]  # cleared in a request of its own, then set
    else:
        assert final == []
        assert writes.skips == ((STAGE, "lifecycle_backwards"),)
    assert all(r for r in writes.rounds)  # never an empty request


@given(stages, st.booleans())
def test_writing_the_result_again_writes_nothing(want: str, allow: bool) -> None:
    assert rule_writes(HS, {STAGE: want.upper()}, {STAGE: want}, allow_backwards=allow).rounds == ()


def test_a_custom_stage_is_not_provably_earlier_so_it_stays() -> None:
    writes = rule_writes(HS, {STAGE: "1234567"}, {STAGE: "customer"}, allow_backwards=False)
    assert writes.rounds == ()
    assert writes.skips == ((STAGE, "lifecycle_unknown_stage"),)


def test_other_fields_and_dataverse_have_no_order() -> None:
    writes = rule_writes(
        HS, {STAGE: "evangelist", "hs_lead_status": "NEW"}, {"hs_lead_status": "OPEN"}, allow_backwards=False
    )
    assert writes.rounds == ({"hs_lead_status": "OPEN"},)
    dv = rule_writes(DV, {STAGE: "customer"}, {STAGE: "lead"}, allow_backwards=False)
    assert dv.rounds == ({STAGE: "lead"},)


# -- rules in the planner


def deal_config(**rule: Any) -> SyncConfig:
    """Opportunities -> deals with the two associations, and a rule: won makes customers."""
    return SyncConfig.model_validate({"steps": [DEAL_STEP], "rules": [{**WON_RULE, **rule}]})


COUNTERPARTS = {"contact": {"dv-c": "hs-c"}, "account": {"dv-a": "hs-a"}}


def resolve(system: SourceSystem, object_type: str, object_id: str) -> str | None:
    del system
    return COUNTERPARTS.get(object_type, {}).get(object_id)


def opportunity(state: int) -> Record:
    assocs: dict[str, str | None] = {"parentcontactid:contact": "dv-c", "parentaccountid:account": "dv-a"}
    values: dict[str, Scalar] = {"name": "Renewal", "statecode": state}
    return record(DV, "dv-o", values, object_type="opportunity", associations=assocs)


def test_on_create_values_ride_on_the_create_and_a_won_opportunity_fires_its_rule() -> None:
    config = deal_config()
    assert len({config.steps[0], config.steps[0]}) == 1  # a step keys lookups (consumers.units)
    pair = config.pairs()[0]
    assert tracked_fields(config, pair)[DV]["statecode"]  # the trigger is fingerprinted
    open_state = PairState(pair, None, opportunity(0), None)
    plan = plan_pair(config, open_state, resolve=resolve, now=START)
    [create] = plan.writes
    assert create.kind is WriteKind.CREATE
    assert create.values["pipeline"] == "default"
    assert create.values["dealstage"] == "appointmentscheduled"
    assert plan.effects == ()  # open: nothing fires
    applied = apply_plan(open_state, plan)
    assert applied.hubspot is not None
    assert applied.link is not None

    won = PairState(pair, applied.hubspot, opportunity(1), applied.link)
    plan = plan_pair(config, won, resolve=resolve, now=START)
    assert plan.effects == (
        RuleEffect("won_makes_customers", HS, "contact", "hs-c", {STAGE: "customer"}, allow_backwards=False),
        RuleEffect("won_makes_customers", HS, "company", "hs-a", {STAGE: "customer"}, allow_backwards=False),
    )
    settled = apply_plan(won, plan)
    again = PairState(pair, settled.hubspot, opportunity(1), settled.link)
    assert plan_pair(config, again, resolve=resolve, now=START).effects == ()  # no change, no rule


def test_a_won_opportunity_synced_for_the_first_time_fires_too() -> None:
    config = deal_config(allow_backwards=True)
    plan = plan_pair(
        config, PairState(config.pairs()[0], None, opportunity(1), None), resolve=resolve, now=START
    )
    assert {(e.object_type, e.allow_backwards) for e in plan.effects} == {
        ("contact", True),
        ("company", True),
    }


# -- validation


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"set": {STAGE: "champion"}}, "'champion' is not a HubSpot lifecycle stage"),
        (
            {"when": {"system": "dataverse", "object": "quote", "field": "statecode", "equals": 1}},
            "no enabled step syncs dataverse.quote",
        ),
        (
            {"on": {"system": "hubspot", "associations": ["ticket:16"]}},
            "carries the association(s) ticket:16",
        ),
        ({"colour": "red"}, "colour"),
    ],
)
def test_config_check_refuses_a_rule_it_cannot_carry_out(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        deal_config(**change)


def test_config_check_refuses_an_unknown_stage_on_create() -> None:
    raw = deal_config().model_dump(mode="json")
    raw["steps"][0]["on_create"] = {STAGE: "Customer"}
    with pytest.raises(ValidationError, match="on_create: lifecyclestage 'Customer' is not a HubSpot"):
        SyncConfig.model_validate(raw)


def test_cdc_config_check_lists_the_rules_and_names_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = deal_config().model_dump(mode="json")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(raw))
    code, out, _ = check(capsys, file=str(good))
    assert code == 0
    assert (
        "rule won_makes_customers: dataverse.opportunity statecode = 1 -> lifecyclestage=customer on hubspot "
        "contact:3, company:5"
    ) in out
    raw["rules"][0]["when"]["feild"] = "statecode"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    code, _, err = check(capsys, file=str(bad))
    assert code == 78
    assert "rules.0.when.feild: Extra inputs are not permitted" in err


def test_a_rule_waiting_for_an_unlinked_contact_fires_again_once_it_is_linked() -> None:
    config = deal_config()
    pair = config.pairs()[0]
    first = PairState(pair, None, opportunity(1), None)
    no_contact = {"account": COUNTERPARTS["account"]}
    plan = plan_pair(config, first, resolve=lambda _, t, i: no_contact.get(t, {}).get(i), now=START)
    assert [e.object_type for e in plan.effects] == ["company"]  # the contact has no counterpart yet
    assert "statecode" not in plan.after[DV]  # not fingerprinted: still a change next time
    applied = apply_plan(first, plan)
    again = PairState(pair, applied.hubspot, opportunity(1), applied.link)
    plan = plan_pair(config, again, resolve=resolve, now=START)  # the contact is linked now
    assert [e.object_type for e in plan.effects] == ["contact", "company"]
    settled = apply_plan(again, plan)
    done = PairState(pair, settled.hubspot, opportunity(1), settled.link)
    assert plan_pair(config, done, resolve=resolve, now=START).effects == ()
