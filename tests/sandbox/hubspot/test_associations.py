"""Associations v4 (fact sheet §4) and today's merge (§6), through the public routes."""

from __future__ import annotations

from typing import Any

import httpx

PRIMARY = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]


async def make(client: httpx.AsyncClient, kind: str, **props: str) -> str:
    response = await client.post(f"/crm/v3/objects/{kind}", json={"properties": props})
    assert response.status_code == 201
    record_id: str = response.json()["id"]
    return record_id


async def types_of(client: httpx.AsyncClient, kind: str, record_id: str, to: str) -> dict[int, list[int]]:
    body: dict[str, Any] = (await client.get(f"/crm/v4/objects/{kind}/{record_id}/associations/{to}")).json()
    return {r["toObjectId"]: [t["typeId"] for t in r["associationTypes"]] for r in body["results"]}


async def test_primary_company_implies_unlabeled_and_is_unique(client: httpx.AsyncClient) -> None:
    contact = await make(client, "contacts", email="a@example.com")
    first, second = await make(client, "companies", name="One"), await make(client, "companies", name="Two")
    labelled = await client.put(
        f"/crm/v4/objects/contacts/{contact}/associations/companies/{first}", json=PRIMARY
    )
    assert labelled.status_code == 201
    assert labelled.json() == {
        "fromObjectTypeId": "0-1",
        "fromObjectId": int(contact),
        "toObjectTypeId": "0-2",
        "toObjectId": int(first),
        "labels": ["Primary"],
    }
    assert await types_of(client, "contacts", contact, "companies") == {int(first): [1, 279]}
    assert await types_of(client, "companies", first, "contacts") == {int(contact): [2, 280]}
    read = (await client.get(f"/crm/v4/objects/contacts/{contact}/associations/companies")).json()
    assert read["results"][0]["associationTypes"] == [
        {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"},
        {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None},
    ]
    await client.put(f"/crm/v4/objects/contacts/{contact}/associations/companies/{second}", json=PRIMARY)
    assert await types_of(client, "contacts", contact, "companies") == {
        int(first): [279],
        int(second): [1, 279],
    }


async def test_default_association_and_delete(client: httpx.AsyncClient) -> None:
    contact, deal = (
        await make(client, "contacts", email="b@example.com"),
        await make(client, "deals", dealname="D"),
    )
    response = await client.put(f"/crm/v4/objects/contacts/{contact}/associations/default/deals/{deal}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert {
        "from": {"id": contact},
        "to": {"id": deal},
        "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 4},
    } in body["results"]
    assert await types_of(client, "deals", deal, "contacts") == {int(contact): [3]}
    gone = await client.delete(f"/crm/v4/objects/contacts/{contact}/associations/deals/{deal}")
    assert gone.status_code == 204
    assert await types_of(client, "deals", deal, "contacts") == {}
    missing = await client.put(f"/crm/v4/objects/contacts/{contact}/associations/default/deals/42")
    assert missing.status_code == 404


async def test_batch_read_and_create(client: httpx.AsyncClient) -> None:
    company = await make(client, "companies", name="Acme")
    contacts = [await make(client, "contacts", email=f"c{n}@example.com") for n in range(3)]
    created = await client.post(
        "/crm/v4/associations/contacts/companies/batch/create",
        json={"inputs": [{"from": {"id": c}, "to": {"id": company}, "types": PRIMARY} for c in contacts[:2]]},
    )
    assert created.status_code == 201
    assert [r["labels"] for r in created.json()["results"]] == [["Primary"], ["Primary"]]
    read = await client.post(
        "/crm/v4/associations/contact/company/batch/read",
        json={"inputs": [{"id": c} for c in contacts] + [{"id": "1"}]},
    )
    assert read.status_code == 207
    results = {r["from"]["id"]: r["to"] for r in read.json()["results"]}
    assert results[contacts[0]][0]["toObjectId"] == int(company)
    assert results[contacts[2]] == []
    assert read.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    archived = await client.post(
        "/crm/v4/associations/contacts/companies/batch/archive",
        json={"inputs": [{"from": {"id": contacts[0]}, "to": [{"id": company}]}]},
    )
    assert archived.status_code == 204
    assert await types_of(client, "companies", company, "contacts") == {int(contacts[1]): [2, 280]}


async def test_batch_create_refusals_come_as_standard_errors_naming_the_invalid_ids(
    client: httpx.AsyncClient,
) -> None:
    """The v4 spec's 207 (``StandardError``: status, category, message, context, errors, links); the context
    names the invalid ids as HubSpot does (hubspot-api-nodejs issue 646), not the input pair."""
    company = await make(client, "companies", name="Acme")
    good, other = await make(client, "contacts", email="g@example.com"), "123456789"
    created = await client.post(
        "/crm/v4/associations/contacts/companies/batch/create",
        json={
            "inputs": [
                {"from": {"id": good}, "to": {"id": company}, "types": PRIMARY},
                {"from": {"id": good}, "to": {"id": other}, "types": PRIMARY},
                {"from": {"id": other}, "to": {"id": company}, "types": PRIMARY},
            ]
        },
    )
    assert created.status_code == 207
    body = created.json()
    assert [(r["fromObjectId"], r["toObjectId"]) for r in body["results"]] == [(int(good), int(company))]
    assert body["numErrors"] == 1
    [error] = body["errors"]
    assert set(error) == {"status", "category", "message", "context", "errors", "links"}
    assert error["category"] == "VALIDATION_ERROR"
    assert error["context"] == {
        "INVALID_OBJECT_IDS": [f"COMPANY={other} is not valid", f"CONTACT={other} is not valid"],
        "objectId": [other, other],
        "objectType": ["COMPANY", "CONTACT"],
    }


async def test_create_with_associations_and_v3_read(client: httpx.AsyncClient) -> None:
    company = await make(client, "companies", name="Acme")
    response = await client.post(
        "/crm/v3/objects/contacts",
        json={
            "properties": {"email": "x@example.com"},
            "associations": [{"to": {"id": company}, "types": PRIMARY}],
        },
    )
    contact = response.json()["id"]
    body = (await client.get(f"/crm/v3/objects/contacts/{contact}?associations=companies")).json()
    assert body["associations"]["companies"]["results"] == [
        {"id": company, "type": "contact_to_company"},
        {"id": company, "type": "contact_to_company_unlabeled"},
    ]


async def test_merge_creates_a_new_id_and_old_ids_resolve(client: httpx.AsyncClient) -> None:
    primary = await make(client, "contacts", email="keep@example.com", firstname="Keep")
    other = await make(client, "contacts", email="old@example.com", firstname="Old", phone="123")
    company = await make(client, "companies", name="Acme")
    await client.put(f"/crm/v4/objects/contacts/{other}/associations/companies/{company}", json=PRIMARY)
    response = await client.post(
        "/crm/v3/objects/contacts/merge", json={"primaryObjectId": primary, "objectIdToMerge": other}
    )
    assert response.status_code == 200
    merged = response.json()
    assert merged["id"] not in {primary, other}
    assert merged["properties"]["firstname"] == "Keep"
    assert merged["properties"]["phone"] == "123"
    assert merged["properties"]["email"] == "keep@example.com"
    assert set(merged["properties"]["hs_merged_object_ids"].split(";")) == {primary, other}
    for old in (primary, other):
        assert (await client.get(f"/crm/v3/objects/contacts/{old}")).json()["id"] == merged["id"]
    assert (await client.get("/crm/v3/objects/contacts/keep@example.com?idProperty=email")).json()[
        "id"
    ] == merged["id"]
    assert await types_of(client, "contacts", merged["id"], "companies") == {int(company): [1, 279]}
    batch = await client.post(
        "/crm/v3/objects/contacts/batch/update",
        json={"inputs": [{"id": other, "properties": {"firstname": "X"}}]},
    )
    assert batch.status_code == 207  # old ids work with single PATCH only
    single = await client.patch(f"/crm/v3/objects/contacts/{other}", json={"properties": {"firstname": "X"}})
    assert single.json()["id"] == merged["id"]
