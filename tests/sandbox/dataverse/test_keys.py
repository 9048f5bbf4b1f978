"""Alternate keys are built by a background job, as on a real org (Learn, define-alternate-keys-entity,
"Monitor index creation for alternate keys": ``EntityKeyIndexStatus`` Pending, InProgress, Active, Failed;
maker page define-alternate-keys-portal: "The alternate key will not be immediately available"), and a
Failed key is re-submitted with ``ReactivateEntityKey`` (Learn, webapi/reference/reactivateentitykey)."""

from __future__ import annotations

import httpx

from cdc.sandbox.dataverse import DataverseSandbox
from tests.sandbox.dataverse.support import build_key_indexes, create, key_status

KEYS = "/api/data/v9.2/EntityDefinitions(LogicalName='account')/Keys"
NOT_A_KEY = "The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.account'."


async def _define(client: httpx.AsyncClient) -> None:
    answer = await client.post(KEYS, json={"SchemaName": "cdc_num_key", "KeyAttributes": ["accountnumber"]})
    assert answer.status_code == 204, answer.text


async def _advance(client: httpx.AsyncClient, seconds: float) -> None:
    assert (await client.post("/_admin/clock/advance", json={"seconds": seconds})).status_code == 200


async def test_a_new_key_is_pending_then_in_progress_then_active(client: httpx.AsyncClient) -> None:
    assert (await client.put("/_admin/keys", json={"index_delay_s": 10})).json() == {"index_delay_s": 10}
    await _define(client)
    assert await key_status(client, "account") == {"cdc_num_key": "Pending"}
    refused = await client.patch("/api/data/v9.2/accounts(accountnumber='A-1')", json={"name": "Early"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith(NOT_A_KEY)
    bind = await client.post(
        "/api/data/v9.2/contacts",
        json={"lastname": "C", "parentcustomerid_account@odata.bind": "/accounts(accountnumber='A-1')"},
    )
    assert bind.status_code == 400
    await _advance(client, 6)
    assert await key_status(client, "account") == {"cdc_num_key": "InProgress"}
    await _advance(client, 4)
    assert await key_status(client, "account") == {"cdc_num_key": "Active"}
    made = await client.patch("/api/data/v9.2/accounts(accountnumber='A-1')", json={"name": "Keyed"})
    assert made.status_code == 204
    again = await client.patch("/api/data/v9.2/accounts(accountnumber='A-1')", json={"name": "Keyed 2"})
    assert again.headers["OData-EntityId"] == made.headers["OData-EntityId"]
    rows = (await client.get("/api/data/v9.2/accounts")).json()["value"]
    assert [r["name"] for r in rows] == ["Keyed 2"]


async def test_a_key_enforces_nothing_until_active_and_fails_on_duplicates(client: httpx.AsyncClient) -> None:
    """Without its index a key cannot stop duplicates; the job then fails on them (not the key's
    creation), and once the data is corrected ReactivateEntityKey builds it again."""
    await _define(client)
    first = await create(client, "accounts", {"name": "One", "accountnumber": "DUP"})
    await create(client, "accounts", {"name": "Two", "accountnumber": "dup"})  # same value to SQL's collation
    await build_key_indexes(client)
    assert await key_status(client, "account") == {"cdc_num_key": "Failed"}
    failed = await client.patch("/api/data/v9.2/accounts(accountnumber='X')", json={"name": "X"})
    assert failed.status_code == 400
    third = await client.post("/api/data/v9.2/accounts", json={"name": "Three", "accountnumber": "DUP"})
    assert third.status_code == 204  # a Failed key has no index: nothing is enforced
    reactivate = {"EntityLogicalName": "account", "EntityKeyLogicalName": "cdc_num_key"}
    assert (await client.post("/api/data/v9.2/ReactivateEntityKey", json=reactivate)).status_code == 204
    assert await key_status(client, "account") == {"cdc_num_key": "Pending"}
    await build_key_indexes(client)
    assert await key_status(client, "account") == {"cdc_num_key": "Failed"}  # still duplicates
    for row in (await client.get("/api/data/v9.2/accounts")).json()["value"]:
        if row["accountid"] != first:
            assert (await client.delete(f"/api/data/v9.2/accounts({row['accountid']})")).status_code == 204
    assert (await client.post("/api/data/v9.2/ReactivateEntityKey", json=reactivate)).status_code == 204
    await build_key_indexes(client)
    assert await key_status(client, "account") == {"cdc_num_key": "Active"}
    clash = await client.post("/api/data/v9.2/accounts", json={"name": "Four", "accountnumber": "dup"})
    assert clash.status_code == 412
    assert clash.json()["error"]["code"] == "0x80060892"
    unknown = {"EntityLogicalName": "account", "EntityKeyLogicalName": "nope"}
    assert (await client.post("/api/data/v9.2/ReactivateEntityKey", json=unknown)).status_code == 404


async def test_a_table_takes_at_most_ten_keys(client: httpx.AsyncClient) -> None:
    columns = ["accountnumber", "name", "emailaddress1", "fax", "telephone1", "websiteurl"]
    columns += ["address1_city", "address1_country", "address1_postalcode", "address1_line1"]
    for index, column in enumerate(columns):
        body = {"SchemaName": f"cdc_k{index}", "KeyAttributes": [column]}
        assert (await client.post(KEYS, json=body)).status_code == 204
    eleventh = await client.post(KEYS, json={"SchemaName": "cdc_k10", "KeyAttributes": ["address1_line2"]})
    assert eleventh.status_code == 400


async def test_the_index_delay_is_a_sandbox_setting(client: httpx.AsyncClient) -> None:
    assert DataverseSandbox(seed=1, key_index_delay_s=30).store.key_index_delay_s == 30
    assert (await client.put("/_admin/keys", json={"index_delay_s": -1})).status_code == 400
    made = await client.post(
        "/_admin/tables/account/keys", json={"name": "cdc_num", "columns": ["accountnumber"]}
    )
    assert made.status_code == 201
    assert made.json()["status"] == "Pending"
    assert (await client.get("/_admin/state")).json()["key_index_delay_s"] == made.json()["ready_in_s"]
