"""`lookup: owner` at the CRM edges, against the sandbox over real sockets (no Kafka): both owner lists in
the real shapes, the owner bound as ``ownerid@odata.bind: /systemusers(<id>)``, and a disabled user
refused as Dataverse refuses it (0x80040225 UserDisabled, Learn web-service-error-codes)."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from cdc.dataverse.gateway import DataverseGateway
from cdc.hubspot.errors import FatalError as HubSpotFatalError
from cdc.hubspot.gateway import open_hubspot_gateway
from cdc.metrics import Metrics
from cdc.sandbox.runner import Sandbox
from consumers.owners import Owner, OwnerReason, owner_table
from consumers.ports import CrmUnavailableError, WriteKind, WriteOp
from streams.codec import Scalar
from streams.keys import SourceSystem
from tests.integration.test_gateways import (
    FAST_HUBSPOT,
    OWNERS,
    box,
    calls,
    dataverse,
    hubspot_admin,
    hubspot_settings,
)

__all__ = ["box", "dataverse"]  # the fixtures, shared with the gateway tests


def create(ref: str, table: str, values: dict[str, Scalar]) -> WriteOp:
    return WriteOp(ref=ref, kind=WriteKind.CREATE, object_type=table, values=values)


def update(ref: str, table: str, row_id: str, values: dict[str, Scalar]) -> WriteOp:
    return WriteOp(ref=ref, kind=WriteKind.UPDATE, object_type=table, object_id=row_id, values=values)


async def test_contact_owner_set_from_the_hubspot_owner_with_the_same_email_and_a_disabled_one_refused(
    box: Sandbox, dataverse: DataverseGateway
) -> None:
    async with (
        open_hubspot_gateway(hubspot_settings(box), Metrics(CollectorRegistry()), policy=FAST_HUBSPOT) as hs,
        hubspot_admin(box) as admin,
    ):
        ann = (await admin.post("/owners", json={"email": "Ann@Example.com"})).json()["id"]
        bob = (await admin.post("/owners", json={"email": "bob@example.com"})).json()["id"]
        await calls(admin, reset=True)
        hubspot_owners = await hs.owners()
        assert await hs.owners() == hubspot_owners  # cached: one list read (active, then archived)
        assert (await calls(admin)).get(OWNERS) == 2
    user, off, contact = await dataverse.write(
        [
            create("u", "systemuser", {"lastname": "Ann", "internalemailaddress": "ann@example.com"}),
            create("d", "systemuser", {"lastname": "Bob", "internalemailaddress": "bob@example.com"}),
            create("c", "contact", {"lastname": "Roe"}),
        ]
    )
    [disabled] = await dataverse.write([update("x", "systemuser", str(off.object_id), {"isdisabled": True})])
    assert disabled.ok
    users = await dataverse.owners(refresh=True)
    assert Owner(str(user.object_id), "ann@example.com") in users
    assert Owner(str(off.object_id), "bob@example.com", active=False) in users

    table = owner_table(
        [ann, bob],
        SourceSystem.HUBSPOT,
        {SourceSystem.HUBSPOT: hubspot_owners, SourceSystem.DATAVERSE: users},
    )
    assert table == {ann: user.object_id, bob: OwnerReason.DISABLED}

    contact_id = str(contact.object_id)
    [owned] = await dataverse.write([update("o", "contact", contact_id, {"_ownerid_value": table[ann]})])
    assert owned.ok, owned.error
    read = await dataverse.read("contact", [contact_id], fields=["_ownerid_value", "ownerid"])
    assert read[contact_id].values == {"_ownerid_value": user.object_id, "ownerid": "Ann"}

    # Were the disabled user sent anyway (disabled after the list was read), the record fails alone.
    [refused] = await dataverse.write([update("r", "contact", contact_id, {"_ownerid_value": off.object_id})])
    assert not refused.ok
    assert "is disabled" in str(refused.error)
    [bad] = await dataverse.write([update("b", "contact", contact_id, {"_ownerid_value": "not-a-guid"})])
    assert bad.error == "_ownerid_value: 'not-a-guid' is not a user id"


async def test_hubspot_owner_list_refused_skips_owners_and_says_why_once(
    box: Sandbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A token without ``crm.objects.owners.read`` (403) must not stop the sync: no owner is known (each is
    skipped as ``owner_unknown``) and the operator is told once which scope is missing."""

    async def refused() -> list[Owner]:
        raise HubSpotFatalError("403: This app hasn't been granted all required scopes", status=403)

    now = [0.0]
    async with open_hubspot_gateway(
        hubspot_settings(box), Metrics(CollectorRegistry()), policy=FAST_HUBSPOT
    ) as hs:
        monkeypatch.setattr(hs._client, "owner_list", refused)
        hs.owner_list._clock = lambda: now[0]
        with caplog.at_level(logging.ERROR, logger="cdc.hubspot.gateway"):
            assert await hs.owners() == []
            now[0] = 1000.0
            assert await hs.owners() == []
    said = [r.getMessage() for r in caplog.records if "owner list" in r.getMessage()]
    assert len(said) == 1
    assert "crm.objects.owners.read" in said[0]


async def test_giving_a_record_to_a_user_needs_the_assign_privilege(
    box: Sandbox, dataverse: DataverseGateway
) -> None:
    """Setting ``ownerid`` is an assignment: without ``prvAssignContact`` Dataverse answers 403, which
    pauses the sync (a missing privilege, not a bad record) until an admin grants it."""
    user, contact = await dataverse.write(
        [
            create("u", "systemuser", {"lastname": "Ann", "internalemailaddress": "ann@example.com"}),
            create("c", "contact", {"lastname": "Roe"}),
        ]
    )
    box.dataverse.privileges.change({"prvAssignContact": None}, box.dataverse.store.tables.values())
    give = update("o", "contact", str(contact.object_id), {"_ownerid_value": str(user.object_id)})
    with pytest.raises(CrmUnavailableError, match="prvAssignContact"):
        await dataverse.write([give])
    box.dataverse.privileges.reset()
    [given] = await dataverse.write([give])
    assert given.ok
