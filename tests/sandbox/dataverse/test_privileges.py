"""The app user's security role: what it holds is read as Dataverse answers it (``RetrieveUserPrivileges``,
``RetrieveUserSetOfPrivilegesByNames`` bound to the ``WhoAmI`` user), and a call lacking a privilege gets
Dataverse's 403: code ``0x80040220`` (PrivilegeDenied) and "Principal user (...) is missing <privilege>
privilege (...) on OTC=<n> for entity '<table>'" (Dynamics 365 Customer Service FAQ; KB 2619752).
Privilege names are ``prv`` + verb + SchemaName (Learn, "Verifying access in code")."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.sandbox.dataverse.support import API, batch_body, create, http_request, read_batch_response

V = "/api/data/v9.2"


async def revoke(client: httpx.AsyncClient, **changes: str | None) -> None:
    answer = await client.patch("/_admin/privileges", json=changes)
    assert answer.status_code == 200, answer.text


def assert_denied(answer: httpx.Response, privilege: str, table: str | None) -> None:
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert error["code"] == "0x80040220"
    assert error["message"].startswith("Principal user (Id=")
    assert f"is missing {privilege} privilege (Id=" in error["message"]
    if table is not None:
        assert f"for entity '{table}'" in error["message"]


async def me(client: httpx.AsyncClient) -> str:
    return str((await client.get(f"{V}/WhoAmI")).json()["UserId"])


async def test_the_app_user_reads_its_privileges_as_role_privileges(client: httpx.AsyncClient) -> None:
    user = await me(client)
    answer = await client.get(f"{V}/systemusers({user})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()")
    assert answer.status_code == 200
    body = answer.json()
    assert body["@odata.context"].endswith("#Microsoft.Dynamics.CRM.RetrieveUserPrivilegesResponse")
    held = {p["PrivilegeName"]: p for p in body["RolePrivileges"]}
    assert held["prvReadContact"]["Depth"] == "Global"
    assert set(held["prvReadContact"]) == {"Depth", "PrivilegeId", "BusinessUnitId", "PrivilegeName"}
    assert {"prvAppendToAccount", "prvCreateAttribute", "prvReadEntity", "prvWriteOpportunity"} <= set(held)
    other = await client.get(f"{V}/systemusers({uuid.uuid4()})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges")
    assert other.status_code == 404


async def test_a_set_of_privileges_by_names_answers_only_those_held(client: httpx.AsyncClient) -> None:
    await revoke(client, prvCreateContact=None, prvWriteContact="Basic")
    user = await me(client)
    names = json.dumps(["prvCreateContact", "prvReadContact", "prvWriteContact", "prvNoSuchThing"])
    answer = await client.get(
        f"{V}/systemusers({user})/Microsoft.Dynamics.CRM.RetrieveUserSetOfPrivilegesByNames(PrivilegeNames=@p)",
        params={"@p": names},
    )
    assert answer.status_code == 200, answer.text
    held = {p["PrivilegeName"]: p["Depth"] for p in answer.json()["RolePrivileges"]}
    assert held == {"prvReadContact": "Global", "prvWriteContact": "Basic"}


async def test_a_create_without_its_privilege_is_refused_and_reads_still_work(
    client: httpx.AsyncClient,
) -> None:
    await revoke(client, prvCreateContact=None)
    assert_denied(await client.post(f"{V}/contacts", json={"lastname": "No"}), "prvCreateContact", "contact")
    assert (await client.get(f"{V}/contacts")).status_code == 200
    assert (await client.get("/_admin/tables/contact/rows")).json()["value"] == []  # nothing written


async def test_an_upsert_that_creates_needs_create_one_that_updates_only_write(
    client: httpx.AsyncClient,
) -> None:
    existing = await create(client, "contacts", {"lastname": "There"})
    await revoke(client, prvCreateContact=None)
    assert (await client.patch(f"{V}/contacts({existing})", json={"firstname": "Still"})).status_code == 204
    assert_denied(
        await client.patch(f"{V}/contacts({uuid.uuid4()})", json={"lastname": "New"}),
        "prvCreateContact",
        "contact",
    )


async def test_change_tracking_needs_organization_level_read(client: httpx.AsyncClient) -> None:
    """CT: "Caller needs organization-level read privilege on the table"; the sandbox asks Global of every
    table privilege (it has no owners or business units to reach with less)."""
    await revoke(client, prvReadAccount="Basic")
    tracked = await client.get(f"{V}/accounts", headers={"Prefer": "odata.track-changes"})
    assert_denied(tracked, "prvReadAccount", "account")


async def test_binding_a_lookup_needs_append_and_append_to(client: httpx.AsyncClient) -> None:
    account = await create(client, "accounts", {"name": "Parent"})
    bound = {"lastname": "Child", "parentcustomerid_account@odata.bind": f"/accounts({account})"}
    await revoke(client, prvAppendToAccount=None)
    assert_denied(await client.post(f"{V}/contacts", json=bound), "prvAppendToAccount", "account")
    await client.delete("/_admin/privileges")
    await revoke(client, prvAppendContact=None)
    assert_denied(await client.post(f"{V}/contacts", json=bound), "prvAppendContact", "contact")
    assert (await client.post(f"{V}/contacts", json={"lastname": "Unbound"})).status_code == 204


async def test_bulk_actions_need_the_privileges_of_what_they_do(client: httpx.AsyncClient) -> None:
    await revoke(client, prvWriteContact=None)
    targets = {"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": "Bulk"}]}
    assert (
        await client.post(f"{V}/contacts/Microsoft.Dynamics.CRM.CreateMultiple", json=targets)
    ).status_code == 200
    upsert = await client.post(f"{V}/contacts/Microsoft.Dynamics.CRM.UpsertMultiple", json=targets)
    assert_denied(upsert, "prvWriteContact", "contact")


async def test_a_batch_part_without_its_privilege_fails_alone(client: httpx.AsyncClient) -> None:
    await revoke(client, prvCreateAccount=None)
    body = batch_body(
        "batch_p",
        [
            http_request("POST", f"{API}/contacts", json.dumps({"lastname": "Fine"})),
            http_request("POST", f"{API}/accounts", json.dumps({"name": "Refused"})),
        ],
    )
    answer = await client.post(
        f"{V}/$batch",
        content=body,
        headers={"Content-Type": "multipart/mixed; boundary=batch_p", "Prefer": "odata.continue-on-error"},
    )
    parts = read_batch_response(answer)
    assert [p.status for p in parts] == [204, 403]
    assert json.loads(parts[1].body)["error"]["code"] == "0x80040220"


async def test_metadata_calls_need_customization_privileges(client: httpx.AsyncClient) -> None:
    await revoke(client, prvCreateAttribute=None, prvWriteEntity=None)
    column = {
        "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
        "SchemaName": "cdc_Test",
        "MaxLength": 20,
    }
    created = await client.post(f"{V}/EntityDefinitions(LogicalName='contact')/Attributes", json=column)
    assert_denied(created, "prvCreateAttribute", None)
    definition = await client.get(f"{V}/EntityDefinitions(LogicalName='contact')")
    assert definition.status_code == 200
    body = {**definition.json(), "ChangeTrackingEnabled": True}
    put = await client.put(f"{V}/EntityDefinitions(LogicalName='contact')", json=body)
    assert_denied(put, "prvWriteEntity", None)
    await revoke(client, prvReadEntity=None)
    assert_denied(await client.get(f"{V}/EntityDefinitions(LogicalName='contact')"), "prvReadEntity", None)


async def test_the_admin_api_refuses_unknown_privileges_and_depths(client: httpx.AsyncClient) -> None:
    assert (await client.patch("/_admin/privileges", json={"prvReadContcat": None})).status_code == 400
    assert (
        await client.patch("/_admin/privileges", json={"prvReadContact": "Everywhere"})
    ).status_code == 400
    await revoke(client, prvReadContact=None)
    assert "prvReadContact" not in (await client.get("/_admin/privileges")).json()["privileges"]
    restored = await client.delete("/_admin/privileges")
    assert restored.json()["privileges"]["prvReadContact"] == "Global"
