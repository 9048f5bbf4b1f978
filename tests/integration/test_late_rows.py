"""A Dataverse delta row applied after its pair was deleted, with the batches made by hand so the race is
certain rather than left to timing (the chaos test found it in CI on 2026-12-07).

A delta row carries the whole record (reference/dataverse.md §1.3), and the applier took it for the read
of a record no link knows. But a row can reach the apply loop long after it was polled: a sync replica
killed while it owned the router's partition holds its rows until the group rebalances (a session timeout,
10 s), while the other side's delete of the pair goes through. The pair's delete removes the row and the
link; then the late row, its link gone, looked like a new Dataverse contact, and was copied to HubSpot as
a new contact, which came back to Dataverse as another new one: the deleted contact re-created on both
sides. The row's copy in the event says what the record was, not that it still is: such a row is now read.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from cdc.dataverse.rows import row_to_event
from cdc.sandbox.runner import Sandbox
from consumers.enrichment import enrich
from consumers.ports import CrmGateway
from consumers.routing import linked, routes
from streams.events import ChangeEvent, Operation
from streams.keys import SourceSystem
from streams.work import WorkItem
from tests.integration.sync_stack import small_config
from tests.integration.test_merge_races import (
    Sync,
    _tenanted,
    admin,
    box,
    dataverse_ids,
    delete,
    event,
    gateways,
    linked_pairs,
)

pytestmark = [pytest.mark.slow]
HS, DV = SourceSystem.HUBSPOT, SourceSystem.DATAVERSE
__all__ = ["admin", "box", "gateways"]  # the fixtures, shared with the merge races


@pytest.fixture
async def dataverse_admin(box: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """The Dataverse sandbox's admin API: what a user does in Dynamics."""
    ca = ssl.create_default_context(cafile=box.info.dataverse.ca_bundle)
    async with httpx.AsyncClient(base_url=box.info.dataverse.base_url, verify=ca, timeout=30) as client:
        yield client


async def polled(sync: Sync, dv_admin: httpx.AsyncClient, dv_id: str) -> ChangeEvent:
    """The contact's delta row as `cdc poll` publishes it now."""
    rows = (await dv_admin.get("/_admin/tables/contact/rows")).json()["value"]
    [row] = [r for r in rows if r["contactid"] == dv_id]
    tenant = sync.gateways[DV].tenant
    return row_to_event(row, tenant=tenant, object_type="contact", received_at=datetime.now(UTC))


async def routed(sync: Sync, change: ChangeEvent) -> WorkItem:
    """The change as the router routes it now, with the links it knows now."""
    [change] = await enrich(sync.config, sync.index, sync.gateways, [change])
    [item] = routes(sync.config, linked(sync.index, [change]), change)
    return item


async def hubspot_emails(admin: httpx.AsyncClient) -> list[str]:
    answer = await admin.get("/_admin/objects/contacts")
    body = answer.json()
    return [str(r["properties"].get("email")) for r in (body["results"] if isinstance(body, dict) else body)]


@pytest.mark.parametrize("routing", ["before the delete", "after the delete"])
async def test_a_delta_row_applied_after_its_pair_was_deleted_recreates_nothing(
    gateways: dict[SourceSystem, CrmGateway],
    admin: httpx.AsyncClient,
    dataverse_admin: httpx.AsyncClient,
    routing: str,
) -> None:
    """A user edits the Dataverse contact, then another deletes its HubSpot contact; the delete is applied
    first (the pair's Dataverse contact deleted, its link tombstoned), the edit's row after it: routed to
    the pair while the link was there, or routed after the tombstone as a record no link knows. Either way
    nothing is created on either side: the row's record is read, and is gone."""
    sync = Sync(small_config(deletes="propagate"), gateways)
    [(hs_id, dv_id)] = await linked_pairs(sync, "late@example.com")
    edited = await dataverse_admin.patch(f"/_admin/tables/contact/rows/{dv_id}", json={"lastname": "Late"})
    assert edited.status_code in (200, 204), edited.text
    row = await polled(sync, dataverse_admin, dv_id)
    early = await routed(sync, row) if routing == "before the delete" else None

    await delete(admin, hs_id)
    await sync.batch([_tenanted(sync, event(HS, hs_id, Operation.DELETE))])
    assert await dataverse_ids(gateways, dv_id) == set(), "the pair's delete missed its Dataverse contact"
    late = early or await routed(sync, row)
    assert late.route.startswith("link/") is (early is not None), late.route  # after: by its email

    result = await sync.applier.apply([late])
    sync.applier.commit(result)
    assert "late@example.com" not in await hubspot_emails(admin), "the deleted contact was copied to HubSpot"
    assert [link for _, link in result.links if link is not None] == [], "a link made for a deleted contact"
    assert result.skips == {("contacts_to_hubspot_contacts", "source_record_gone"): 1}
