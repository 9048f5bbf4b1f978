"""A HubSpot merge racing other changes of the same pairs, applied batch by batch as the sync's apply loop
does, with the batches made by hand so the race is certain rather than left to timing (the chaos test's
long form found both: issue 13, item 1).

HubSpot merges two contacts into a new record with a new id; both old ids then read as the new record, and
the new record's ``hs_merged_object_ids`` names them (reference/hubspot.md §6). Here the survivor is
deleted right after the merge, so a read of the old ids finds nothing, and only the link the merge moved
connects the survivor's delete to the Dataverse contact that must go with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import CollectorRegistry

from cdc.dataverse.gateway import open_dataverse_gateway
from cdc.hubspot.gateway import open_hubspot_gateway
from cdc.metrics import Metrics
from cdc.provisioning.run import provision_sandbox
from cdc.sandbox.runner import Sandbox, run_sandbox
from consumers.applier import Applier
from consumers.batch import BatchResult
from consumers.config import SyncConfig
from consumers.enrichment import enrich
from consumers.ports import CrmGateway, Record, WriteKind, WriteOp
from consumers.routing import linked, routes
from streams.codec import Scalar
from streams.config import KafkaSettings
from streams.events import ChangeEvent, Merge, Operation, Origin
from streams.keys import SourceSystem
from streams.link_store import LinkIndex
from streams.links import Link
from tests.integration.sync_stack import small_config
from tests.integration.wrapped_gateway import WrappedGateway

pytestmark = [pytest.mark.slow]
HS, DV = SourceSystem.HUBSPOT, SourceSystem.DATAVERSE


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with run_sandbox(seed=13) as sandbox:
        yield sandbox


@pytest.fixture
async def gateways(box: Sandbox) -> AsyncIterator[dict[SourceSystem, CrmGateway]]:
    settings = box.daemon_settings(KafkaSettings())
    await provision_sandbox(settings, small_config())
    metrics = Metrics(CollectorRegistry())
    async with (
        open_hubspot_gateway(settings.hubspot, metrics) as hubspot,
        open_dataverse_gateway(settings.dataverse, metrics) as dataverse,
    ):
        yield {HS: hubspot, DV: dataverse}


@pytest.fixture
async def admin(box: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """The HubSpot sandbox's admin API: what a user does in HubSpot's UI."""
    async with httpx.AsyncClient(base_url=box.info.hubspot.base_url, timeout=30) as client:
        yield client


class Sync:
    """The sync's apply loop without Kafka: read what routing needs and route each change as the router
    does, apply a batch, and
    commit its links to the view the next batch sees (as a committed transaction does)."""

    def __init__(self, config: SyncConfig, gateways: dict[SourceSystem, CrmGateway]) -> None:
        self.config, self.gateways = config, gateways
        self.index = LinkIndex()
        self.applier = Applier(config, gateways, self.index)
        self.published: list[tuple[str, Link | None]] = []

    async def batch(self, changes: Sequence[ChangeEvent]) -> BatchResult:
        changes = await enrich(self.config, self.index, self.gateways, changes)
        links = linked(self.index, changes)
        items = [item for c in changes for item in routes(self.config, links, c)]
        result = await self.applier.apply(items)
        self.applier.commit(result)
        self.published.extend(result.links)
        return result

    def link_of(self, system: SourceSystem, object_id: str) -> Link | None:
        return self.index.find(self.applier.ref(system, "contact", object_id))


def event(system: SourceSystem, object_id: str, operation: Operation, **extra: object) -> ChangeEvent:
    now = datetime.now(UTC)
    return ChangeEvent.model_validate(
        {
            "source": system,
            "tenant": "portal" if system is HS else "org",
            "object_type": "contact",
            "object_id": object_id,
            "operation": operation,
            "origin": Origin.WEBHOOK if system is HS else Origin.CHANGE_TRACKING,
            "occurred_at": now,
            "received_at": now,
            **extra,
        }
    )


async def linked_pairs(sync: Sync, *emails: str) -> list[tuple[str, str]]:
    """HubSpot contacts made by a user and synced: (HubSpot id, Dataverse id) of each pair."""
    hubspot = sync.gateways[HS]
    ops = [
        WriteOp(ref=e, kind=WriteKind.CREATE, object_type="contact", values={"email": e, "firstname": "F"})
        for e in emails
    ]
    made = await hubspot.write(ops)
    await sync.batch([_tenanted(sync, event(HS, str(m.object_id), Operation.CREATE)) for m in made])
    pairs = []
    for m in made:
        link = sync.link_of(HS, str(m.object_id))
        assert link is not None, f"contact {m.object_id} was not linked"
        pairs.append((link.hubspot.object_id, link.dataverse.object_id))
    return pairs


def _tenanted(sync: Sync, change: ChangeEvent) -> ChangeEvent:
    return change.model_copy(update={"tenant": sync.gateways[change.source].tenant})


async def merge(admin: httpx.AsyncClient, primary: str, other: str) -> str:
    answer = await admin.post(
        "/_admin/objects/contacts/merge", json={"primaryObjectId": primary, "objectIdToMerge": other}
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


async def delete(admin: httpx.AsyncClient, object_id: str) -> None:
    assert (await admin.delete(f"/_admin/objects/contacts/{object_id}")).status_code == 204


async def dataverse_ids(gateways: dict[SourceSystem, CrmGateway], *ids: str) -> set[str]:
    return set(await gateways[DV].read("contact", list(ids), fields=["emailaddress1"]))


def revisions_only_grow(published: list[tuple[str, Link | None]]) -> None:
    """Every link published replaces the one before it with a higher revision: a second value at an equal
    revision (a stale copy written back) would win in the compacted topic and undo the first."""
    last: dict[str, int] = {}
    for link_id, link in published:
        if link is None:
            last.pop(link_id, None)
            continue
        assert link.revision > last.get(link_id, 0), (
            f"link {link_id} published at revision {link.revision} after revision {last[link_id]}"
        )
        last[link_id] = link.revision


async def test_a_merge_and_an_edit_of_its_pair_in_one_batch_leave_the_link_on_the_survivor(
    gateways: dict[SourceSystem, CrmGateway], admin: httpx.AsyncClient
) -> None:
    """One batch holds a Dataverse edit of the primary's pair, then the merge; the survivor is deleted
    before the batch reads it. The edit's unit took its copy of the link before the merge moved it: it
    must not write that copy back over the merge (it did, at the merge's own revision), or the survivor's
    delete finds no link and the Dataverse contact stays for ever."""
    sync = Sync(small_config(deletes="propagate"), gateways)
    (hs_p, dv_p), (hs_o, dv_o) = await linked_pairs(sync, "race-p@example.com", "race-o@example.com")
    survivor = await merge(admin, hs_p, hs_o)
    await delete(admin, survivor)
    await gateways[DV].write(
        [WriteOp(ref="e", kind=WriteKind.UPDATE, object_type="contact", object_id=dv_p,
                 values={"lastname": "Edited"})]
    )  # fmt: skip
    edit: dict[str, Scalar] = {"lastname": "Edited"}
    merged = Merge(primary_object_id=hs_p, merged_object_ids=(hs_o,), new_object_id=survivor)
    await sync.batch(
        [
            _tenanted(sync, event(DV, dv_p, Operation.UPDATE, changed_properties=edit)),
            _tenanted(sync, event(HS, hs_p, Operation.MERGE, merge=merged)),
        ]
    )
    link = sync.link_of(HS, survivor)
    assert link is not None, "the merge's link was overwritten by the edit's stale copy"
    assert link.dataverse.object_id == dv_p

    await sync.batch([_tenanted(sync, event(HS, survivor, Operation.DELETE))])
    assert await dataverse_ids(gateways, dv_p, dv_o) == {dv_o}, "the survivor's delete missed its contact"
    revisions_only_grow(sync.published)


async def test_the_delete_of_a_survivor_whose_merge_webhook_was_lost_reaches_the_primarys_contact(
    gateways: dict[SourceSystem, CrmGateway], admin: httpx.AsyncClient
) -> None:
    """The merge's webhook never came; half a second later the survivor (a record no link knows) is
    deleted. Its archived record names the merged ids: the delete is routed to the primary's pair, the
    merge applied from it, and the pair's Dataverse contact deleted (before, it was skipped as the delete
    of a record never synced, and the contact stayed for ever). The other pair is kept for review."""
    sync = Sync(small_config(deletes="propagate"), gateways)
    (hs_p, dv_p), (hs_o, dv_o) = await linked_pairs(sync, "lost-p@example.com", "lost-o@example.com")
    survivor = await merge(admin, hs_p, hs_o)
    await asyncio.sleep(0.5)
    await delete(admin, survivor)

    result = await sync.batch([_tenanted(sync, event(HS, survivor, Operation.DELETE))])
    assert await dataverse_ids(gateways, dv_p, dv_o) == {dv_o}, "the survivor's delete missed its contact"
    assert result.skips.get(("contact~contact", "delete_of_unlinked"), 0) == 0
    assert result.skips[("contact~contact", "merge_conflict")] == 1
    assert sync.link_of(HS, hs_p) is None
    assert sync.link_of(DV, dv_p) is None
    assert sync.link_of(DV, dv_o) is not None  # kept for review
    revisions_only_grow(sync.published)


async def test_the_delete_of_a_record_no_link_knows_and_no_merge_made_is_skipped_as_before(
    gateways: dict[SourceSystem, CrmGateway], admin: httpx.AsyncClient
) -> None:
    """A HubSpot contact deleted before it was ever synced: its archived record names no merged ids, so
    nothing is deleted in Dataverse and the delete is counted as one of a record never synced."""
    sync = Sync(small_config(deletes="propagate"), gateways)
    [(_, dv_kept)] = await linked_pairs(sync, "kept@example.com")
    [made] = await gateways[HS].write(
        [
            WriteOp(
                ref="n", kind=WriteKind.CREATE, object_type="contact", values={"email": "never@example.com"}
            )
        ]
    )
    await delete(admin, str(made.object_id))
    result = await sync.batch([_tenanted(sync, event(HS, str(made.object_id), Operation.DELETE))])
    assert result.skips[("contact~contact", "delete_of_unlinked")] == 1
    assert await dataverse_ids(gateways, dv_kept) == {dv_kept}


class Tailing(WrappedGateway):
    """A replica's gateway whose reads let the replica's link view take in another replica's links, as the
    view's tail does between any two awaits of a batch."""

    def __init__(self, gateway: CrmGateway, arrive: list[tuple[str, Link | None]], index: LinkIndex) -> None:
        super().__init__(gateway)
        self._arrive, self._index = arrive, index

    async def read(
        self,
        object_type: str,
        ids: Sequence[str],
        *,
        fields: Sequence[str],
        associations: Sequence[str] = (),
        archived: bool = False,
    ) -> dict[str, Record]:
        found = await super().read(
            object_type, ids, fields=fields, associations=associations, archived=archived
        )
        while self._arrive:
            self._index.apply(*self._arrive.pop(0))
        return found


async def test_a_record_another_replica_links_while_a_batch_reads_it_is_not_created_again(
    gateways: dict[SourceSystem, CrmGateway],
) -> None:
    """Replica B creates the HubSpot contact of a new Dataverse contact and links the two. The contact's
    creation webhook reaches replica C (routed by the link, a partition C owns) before C's link view has
    B's link; the link arrives while C reads the contact. C must take the pair as linked, not find the
    Dataverse contact "already linked to another record" and create a second one (the chaos test's
    long form made two Dataverse contacts this way)."""
    config = small_config()
    b = Sync(config, gateways)
    [made] = await gateways[DV].write(
        [WriteOp(ref="n", kind=WriteKind.CREATE, object_type="contact",
                 values={"emailaddress1": "late-link@example.com", "lastname": "Late"})]
    )  # fmt: skip
    await b.batch([_tenanted(b, event(DV, str(made.object_id), Operation.UPSERT))])
    link = b.link_of(DV, str(made.object_id))
    assert link is not None
    c = Sync(config, gateways)
    c.applier.gateways = {HS: Tailing(gateways[HS], list(b.published), c.index), DV: gateways[DV]}

    await c.batch([_tenanted(c, event(HS, link.hubspot.object_id, Operation.CREATE))])
    rows = await gateways[DV].find("contact", "emailaddress1", ["late-link@example.com"], fields=["lastname"])
    assert [r.object_id for r in rows["late-link@example.com"]] == [str(made.object_id)]
