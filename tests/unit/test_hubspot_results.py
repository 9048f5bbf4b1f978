"""Matching a HubSpot batch create's results to its inputs: by trace id, unique property, values, and the
last one left; never by position (`cdc.hubspot._results`)."""

from __future__ import annotations

from random import Random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cdc.hubspot._results import Sent, fingerprint, pair_results, same_value, told_apart


def sent(index: int, values: dict[str, str], **keys: str) -> Sent:
    return Sent(index, str(index), values, keys)


def result(record_id: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": record_id, "properties": {"hs_object_id": record_id, **properties}, **extra}


def test_results_in_any_order_pair_by_email_and_values_not_position() -> None:
    inputs = [
        sent(0, {"email": "a@example.com"}, email="a@example.com"),
        sent(1, {"email": "b@example.com"}, email="b@example.com"),
        sent(2, {"name": "Acme", "city": "Leeds"}),
        sent(3, {"name": "Acme", "city": "York"}),
    ]
    answer = [
        result("13", {"name": "acme", "city": "York"}),
        result("11", {"email": "B@example.com"}),
        result("12", {"name": "Acme", "city": "Leeds"}),
        result("10", {"email": "a@example.com"}),
    ]
    pairing = pair_results(inputs, answer)
    assert {i: r["id"] for i, r in pairing.matched.items()} == {0: "10", 1: "11", 2: "12", 3: "13"}
    assert (pairing.unmatched, pairing.stray) == ([], [])


def test_a_trace_id_on_a_result_wins() -> None:
    inputs = [sent(0, {"name": "X"}), sent(1, {"name": "X"})]
    answer = [result("2", {"name": "X"}, objectWriteTraceId="1"), result("1", {"name": "X"})]
    pairing = pair_results(inputs, answer)
    assert {i: r["id"] for i, r in pairing.matched.items()} == {1: "2", 0: "1"}  # the second by elimination


def test_inputs_alike_are_not_guessed() -> None:
    inputs = [sent(0, {"dealname": "Same"}), sent(1, {"dealname": "Same"})]
    pairing = pair_results(inputs, [result("8", {"dealname": "Same"}), result("9", {"dealname": "Same"})])
    assert pairing.matched == {}
    assert pairing.unmatched == [0, 1]
    assert [r["id"] for r in pairing.stray] == ["8", "9"]


def test_a_missing_result_leaves_its_input_for_the_read_back() -> None:
    inputs = [sent(i, {"email": f"{i}@example.com"}, email=f"{i}@example.com") for i in range(3)]
    pairing = pair_results(
        inputs, [result("7", {"email": "2@example.com"}), result("5", {"email": "0@example.com"})]
    )
    assert {i: r["id"] for i, r in pairing.matched.items()} == {0: "5", 2: "7"}
    assert pairing.unmatched == [1]


def test_the_last_input_left_takes_the_last_result_left() -> None:
    # HubSpot rewrote the instant (ms -> ISO) and the number: the values still tell them apart.
    inputs = [sent(0, {"closedate": "1700000000000", "amount": "10.50"}), sent(1, {"dealname": "Lone"})]
    answer = [
        result("4", {"dealname": "Renamed by a workflow"}),
        result("3", {"closedate": "2023-11-14T22:13:20Z", "amount": "10.5"}),
    ]
    pairing = pair_results(inputs, answer)
    assert {i: r["id"] for i, r in pairing.matched.items()} == {0: "3", 1: "4"}


def test_same_value_tolerates_what_hubspot_rewrites() -> None:
    assert same_value("Ada@Example.com", "ada@example.com")
    assert same_value("1000", "1000.0")
    assert same_value("2024-01-15", "2024-01-15T00:00:00Z")
    assert same_value("", None)
    assert not same_value("1000", "1001")
    assert not same_value("Acme", "Acme Ltd")
    assert fingerprint({"a": " X ", "b": ""}) == fingerprint({"a": "x"})


def test_creates_alike_without_a_unique_property_go_in_separate_batches() -> None:
    creates: dict[int, dict[str, Any]] = {
        0: {"properties": {"dealname": "Same"}},
        1: {"properties": {"dealname": "same "}},
        2: {"properties": {"dealname": "Other"}},
        3: {"properties": {"email": "x@example.com"}},
        4: {"properties": {"email": "y@example.com"}},
        5: {"properties": {"dealname": "Same"}, "associations": [{"to": {"id": "1"}}]},
    }
    keys = {i: ({"email": str(c["properties"]["email"])} if i in (3, 4) else {}) for i, c in creates.items()}
    assert [sorted(batch) for batch in told_apart(creates, keys)] == [[0, 2, 3, 4, 5], [1]]


@given(
    names=st.lists(st.sampled_from(["Acme", "Globex", "Initech", "Umbrella"]), min_size=1, max_size=12),
    emails=st.lists(st.booleans(), min_size=12, max_size=12),
    lost=st.sets(st.integers(0, 11), max_size=3),
    order=st.randoms(use_true_random=False),
)
def test_no_input_is_ever_paired_with_another_inputs_record(
    names: list[str], emails: list[bool], lost: set[int], order: Random
) -> None:
    """Whatever the order, the duplicates and the lost results: every pair made is the right one."""
    inputs = []
    answer = []
    for i, name in enumerate(names):
        values = {"name": name} | ({"email": f"p{i}@example.com"} if emails[i] else {})
        inputs.append(Sent(i, str(i), values, {"email": values["email"]} if emails[i] else {}))
        if i not in lost:
            answer.append(result(f"id-{i}", {k: v.upper() for k, v in values.items()}))
    order.shuffle(answer)
    pairing = pair_results(inputs, answer)
    assert all(r["id"] == f"id-{i}" for i, r in pairing.matched.items())
    assert sorted([*pairing.matched, *pairing.unmatched]) == list(range(len(names)))
    assert len(pairing.matched) + len(pairing.stray) == len(answer)
