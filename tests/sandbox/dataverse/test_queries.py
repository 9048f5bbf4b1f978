"""Plain collection reads (fact sheet §1.2 paging rules): $select, $filter, $orderby, $top, nextLink."""

from __future__ import annotations

import httpx

from cdc.dataverse.errors import FatalError, classify
from tests.sandbox.dataverse.support import API, ORG, create


async def _seed(client: httpx.AsyncClient) -> dict[str, str]:
    people = {"Ann": 10, "bob": 20, "Cid": 30, "Dee": None}
    return {
        name: await create(
            client, "accounts", {"name": name, **({"numberofemployees": n} if n is not None else {})}
        )
        for name, n in people.items()
    }


async def test_filter_operators_and_logic(client: httpx.AsyncClient) -> None:
    await _seed(client)

    async def names(expression: str) -> list[str]:
        response = await client.get(
            "/api/data/v9.2/accounts", params={"$filter": expression, "$select": "name", "$orderby": "name"}
        )
        assert response.status_code == 200, response.text
        return [row["name"] for row in response.json()["value"]]

    assert await names("numberofemployees gt 10") == ["bob", "Cid"]
    assert await names("numberofemployees ge 20 and numberofemployees le 20") == ["bob"]
    assert await names("numberofemployees lt 20 or name eq 'Dee'") == ["Ann", "Dee"]
    assert await names("numberofemployees eq null") == ["Dee"]
    assert await names("numberofemployees ne null") == ["Ann", "bob", "Cid"]
    assert await names("name eq 'BOB'") == ["bob"]
    assert await names("(name eq 'Ann' or name eq 'Cid') and numberofemployees gt 15") == ["Cid"]
    assert await names("statecode eq 0 and startswith(name,'a')") == ["Ann"]
    bad = await client.get("/api/data/v9.2/accounts", params={"$filter": "name eq"})
    assert bad.status_code == 400
    assert set(bad.json()["error"]) == {"code", "message"}
    unknown = await client.get("/api/data/v9.2/accounts", params={"$filter": "nope eq 1"})
    assert unknown.status_code == 400


async def test_orderby_top_and_select(client: httpx.AsyncClient) -> None:
    await _seed(client)
    response = await client.get(
        "/api/data/v9.2/accounts",
        params={"$orderby": "numberofemployees desc", "$top": "2", "$select": "name"},
    )
    body = response.json()
    assert body["@odata.context"] == f"{API}/$metadata#accounts(name)"
    assert [r["name"] for r in body["value"]] == ["Cid", "bob"]
    assert "@odata.nextLink" not in body


async def test_maxpagesize_pages_with_next_links(client: httpx.AsyncClient) -> None:
    ids = set((await _seed(client)).values())
    url = "/api/data/v9.2/accounts?$select=name&$filter=statecode eq 0"
    seen: list[str] = []
    pages = 0
    while url:
        response = await client.get(url, headers={"Prefer": "odata.maxpagesize=3"})
        body = response.json()
        assert response.headers["Preference-Applied"] == "odata.maxpagesize=3"
        assert "@odata.deltaLink" not in body
        seen += [r["accountid"] for r in body["value"]]
        pages += 1
        url = body.get("@odata.nextLink", "").removeprefix(ORG)
        if url:
            assert "$skiptoken=" in url
            assert "$filter=" in url
    assert pages == 2
    assert sorted(seen) == sorted(ids)


async def test_lookup_filter_by_value_column(client: httpx.AsyncClient) -> None:
    account = await create(client, "accounts", {"name": "Parent"})
    child = await create(
        client,
        "contacts",
        {"lastname": "Kid", "parentcustomerid_account@odata.bind": f"/accounts({account})"},
    )
    await create(client, "contacts", {"lastname": "Orphan"})
    response = await client.get(
        "/api/data/v9.2/contacts", params={"$filter": f"_parentcustomerid_value eq {account}"}
    )
    assert [r["contactid"] for r in response.json()["value"]] == [child]


async def test_count_and_organization_settings(client: httpx.AsyncClient) -> None:
    await _seed(client)
    assert (await client.get("/api/data/v9.2/accounts/$count")).text == "4"
    org = (await client.get("/api/data/v9.2/organizations?$select=expirechangetrackingindays")).json()
    assert org["value"][0]["expirechangetrackingindays"] == 7


async def test_a_url_over_32_kb_is_refused_with_414_before_anything_else(client: httpx.AsyncClient) -> None:
    """ "Max URL length 32 KB" (fact sheet dataverse.md §2.1). The answer is HTML, as a Windows front end
    gives it, not an OData error; the daemon's client names the cause (`cdc.dataverse.errors.classify`)."""
    ids = await _seed(client)
    where = " or ".join(f"accountid eq {ids['Ann']}" for _ in range(700))  # 700 x 50 characters
    long = await client.get("/api/data/v9.2/accounts", params={"$filter": where, "$select": "name"})
    assert long.status_code == 414
    assert long.headers["content-type"].startswith("text/html")
    assert "The request URL is too long" in long.text
    shorter = " or ".join(f"accountid eq {ids['Ann']}" for _ in range(100))
    fits = await client.get("/api/data/v9.2/accounts", params={"$filter": shorter, "$select": "name"})
    assert fits.status_code == 200, fits.text
    assert [row["name"] for row in fits.json()["value"]] == ["Ann"]
    error = classify(long.status_code, None, long.headers)
    assert isinstance(error, FatalError)
    assert "longer than the 32 KB Dataverse accepts" in str(error)
