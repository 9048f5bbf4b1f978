"""Associations (fact sheet §4) and today's merge (§6), through the public routes of every API version the
sandbox serves (v4, 2026-03, 2026-09), with their differences (`cdc.sandbox.hubspot.versions`)."""

from __future__ import annotations

import httpx
import pytest

from cdc.sandbox.hubspot.versions import SERVED, ApiVersion

PRIMARY = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]


@pytest.fixture(params=list(SERVED))
def v(request: pytest.FixtureRequest) -> ApiVersion:
    """The API version a test runs in (each test runs in every one)."""
    return SERVED[request.param]


async def make(client: httpx.AsyncClient, v: ApiVersion, kind: str, **props: str) -> str:
    response = await client.post(f"{v.objects}/{kind}", json={"properties": props})
    assert response.status_code == 201
    record_id: str = response.json()["id"]
    return record_id


def partial(v: ApiVersion) -> int:
    """A batch answer some input of which failed: 207, or 200 with the errors folded in (2026-09)."""
    return 200 if v.name == "2026-09" else 207


async def types_of(client: httpx.AsyncClient, kind: str, record_id: str, to: str) -> dict[int, list[int]]:
    """What the portal holds (the admin API: one record's association read is not in every version)."""
    held: dict[str, list[int]] = (await client.get(f"/_admin/associations/{kind}/{record_id}")).json()[to]
    return {int(other): types for other, types in held.items()}


async def test_primary_company_implies_unlabeled_and_is_unique(
    client: httpx.AsyncClient, v: ApiVersion
) -> None:
    contact = await make(client, v, "contacts", email="a@example.com")
    first, second = (
        await make(client, v, "companies", name="One"),
        await make(client, v, "companies", name="Two"),
    )
    labelled = await client.put(
        f"{v.object_associations}/contacts/{contact}/associations/companies/{first}", json=PRIMARY
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
    one = await client.get(f"{v.object_associations}/contacts/{contact}/associations/companies")
    if v.name == "2026-09":  # absent from the 2026-09 spec: batch read is the way
        assert one.status_code == 404
        assert "Page not found" in one.text
    else:
        assert one.json()["results"][0]["associationTypes"] == [
            {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"},
            {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None},
        ]
    await client.put(
        f"{v.object_associations}/contacts/{contact}/associations/companies/{second}", json=PRIMARY
    )
    assert await types_of(client, "contacts", contact, "companies") == {
        int(first): [279],
        int(second): [1, 279],
    }


async def test_default_association_and_delete(client: httpx.AsyncClient, v: ApiVersion) -> None:
    contact, deal = (
        await make(client, v, "contacts", email="b@example.com"),
        await make(client, v, "deals", dealname="D"),
    )
    response = await client.put(
        f"{v.object_associations}/contacts/{contact}/associations/default/deals/{deal}"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert {
        "from": {"id": contact},
        "to": {"id": deal},
        "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 4},
    } in body["results"]
    assert await types_of(client, "deals", deal, "contacts") == {int(contact): [3]}
    gone = await client.delete(f"{v.object_associations}/contacts/{contact}/associations/deals/{deal}")
    assert gone.status_code == 204
    assert await types_of(client, "deals", deal, "contacts") == {}
    missing = await client.put(f"{v.object_associations}/contacts/{contact}/associations/default/deals/42")
    assert missing.status_code == 404


async def test_batch_read_and_create(client: httpx.AsyncClient, v: ApiVersion) -> None:
    company = await make(client, v, "companies", name="Acme")
    contacts = [await make(client, v, "contacts", email=f"c{n}@example.com") for n in range(3)]
    created = await client.post(
        f"{v.associations}/contacts/companies/batch/create",
        json={"inputs": [{"from": {"id": c}, "to": {"id": company}, "types": PRIMARY} for c in contacts[:2]]},
    )
    assert created.status_code == (200 if v.name == "2026-09" else 201)
    assert [r["labels"] for r in created.json()["results"]] == [["Primary"], ["Primary"]]
    read = await client.post(
        f"{v.associations}/contact/company/batch/read",
        json={"inputs": [{"id": c} for c in contacts] + [{"id": "1"}]},
    )
    assert read.status_code == partial(v)
    results = {r["from"]["id"]: r["to"] for r in read.json()["results"]}
    assert results[contacts[0]][0]["toObjectId"] == int(company)
    assert results[contacts[2]] == []
    assert read.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    archived = await client.post(
        f"{v.associations}/contacts/companies/batch/archive",
        json={"inputs": [{"from": {"id": contacts[0]}, "to": [{"id": company}]}]},
    )
    if v.dated:  # 2026-03 and 2026-09: a batch body
        assert archived.status_code == 200
        assert archived.json()["status"] == "COMPLETE"
    else:
        assert archived.status_code == 204
        assert archived.content == b""
    assert await types_of(client, "companies", company, "contacts") == {int(contacts[1]): [2, 280]}


async def test_batch_create_refusals_come_as_standard_errors_naming_the_invalid_ids(
    client: httpx.AsyncClient, v: ApiVersion
) -> None:
    """The v4 spec's 207 (``StandardError``: status, category, message, context, errors, links), folded into
    the 200 in 2026-09; the context names the invalid ids as HubSpot does (hubspot-api-nodejs issue 646),
    not the input pair."""
    company = await make(client, v, "companies", name="Acme")
    good, other = await make(client, v, "contacts", email="g@example.com"), "123456789"
    created = await client.post(
        f"{v.associations}/contacts/companies/batch/create",
        json={
            "inputs": [
                {"from": {"id": good}, "to": {"id": company}, "types": PRIMARY},
                {"from": {"id": good}, "to": {"id": other}, "types": PRIMARY},
                {"from": {"id": other}, "to": {"id": company}, "types": PRIMARY},
            ]
        },
    )
    assert created.status_code == partial(v)
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


async def test_create_with_associations_and_a_read_naming_them(
    client: httpx.AsyncClient, v: ApiVersion
) -> None:
    company = await make(client, v, "companies", name="Acme")
    response = await client.post(
        f"{v.objects}/contacts",
        json={
            "properties": {"email": "x@example.com"},
            "associations": [{"to": {"id": company}, "types": PRIMARY}],
        },
    )
    contact = response.json()["id"]
    body = (await client.get(f"{v.objects}/contacts/{contact}?associations=companies")).json()
    assert body["associations"]["companies"]["results"] == [
        {"id": company, "type": "contact_to_company"},
        {"id": company, "type": "contact_to_company_unlabeled"},
    ]


async def test_merge_creates_a_new_id_and_old_ids_resolve(client: httpx.AsyncClient, v: ApiVersion) -> None:
    primary = await make(client, v, "contacts", email="keep@example.com", firstname="Keep")
    other = await make(client, v, "contacts", email="old@example.com", firstname="Old", phone="123")
    company = await make(client, v, "companies", name="Acme")
    await client.put(
        f"{v.object_associations}/contacts/{other}/associations/companies/{company}", json=PRIMARY
    )
    response = await client.post(
        f"{v.objects}/contacts/merge", json={"primaryObjectId": primary, "objectIdToMerge": other}
    )
    assert response.status_code == 200
    merged = response.json()
    assert merged["id"] not in {primary, other}
    assert merged["properties"]["firstname"] == "Keep"
    assert merged["properties"]["phone"] == "123"
    assert merged["properties"]["email"] == "keep@example.com"
    assert set(merged["properties"]["hs_merged_object_ids"].split(";")) == {primary, other}
    for old in (primary, other):
        assert (await client.get(f"{v.objects}/contacts/{old}")).json()["id"] == merged["id"]
    assert (await client.get(f"{v.objects}/contacts/keep@example.com?idProperty=email")).json()[
        "id"
    ] == merged["id"]
    assert await types_of(client, "contacts", merged["id"], "companies") == {int(company): [1, 279]}
    batch = await client.post(
        f"{v.objects}/contacts/batch/update",
        json={"inputs": [{"id": other, "properties": {"firstname": "X"}}]},
    )
    assert batch.status_code == partial(v)  # old ids work with single PATCH only
    single = await client.patch(f"{v.objects}/contacts/{other}", json={"properties": {"firstname": "X"}})
    assert single.json()["id"] == merged["id"]


async def test_labels_name_the_object_types_until_2026_09(client: httpx.AsyncClient, v: ApiVersion) -> None:
    """``AssociationSpecWithLabel`` loses ``fromObjectTypeId``/``toObjectTypeId`` in the 2026-09 spec."""
    for root in v.labels:
        answer = await client.get(f"{root}/contacts/companies/labels")
        assert answer.status_code == 200
        primary = next(spec for spec in answer.json()["results"] if spec["typeId"] == 1)
        ends = {"fromObjectTypeId": "0-1", "toObjectTypeId": "0-2"}
        named = {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"}
        assert primary == (named if v.name == "2026-09" else {**named, **ends})
