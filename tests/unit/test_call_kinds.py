"""What the sandbox counts each call as (read, lookup, association, write, poll, other), so the bench can say
where a record's calls go; and how values are packed into as few calls as an API's limits allow."""

from __future__ import annotations

import itertools

import orjson
from hypothesis import given
from hypothesis import strategies as st

from cdc.sandbox.calls import call_kind
from cdc.wire import packed

HS_READ = "POST /crm/objects/2026-09/{objectType}/batch/read"
HS_SEARCH = "POST /crm/objects/2026-09/{objectType}/search"
DV_ROWS = "GET /api/data/v9.2/{entityset}"


def test_hubspot_calls_by_what_they_do() -> None:
    by_id = orjson.dumps({"inputs": [{"id": "1"}]})
    by_email = orjson.dumps({"idProperty": "email", "inputs": [{"id": "a@example.com"}]})
    match = orjson.dumps({"filterGroups": [{"filters": [{"propertyName": "name", "operator": "IN"}]}]})
    poll = orjson.dumps({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate"}]}]})
    assert call_kind(HS_READ, "", by_id) == "read"
    assert call_kind(HS_READ, "", by_email) == "lookup"
    assert call_kind(HS_SEARCH, "", match) == "lookup"
    assert call_kind(HS_SEARCH, "", poll) == "poll"
    assert call_kind(HS_SEARCH, "", b"not json") == "lookup"
    associations = "POST /crm/associations/2026-09/{fromObjectType}/{toObjectType}/batch"
    assert call_kind(f"{associations}/read", "") == "association"
    assert call_kind(f"{associations}/create", "") == "write"
    assert call_kind("POST /crm/objects/2026-09/{objectType}/batch/update", "") == "write"
    assert call_kind("GET /crm/owners/2026-09", "") == "other"


def test_dataverse_calls_by_what_they_do() -> None:
    guid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    assert call_kind(DV_ROWS, f"$filter=contactid eq {guid} or contactid eq {guid}") == "read"
    assert call_kind(DV_ROWS, "$filter=emailaddress1 eq 'a@example.com'") == "lookup"
    assert call_kind(DV_ROWS, "$select=fullname", prefer="odata.track-changes") == "poll"
    assert call_kind(DV_ROWS, "$deltatoken=919042") == "poll"
    assert call_kind("POST /api/data/v9.2/$batch", "") == "write"
    assert call_kind("GET /api/data/v9.2/EntityDefinitions({entity})/Attributes", "") == "other"
    assert call_kind("POST /{tenant}/oauth2/v2.0/token", "") == "other"


@given(
    items=st.lists(st.text(min_size=0, max_size=40), max_size=300),
    most=st.integers(1, 120),
    budget=st.integers(1, 3000),
)
def test_packed_keeps_order_and_fills_each_call_up_to_its_limits(
    items: list[str], most: int, budget: int
) -> None:
    calls = list(packed(items, most=most, budget=budget, size=len))
    assert [item for call in calls for item in call] == items
    for call in calls:
        assert 1 <= len(call) <= most
        assert len(call) == 1 or sum(map(len, call)) <= budget  # an oversize item goes alone
    for first, second in itertools.pairwise(calls):  # no call could have taken the next item
        assert len(first) == most or sum(map(len, first)) + len(second[0]) > budget
