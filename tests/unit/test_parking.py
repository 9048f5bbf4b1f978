"""Pausing one step, decided without Kafka: which work items park, when a pair's newer items must wait
behind its parked ones, which parked items may be replayed; and what `cdc pause` accepts.

Per-pair order (guarantee 4) is the property: whatever the pauses and their timing, the items of one
route are applied in the order they were routed, parked or not.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.config import SyncConfig
from consumers.loader import load_config
from consumers.parking import Waiting, check_target, held_pairs, replayable, sort
from streams.events import ChangeEvent, Operation, Origin
from streams.keys import SourceSystem
from streams.work import WorkItem

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CONTACTS = "contact~contact"
COMPANIES = "company~account"


@pytest.fixture(scope="module")
def config() -> SyncConfig:
    return load_config()


def item(pair: str, route: str, n: int = 0) -> WorkItem:
    hubspot_object = pair.split("~", 1)[0]
    change = ChangeEvent(
        source=SourceSystem.HUBSPOT,
        tenant="portal-1",
        object_type=hubspot_object,
        object_id=f"{route}-{n}",
        operation=Operation.UPDATE,
        origin=Origin.WEBHOOK,
        changed_properties={"n": n},
        occurred_at=AT,
        received_at=AT,
    )
    return WorkItem(pair=pair, route=route, change=change)


def test_a_paused_step_holds_its_pair_both_ways(config: SyncConfig) -> None:
    """The planner plans a pair's steps together: pausing HubSpot contacts -> D365 contacts holds the
    contact pair (so D365 contacts -> HubSpot contacts waits too), and nothing else."""
    assert held_pairs(config, ["s2_contacts_to_contacts"]) == {CONTACTS}
    assert held_pairs(config, ["s4_contacts_to_hubspot_contacts"]) == {CONTACTS}
    assert held_pairs(config, ["s1_companies_to_accounts", "s2_contacts_to_contacts"]) == {
        CONTACTS,
        COMPANIES,
    }
    assert held_pairs(config, []) == frozenset()


def test_a_disabled_step_holds_nothing(config: SyncConfig) -> None:
    assert held_pairs(config, ["l1_hubspot_contacts_to_leads"]) == frozenset()  # off by default


def test_items_of_a_held_pair_park_and_the_others_apply() -> None:
    batch = [item(CONTACTS, "r1"), item(COMPANIES, "r2"), item(CONTACTS, "r3")]
    split = sort(batch, frozenset({CONTACTS}), Waiting())
    assert split.park == [batch[0], batch[2]]
    assert split.apply == [batch[1]]


def test_a_route_with_parked_items_parks_its_newer_items_even_once_resumed() -> None:
    """The step resumed, but the pair's parked items are not replayed yet: a newer item of the same pair
    must not overtake them, so it parks behind them; another route of the same pair goes on."""
    waiting = Waiting()
    waiting.add(["r1"])
    batch = [item(CONTACTS, "r1", 2), item(CONTACTS, "r9")]
    split = sort(batch, frozenset(), waiting)
    assert split.park == [batch[0]]
    assert split.apply == [batch[1]]


def test_within_one_batch_an_item_parked_keeps_the_later_ones_of_its_route() -> None:
    """A pair whose item parks in this batch: its later items in the batch park too (the rule does not
    wait for the batch to commit), whatever their pair (a route is one pair of records)."""
    batch = [item(CONTACTS, "r1", 1), item(COMPANIES, "r1", 2)]
    split = sort(batch, frozenset({CONTACTS}), Waiting())
    assert split.park == batch
    assert split.apply == []


def test_replay_stops_at_the_first_item_of_a_pair_still_held() -> None:
    parked = [item(COMPANIES, "r2"), item(CONTACTS, "r1"), item(COMPANIES, "r3")]
    assert replayable(parked, frozenset({CONTACTS})) == 1
    assert replayable(parked, frozenset()) == 3
    assert replayable(parked, frozenset({COMPANIES})) == 0


def test_waiting_counts_a_routes_parked_items_down_to_nothing() -> None:
    waiting = Waiting()
    waiting.add(["r1", "r1", "r2"])
    assert "r1" in waiting
    waiting.remove(["r1"])
    assert "r1" in waiting
    waiting.remove(["r1", "r2"])
    assert "r1" not in waiting
    assert "r2" not in waiting
    assert len(waiting) == 0


@given(
    st.lists(
        st.tuples(st.sampled_from(["r1", "r2", "r3"]), st.sampled_from([CONTACTS, COMPANIES])),
        max_size=30,
    ),
    st.lists(st.booleans(), min_size=1, max_size=30),
    st.integers(min_value=1, max_value=6),
)
def test_every_route_is_applied_in_order_whatever_the_pauses(
    routed: list[tuple[str, str]], paused_at: list[bool], batch_size: int
) -> None:
    """A simulation of the apply loop over one partition: batches of the work topic are sorted, parked
    items are appended to the parked topic, and before each batch the parked topic is replayed as far as
    `replayable` allows; the pause of the contact step goes on and off between batches. At the end (all
    resumed, all replayed) every route's items were applied once each, in their routing order."""
    work = [item(pair, route, n) for n, (route, pair) in enumerate(routed)]
    applied: list[WorkItem] = []
    parked: list[WorkItem] = []
    waiting = Waiting()

    def replay(held: frozenset[str]) -> None:
        n = replayable(parked, held)
        applied.extend(parked[:n])
        waiting.remove(i.route for i in parked[:n])
        del parked[:n]

    for turn, start in enumerate(range(0, len(work), batch_size)):
        held = frozenset({CONTACTS}) if paused_at[turn % len(paused_at)] else frozenset()
        replay(held)
        split = sort(work[start : start + batch_size], held, waiting)
        applied.extend(split.apply)
        parked.extend(split.park)
        waiting.add(i.route for i in split.park)
    replay(frozenset())
    assert not parked
    assert sorted(str(i.change.object_id) for i in applied) == sorted(str(i.change.object_id) for i in work)
    for route in ("r1", "r2", "r3"):
        assert [i for i in applied if i.route == route] == [i for i in work if i.route == route]


def test_pause_targets_are_everything_or_a_known_step(config: SyncConfig) -> None:
    assert check_target(config, None) == "*"
    assert check_target(config, "*") == "*"
    assert check_target(config, "s2_contacts_to_contacts") == "s2_contacts_to_contacts"


def test_an_unknown_step_is_refused_naming_the_known_ones(config: SyncConfig) -> None:
    with pytest.raises(ValueError, match="unknown step 'contacts'") as refused:
        check_target(config, "contacts")
    assert "s2_contacts_to_contacts" in str(refused.value)
    assert "s1_companies_to_accounts" in str(refused.value)
