"""Search: filters, sorts, paging, the documented limits (fact sheet §3.5), and the evaluator's logic."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.sandbox.hubspot import HubSpotSandbox, search

URL = "/crm/objects/2026-09/contacts/search"


async def find(client: httpx.AsyncClient, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = await client.post(URL, json=body)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def eq(name: str, operator: str, value: str | None = None, **extra: Any) -> dict[str, Any]:
    flt: dict[str, Any] = {"propertyName": name, "operator": operator, **extra}
    if value is not None:
        flt["value"] = value
    return flt


@pytest.fixture
async def people(client: httpx.AsyncClient, sandbox: HubSpotSandbox) -> list[str]:
    sandbox.limiter.update({"search_per_second": None})
    ids = []
    for n in range(12):
        props = {"email": f"u{n}@example.com", "firstname": f"User{n % 3}"}
        if n % 2 == 0:
            props["phone"] = f"555-{n:04d}"
        ids.append(
            (await client.post("/crm/objects/2026-09/contacts", json={"properties": props})).json()["id"]
        )
        sandbox.clock.advance(1)
    return ids


async def test_filters_and_groups(client: httpx.AsyncClient, people: list[str]) -> None:
    one = await find(client, {"filterGroups": [{"filters": [eq("email", "EQ", "U3@EXAMPLE.COM")]}]})
    assert one["total"] == 1
    assert [r["id"] for r in one["results"]] == [people[3]]
    assert set(one["results"][0]["properties"]) == {
        "firstname",
        "lastname",
        "email",
        "createdate",
        "hs_object_id",
        "lastmodifieddate",
    }
    has = await find(client, {"filterGroups": [{"filters": [eq("phone", "HAS_PROPERTY")]}], "limit": 100})
    assert has["total"] == 6
    either = await find(
        client,
        {
            "filterGroups": [
                {"filters": [eq("email", "EQ", "u1@example.com")]},
                {"filters": [eq("email", "EQ", "u2@example.com")]},
            ]
        },
    )
    assert either["total"] == 2
    both = await find(
        client, {"filterGroups": [{"filters": [eq("firstname", "EQ", "User0"), eq("phone", "HAS_PROPERTY")]}]}
    )
    assert both["total"] == 2  # n = 0, 6
    listed = await find(
        client, {"filterGroups": [{"filters": [eq("firstname", "IN", values=["user1", "user2"])]}]}
    )
    assert listed["total"] == 8


async def test_in_on_a_string_property_takes_lowercase_values_only(
    client: httpx.AsyncClient, people: list[str]
) -> None:
    """D-SRCH: IN/NOT_IN values must be lowercase; a value as written ("User2") finds nothing, while EQ
    stays case-insensitive."""

    async def total(*filters: dict[str, Any]) -> int:
        found = await find(client, {"filterGroups": [{"filters": list(filters)}], "limit": 100})
        return int(found["total"])

    assert await total(eq("firstname", "IN", values=["user1", "User2"])) == 4
    assert await total(eq("firstname", "IN", values=["User1", "User2"])) == 0
    assert await total(eq("firstname", "NOT_IN", values=["User0"])) == 12
    assert await total(eq("firstname", "NOT_IN", values=["user0"])) == 8
    assert await total(eq("firstname", "EQ", "USER2")) == 4
    assert await total(eq("hs_object_id", "IN", values=[people[0], people[1]])) == 2


async def test_last_modified_cursor_with_sort_and_paging(
    client: httpx.AsyncClient, people: list[str]
) -> None:
    pivot = (await client.get(f"/crm/objects/2026-09/contacts/{people[4]}")).json()["properties"][
        "lastmodifieddate"
    ]
    from datetime import datetime  # noqa: PLC0415 -- only this test turns ISO into ms

    pivot_ms = str(int(datetime.fromisoformat(pivot.replace("Z", "+00:00")).timestamp() * 1000))
    body: dict[str, Any] = {
        "filterGroups": [{"filters": [eq("lastmodifieddate", "GTE", pivot_ms)]}],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["email"],
        "limit": 3,
    }
    seen: list[str] = []
    while True:
        page = await find(client, body)
        assert page["total"] == 8
        seen += [r["id"] for r in page["results"]]
        if "paging" not in page:
            break
        body["after"] = page["paging"]["next"]["after"]
    assert seen == people[4:]
    gt = await find(client, {"filterGroups": [{"filters": [eq("lastmodifieddate", "GT", pivot)]}]})
    assert gt["total"] == 7  # ISO values work too
    desc = await find(
        client, {"sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}], "limit": 1}
    )
    assert desc["results"][0]["id"] == people[-1]


@pytest.mark.usefixtures("people")
async def test_documented_limits_are_400(client: httpx.AsyncClient) -> None:
    flt = eq("email", "HAS_PROPERTY")
    cases: list[dict[str, Any]] = [
        {"limit": 201},
        {"after": "10000"},
        {"filterGroups": [{"filters": [flt]}] * 6},
        {"filterGroups": [{"filters": [flt] * 7}]},
        {"filterGroups": [{"filters": [flt] * 6}] * 3 + [{"filters": [flt]}]},
        {"sorts": [{"propertyName": "email"}, {"propertyName": "firstname"}]},
        {"filterGroups": [{"filters": [eq("email", "LIKE", "x")]}]},
        {"query": "x" * 3001},
    ]
    for body in cases:
        result = await find(client, body, status=400)
        assert result["category"] == "VALIDATION_ERROR"


def test_search_window_stops_at_10000() -> None:
    request = search.parse_request({"limit": 200, "after": "9800"})
    rows = [(str(n), {"email": f"{n}@x"}) for n in range(1, 10_301)]
    page = search.run(rows, request, {"email": "string"})
    assert page.total == 10_300
    assert len(page.ids) == 200
    assert page.next_after is None


async def test_archived_records_never_appear(client: httpx.AsyncClient, people: list[str]) -> None:
    await client.delete(f"/crm/objects/2026-09/contacts/{people[0]}")
    everyone = await find(client, {"limit": 100})
    assert people[0] not in [r["id"] for r in everyone["results"]]
    assert everyone["total"] == 11


def _naive(values: dict[str, float], operator: str, pivot: float) -> set[str]:
    ops = {
        "GT": pivot.__lt__,
        "GTE": pivot.__le__,
        "LT": pivot.__gt__,
        "LTE": pivot.__ge__,
        "EQ": pivot.__eq__,
    }
    return {k for k, v in values.items() if ops[operator](v)}


@given(
    values=st.dictionaries(st.integers(1, 10**6).map(str), st.integers(-1000, 1000).map(float), max_size=40),
    operator=st.sampled_from(["GT", "GTE", "LT", "LTE", "EQ"]),
    pivot=st.integers(-1000, 1000),
    limit=st.integers(1, 200),
)
def test_numeric_filters_match_a_naive_oracle_and_pages_cover_all(
    values: dict[str, float], operator: str, pivot: int, limit: int
) -> None:
    rows = [(k, {"amount": repr(v)}) for k, v in values.items()]
    expected = _naive(values, operator, float(pivot))
    found: list[str] = []
    after = 0
    while True:
        body = {
            "filterGroups": [{"filters": [eq("amount", operator, str(pivot))]}],
            "limit": limit,
            "after": after,
        }
        page = search.run(rows, search.parse_request(body), {"amount": "number"})
        assert page.total == len(expected)
        found += page.ids
        if page.next_after is None:
            break
        after = int(page.next_after)
    assert found == sorted(expected, key=int)


@given(
    present=st.dictionaries(st.integers(1, 999).map(str), st.text(max_size=5), max_size=20),
    absent=st.sets(st.integers(1000, 1999).map(str), max_size=10),
)
def test_has_property_partitions_records(present: dict[str, str], absent: set[str]) -> None:
    rows = [(k, {"x": v}) for k, v in present.items()] + [(k, {}) for k in absent]
    has = search.run(
        rows,
        search.parse_request({"filterGroups": [{"filters": [eq("x", "HAS_PROPERTY")]}], "limit": 200}),
        {},
    )
    not_has = search.run(
        rows,
        search.parse_request({"filterGroups": [{"filters": [eq("x", "NOT_HAS_PROPERTY")]}], "limit": 200}),
        {},
    )
    assert set(has.ids) == set(present)
    assert set(not_has.ids) == absent
