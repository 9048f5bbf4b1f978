"""HubSpot client decisions without I/O: answers sorted into errors, search bodies, where paging goes next."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdc.hubspot.errors import (
    DAILY_RECHECK_S,
    CredentialsRefusedError,
    FatalError,
    RequestError,
    RetriableError,
    classify,
)
from cdc.hubspot.paths import endpoints
from cdc.hubspot.search import (
    MAX_BODY_CHARS,
    SearchPosition,
    next_position,
    parse_ms,
    search_body,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EP = endpoints().search.label


def sort(status: int, body: object = None, headers: dict[str, str] | None = None) -> object:
    return classify(status, body, headers or {}, endpoint=EP, now=NOW)


@pytest.mark.parametrize("status", [200, 201, 204, 207])
def test_success_is_no_error(status: int) -> None:
    assert sort(status, {}) is None


def test_ten_secondly_429_waits_for_the_window_in_the_headers() -> None:
    error = sort(
        429,
        {"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING", "message": "..."},
        {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"},
    )
    assert isinstance(error, RetriableError)
    assert error.throttled
    assert error.retry_after == 10.0


def test_search_secondly_429_waits_a_second() -> None:
    error = sort(429, {"message": "You have reached your secondly limit.", "policyName": "SECONDLY"})
    assert isinstance(error, RetriableError)
    assert error.retry_after == 1.0


def test_daily_429_is_retriable_but_long() -> None:
    error = sort(429, {"policyName": "DAILY", "message": "You have reached your daily limit."})
    assert isinstance(error, RetriableError)
    assert error.retry_after == DAILY_RECHECK_S  # noon UTC: midnight is 12 h away, recheck within the hour
    late = classify(
        429, {"policyName": "DAILY"}, {}, endpoint=EP, now=datetime(2026, 11, 23, 23, 59, 30, tzinfo=UTC)
    )
    assert isinstance(late, RetriableError)
    assert late.retry_after == pytest.approx(31.0)


def test_retry_after_header_wins_for_429_and_477() -> None:
    for status in (429, 477):
        error = sort(status, {}, {"retry-after": "7"})
        assert isinstance(error, RetriableError)
        assert error.retry_after == 7.0


@pytest.mark.parametrize("status", [401, 403])
def test_auth_and_scope_answers_are_fatal(status: int) -> None:
    error = sort(status, {"message": "nope", "category": "INVALID_AUTHENTICATION", "correlationId": "c-1"})
    assert isinstance(error, FatalError)
    assert error.correlation_id == "c-1"
    assert error.status == status


def test_a_401_says_which_setting_to_fix() -> None:
    error = sort(401, {})
    assert isinstance(error, CredentialsRefusedError)  # what `cdc poll` pauses on once it ran
    assert "CDC_HUBSPOT__TOKEN" in str(error)


@pytest.mark.parametrize(
    "body",
    [
        # as integrations report live portals answering (errors[].context.requiredGranularScopes)
        {
            "status": "error",
            "message": "This app hasn't been granted all required scopes to make this call.",
            "errors": [
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": ["crm.objects.contacts.write"]},
                }
            ],
            "category": "MISSING_SCOPES",
        },
        # HubSpot/hubspot-api-nodejs issue 268: the older requiredScopes
        {
            "errors": [{"context": {"requiredScopes": ["crm.objects.contacts.write"]}}],
            "category": "MISSING_SCOPES",
        },
        # the specs' Error example: context.missingScopes
        {"context": {"missingScopes": ["crm.objects.contacts.write"]}, "category": "MISSING_SCOPES"},
    ],
)
def test_a_403_names_the_scope_the_app_lacks(body: dict[str, object]) -> None:
    error = sort(403, body)
    assert isinstance(error, FatalError)
    assert not isinstance(error, CredentialsRefusedError)
    assert "the app lacks a scope for this call (it needs one of: crm.objects.contacts.write)" in str(error)


@pytest.mark.parametrize("status", [400, 404, 409, 414, 418])
def test_refused_requests_are_request_errors(status: int) -> None:
    assert isinstance(sort(status, {"message": "Property values were not valid"}), RequestError)


@given(
    st.integers(min_value=500, max_value=599),
    st.one_of(st.none(), st.text(max_size=50), st.dictionaries(st.text(max_size=5), st.text(max_size=5))),
)
def test_every_5xx_backs_off_whatever_the_body(status: int, body: object) -> None:
    error = sort(status, body)
    assert isinstance(error, RetriableError)
    assert error.retry_after is None
    assert not error.throttled


@given(
    st.integers(min_value=100, max_value=599),
    st.one_of(
        st.none(),
        st.integers(),
        st.lists(st.integers()),
        st.dictionaries(st.text(max_size=8), st.text(max_size=8)),
    ),
    st.dictionaries(
        st.sampled_from(["Retry-After", "X-HubSpot-RateLimit-Interval-Milliseconds"]), st.text(max_size=6)
    ),
)
def test_any_answer_is_sorted_without_crashing(status: int, body: object, headers: dict[str, str]) -> None:
    error = classify(status, body, headers, endpoint=EP, now=NOW)
    assert error is None or isinstance(error, RetriableError | FatalError | RequestError)
    if isinstance(error, RetriableError) and error.retry_after is not None:
        assert error.retry_after >= 0


def test_a_5xx_message_never_carries_more_than_300_characters_of_body() -> None:
    assert len(str(sort(500, {"message": "x" * 10_000}))) < 400


def test_search_body_filters_sorts_and_asks_for_the_cursor_property() -> None:
    body = search_body("lastmodifieddate", SearchPosition(1_700_000_000_000), ["email"], 200)
    assert body == {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1700000000000"}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["email", "lastmodifieddate", "hs_object_id"],
        "limit": 200,
    }
    assert "after" not in body


def test_tie_mode_reads_one_millisecond_by_id() -> None:
    body = search_body("hs_lastmodifieddate", SearchPosition(5, tie=True, after_id=42), [], 10)
    assert body["filterGroups"][0]["filters"] == [
        {"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": "5"},
        {"propertyName": "hs_object_id", "operator": "GT", "value": "42"},
    ]
    assert body["sorts"] == [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]


@pytest.mark.parametrize("limit", [0, 201, -1])
def test_page_size_outside_1_to_200_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="page size"):
        search_body("lastmodifieddate", SearchPosition(0), [], limit)


def test_too_many_properties_are_refused_before_hubspot_does() -> None:
    with pytest.raises(ValueError, match="3000 characters"):
        search_body("lastmodifieddate", SearchPosition(0), [f"property_{i:04d}" for i in range(300)], 200)


@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20), max_size=200))
def test_bodies_that_are_built_fit_hubspots_limit(properties: list[str]) -> None:
    try:
        body = search_body("lastmodifieddate", SearchPosition(0), properties, 100)
    except ValueError:
        return
    assert len(orjson.dumps(body)) <= MAX_BODY_CHARS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-23T12:00:00.123Z", 1_795_435_200_123),
        ("1795435200123", 1_795_435_200_123),
        ("2026-11-23T12:00:00", 1_795_435_200_000),
        ("", None),
        (None, None),
        ("yesterday", None),
    ],
)
def test_parse_ms(value: str | None, expected: int | None) -> None:
    assert parse_ms(value) == expected


def _search(
    records: list[tuple[int, int]], position: SearchPosition, limit: int, rng: random.Random
) -> tuple[list[tuple[int, int]], bool]:
    """HubSpot's search as the paging relies on it: ties in any order, one page from the start."""
    if position.tie:
        hits = sorted((m, i) for m, i in records if m == position.since_ms and i > position.after_id)
        hits.sort(key=lambda hit: hit[1])
    else:
        hits = [(m, i) for m, i in records if m >= position.since_ms]
        rng.shuffle(hits)
        hits.sort(key=lambda hit: hit[0])  # stable: ties keep the shuffled order
    return hits[:limit], len(hits) > limit


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=30), min_size=0, max_size=300),
    st.integers(min_value=1, max_value=25),
    st.integers(min_value=0, max_value=2**32),
)
def test_paging_reads_every_record_whatever_the_ties(times: list[int], limit: int, seed: int) -> None:
    records = [(ms, record_id) for record_id, ms in enumerate(times, start=1)]
    rng = random.Random(seed)  # noqa: S311 -- a shuffle, not cryptography
    seen: set[tuple[int, int]] = set()
    position: SearchPosition | None = SearchPosition(0)
    queries = 0
    while position is not None:
        queries += 1
        assert queries <= 2 * len(records) + 40, "paging must terminate"
        page, more = _search(records, position, limit, rng)
        seen.update(page)
        position = next_position(position, page, more)
    assert seen == set(records)


def test_a_full_page_at_one_millisecond_switches_to_tie_mode_and_back() -> None:
    page = [(7, 3), (7, 1), (7, 2)]
    tied = next_position(SearchPosition(7), page, has_more=True)
    assert tied == SearchPosition(7, tie=True, after_id=-1)
    assert next_position(tied, [(7, 1), (7, 2)], has_more=True) == SearchPosition(7, tie=True, after_id=2)
    assert next_position(SearchPosition(7, tie=True, after_id=2), [(7, 3)], has_more=False) == SearchPosition(
        8
    )
    assert next_position(SearchPosition(0), [(1, 1), (4, 2)], has_more=False) is None
