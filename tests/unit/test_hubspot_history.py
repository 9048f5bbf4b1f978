"""Who last wrote a HubSpot property (`cdc.hubspot.history`): this app's own write, or anyone else's.

History entries have the ``ValueWithTimestamp`` shape (fact sheet reference/hubspot.md §3.3: ``value``,
``timestamp``, ``sourceType``, ``sourceId``); an app's writes carry ``INTEGRATION`` and the app id (§6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cdc.hubspot.history import PropertyChange, ours, own_values, parse_history

APP = "1160452"
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def entry(
    value: str, seconds: int, source_type: str = "INTEGRATION", source_id: str | None = APP
) -> dict[str, Any]:
    stamp = (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    raw: dict[str, Any] = {"value": value, "timestamp": stamp, "sourceType": source_type}
    if source_id is not None:
        raw["sourceId"] = source_id
    return raw


def user(value: str, seconds: int) -> dict[str, Any]:
    return entry(value, seconds, "CRM_UI", "userId:7")


def test_our_apps_entry_last_is_ours_whatever_the_order_of_the_answer() -> None:
    history = parse_history([user("e12", 0), entry("e65", 5)])  # oldest first: the order is no promise
    latest = ours(history, APP)
    assert latest is not None
    assert latest.value == "e65"


def test_a_users_entry_after_ours_is_not_ours() -> None:
    assert ours(parse_history([user("e66", 9), entry("e65", 5)]), APP) is None


def test_no_history_is_not_ours() -> None:
    assert ours([], APP) is None
    assert parse_history(None) == []
    assert own_values({"id": "1", "properties": {"city": "e65"}}, ["city"], APP) == {}


def test_another_apps_write_or_a_plain_api_write_is_not_ours() -> None:
    assert ours(parse_history([entry("e65", 5, source_id="999")]), APP) is None
    assert ours(parse_history([entry("e65", 5, "API", APP)]), APP) is None
    assert ours(parse_history([entry("e65", 5, source_id=None)]), APP) is None


def test_an_unreadable_timestamp_or_a_tie_with_someone_else_is_not_ours() -> None:
    broken = {**entry("e65", 5), "timestamp": "yesterday"}
    assert ours(parse_history([broken, user("e12", 0)]), APP) is None
    assert ours(parse_history([entry("e65", 5), user("e66", 5)]), APP) is None


def test_malformed_entries_are_left_out_and_numbers_compare_as_text() -> None:
    history = parse_history(["junk", 3, {**entry("e65", 5), "sourceId": 1160452}])
    assert [c.source_id for c in history] == [APP]
    assert own_values({"propertiesWithHistory": "junk"}, ["city"], APP) == {}


def test_own_values_names_only_the_fields_we_wrote_last() -> None:
    item = {
        "id": "101",
        "propertiesWithHistory": {
            "city": [entry("e65", 5), user("e12", 0)],
            "firstname": [user("Dana", 6), entry("Anna", 5)],
            "lastname": [],
        },
    }
    assert own_values(item, ["city", "firstname", "lastname", "jobtitle"], APP) == {"city": "e65"}


sources = st.sampled_from([("INTEGRATION", APP), ("INTEGRATION", "42"), ("CRM_UI", "userId:7"), ("API", APP)])
changes = st.lists(
    st.tuples(st.text(max_size=5), st.integers(0, 20), sources).map(
        lambda t: PropertyChange(t[0], T0 + timedelta(seconds=t[1]), *t[2])
    ),
    max_size=6,
)


@given(changes)
def test_ours_exactly_when_every_latest_entry_is_this_apps_and_they_agree(
    history: list[PropertyChange],
) -> None:
    found = ours(history, APP)
    if not history:
        assert found is None
        return
    latest = max(c.at for c in history if c.at is not None)
    last = [c for c in history if c.at == latest]
    mine = all((c.source_type, c.source_id) == ("INTEGRATION", APP) for c in last)
    assert (found is not None) == (mine and len({c.value for c in last}) == 1)
    if found is not None:
        assert found in last


@given(changes, changes)
def test_a_later_edit_by_anyone_else_makes_it_not_ours(
    before: list[PropertyChange], other: list[PropertyChange]
) -> None:
    """Whatever came before, an entry by a user or another app after all of it is the last word."""
    late = T0 + timedelta(seconds=60)
    someone = [c for c in other if (c.source_type, c.source_id) != ("INTEGRATION", APP)]
    for c in someone[:1]:
        assert ours([*before, PropertyChange(c.value, late, c.source_type, c.source_id)], APP) is None
