"""`cdc push` and `cdc pull` in the planner: the pushed side wins every conflict for one pass (Accelo's rule).

What an admin checks after pushing a record: the other side now holds the pushed side's values for every
field the pushed side's steps map, even those the other side changed later or a conflict rule would give
it; the pushed record itself is not overwritten in any field mapped both ways; a field mapped only the
other way still flows as it always does; and the next, ordinary pass writes nothing (the push left the pair
in sync, not in a state that bounces back).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from consumers.config import ConflictPolicy
from streams.codec import Scalar
from streams.keys import SourceSystem
from tests.unit.pair_world import DV, HS
from tests.unit.test_planner import (
    ACCOUNT,
    ALL_POLICIES,
    COMPANY,
    DV_ONE_WAY,
    HS_ONE_WAY,
    TWO_WAY,
    apply_edits,
    assert_converged,
    contact_config,
    rounds,
    synced,
    values_written,
)

P = ConflictPolicy


def test_a_push_puts_the_pushed_values_over_a_later_edit_of_the_other_side() -> None:
    world = synced()
    world.edit(DV, {"firstname": "Dana"})  # a Dynamics user's edit: an ordinary pass takes it to HubSpot
    assert values_written(world.plan(), HS) == {"firstname": "Dana"}
    world.pushed = HS
    plan = world.plan()
    assert values_written(plan, DV) == {"firstname": "Ann"}
    assert plan.write_for(HS) is None
    [decision] = plan.write_for(DV).decisions  # type: ignore[union-attr]
    assert (decision.target, decision.old, decision.new, decision.rule) == (
        "firstname",
        "Dana",
        "Ann",
        "push",
    )


def test_a_push_repairs_a_one_way_target_edited_by_hand_which_an_ordinary_pass_leaves_alone() -> None:
    world = synced()
    world.edit(DV, {HS_ONE_WAY.dataverse: "1999-01-01T00:00:00Z"})  # HubSpot -> Dynamics only
    assert world.plan().writes == ()  # the source did not change: an ordinary pass writes nothing
    world.pushed = HS
    assert values_written(world.plan(), DV) == {HS_ONE_WAY.dataverse: "2024-01-02T03:04:05Z"}


@pytest.mark.parametrize("policy", [P.DYNAMICS, P.NEWEST, P.STEP_ORDER])
def test_a_pushed_hubspot_wins_a_conflict_its_rule_would_give_dynamics(policy: ConflictPolicy) -> None:
    world = synced(contact_config(conflict=policy, dynamics_first=True))
    early, late = world.tick(), world.tick()
    world.edit(HS, {"firstname": "Hanna"}, at=early)
    world.edit(DV, {"firstname": "Dana"}, at=late)
    assert values_written(world.plan(), HS) == {"firstname": "Dana"}  # without the push, Dynamics wins
    world.pushed = HS
    plan = world.plan()
    assert values_written(plan, DV) == {"firstname": "Hanna"}
    assert "firstname" not in values_written(plan, HS)


@pytest.mark.parametrize("policy", [P.HUBSPOT, P.STEP_ORDER])
def test_a_pull_into_hubspot_makes_dynamics_win_whatever_the_rule(policy: ConflictPolicy) -> None:
    world = synced(contact_config(conflict=policy))
    world.edit(HS, {"firstname": "Hanna", "phone": "+1 555 0100"})
    world.pushed = DV  # `cdc pull hubspot contact`: Dynamics is the side the values come from
    plan = world.plan()
    # Dynamics has no phone: an empty value never blanks one (the field does not allow empty), push or not.
    assert values_written(plan, HS) == {"firstname": "Ann"}
    assert not {"firstname", "telephone1"} & set(values_written(plan, DV))
    assert ("h2d_contacts", "empty_not_overwritten", "telephone1") not in {
        (s.step, s.reason, s.field) for s in plan.skips
    }


def test_a_field_mapped_only_the_other_way_still_flows_during_a_push() -> None:
    world = synced()
    world.edit(DV, {DV_ONE_WAY.dataverse: "2025-01-01T00:00:00Z"})
    world.pushed = HS
    assert values_written(world.plan(), HS) == {DV_ONE_WAY.hubspot: "2025-01-01T00:00:00.000Z"}


def test_a_push_puts_the_pushed_association_over_the_other_side() -> None:
    world = synced(company=True)
    world.edit(DV, associations={ACCOUNT: "a2"})  # a Dynamics user moves the contact to another account
    world.pushed = HS
    plan = world.plan()
    w = plan.write_for(DV)
    assert w is not None
    assert w.associations == {ACCOUNT: "a1"}  # back to the counterpart of HubSpot's company c1
    assert plan.write_for(HS) is None


def test_the_push_lasts_one_pass() -> None:
    world = synced()
    world.edit(DV, {"firstname": "Dana"})
    world.pushed = HS
    world.sync()
    world.pushed = None
    assert world.plan().writes == ()
    world.edit(DV, {"firstname": "Dora"})  # the next Dynamics edit flows as it always did
    assert values_written(world.plan(), HS) == {"firstname": "Dora"}


@pytest.mark.parametrize("policy", ALL_POLICIES)
@pytest.mark.parametrize("pushed", [HS, DV])
@settings(max_examples=40, deadline=None)
@given(script=rounds)
def test_after_random_edits_a_push_leaves_both_sides_holding_the_pushed_values(
    policy: ConflictPolicy,
    pushed: SourceSystem,
    script: list[tuple[dict[str, Scalar], dict[str, Scalar], bool]],
) -> None:
    config = contact_config(conflict=policy)
    world = synced(config, company=True)
    for hs_edits, dv_edits, _ in script:
        apply_edits(world, DV, dv_edits, ACCOUNT)
        apply_edits(world, HS, hs_edits, COMPANY)
    before = world.hubspot if pushed is HS else world.dataverse
    assert before is not None
    world.pushed = pushed
    plan = world.plan()
    mine = plan.write_for(pushed)
    two_way = {r.on(pushed) for r in TWO_WAY}
    assert mine is None or not two_way & set(mine.values), mine
    world.apply(plan)
    world.pushed = None
    after = world.hubspot if pushed is HS else world.dataverse
    assert after is not None
    for row in TWO_WAY:  # the pushed record's own two-way values are as the admin left them
        assert after.values.get(row.on(pushed)) == before.values.get(row.on(pushed)), row
    assert_converged(world, config)
    assert world.plan().writes == ()
