"""Two sync replicas applying one batch: what a consumer-group rebalance does when the replica that lost
the partitions is still applying them (aiokafka's transactional offset commits carry no group generation,
so Kafka does not fence that zombie). Both replicas plan a create for the same unlinked record, each from
a link view that has not seen the other's link yet; in a provisioned org the creates key on the other
CRM's id (`cdc_hubspotid` alternate key, `cdc_d365id` unique property), so they land as one record."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from cdc.dataverse.gateway import open_dataverse_gateway
from cdc.hubspot.gateway import open_hubspot_gateway
from cdc.metrics import Metrics
from cdc.provisioning.run import provision_sandbox
from cdc.sandbox.runner import Sandbox, run_sandbox
from consumers.applier import Applier
from consumers.ports import BatchRevokedError, CrmGateway, WriteKind, WriteOp, WriteOutcome
from consumers.routing import routes
from streams.codec import Scalar
from streams.config import KafkaSettings
from streams.events import ChangeEvent, Operation, Origin
from streams.keys import SourceSystem
from streams.link_store import LinkIndex
from tests.integration.sync_stack import small_config
from tests.integration.wrapped_gateway import WrappedGateway

pytestmark = [pytest.mark.slow]
HS, DV = SourceSystem.HUBSPOT, SourceSystem.DATAVERSE


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with run_sandbox(seed=31) as sandbox:
        yield sandbox


def change(source: SourceSystem, tenant: str, object_type: str, object_id: str) -> ChangeEvent:
    now = datetime.now(UTC)
    return ChangeEvent(
        source=source,
        tenant=tenant,
        object_type=object_type,
        object_id=object_id,
        operation=Operation.UPSERT,
        origin=Origin.RECONCILER,
        occurred_at=now,
        received_at=now,
    )


@pytest.fixture
async def gateways(box: Sandbox) -> AsyncIterator[dict[SourceSystem, CrmGateway]]:
    metrics = Metrics(CollectorRegistry())
    settings = box.daemon_settings(KafkaSettings())
    async with (
        open_hubspot_gateway(settings.hubspot, metrics) as hubspot,
        open_dataverse_gateway(settings.dataverse, metrics) as dataverse,
    ):
        yield {HS: hubspot, DV: dataverse}


async def provisioned(box: Sandbox) -> None:
    await provision_sandbox(box.daemon_settings(KafkaSettings()), small_config())


async def created(gateway: CrmGateway, values: dict[str, Scalar]) -> ChangeEvent:
    """A contact made in ``gateway``'s CRM as a user would, and the change event that reports it."""
    op = WriteOp(ref="c", kind=WriteKind.CREATE, object_type="contact", values=values)
    [made] = await gateway.write([op])
    return change(gateway.system, gateway.tenant, "contact", str(made.object_id))


class Racing(WrappedGateway):
    """A replica's view of a shared gateway whose first create waits until the other replica's is ready
    too (bounded), so both send a create planned before either landed: the race this file is about, made
    certain rather than left to how the two replicas' reads interleave on a loaded machine."""

    def __init__(self, gateway: CrmGateway, barrier: asyncio.Barrier) -> None:
        super().__init__(gateway)
        self._barrier, self._raced = barrier, False

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        if not self._raced and any(op.kind is WriteKind.CREATE for op in ops):
            self._raced = True
            with contextlib.suppress(TimeoutError):  # the other replica sent no create: no race to make
                await asyncio.wait_for(self._barrier.wait(), 10)
        return await super().write(ops)


async def two_replicas_apply(gateways: dict[SourceSystem, CrmGateway], event: ChangeEvent) -> list[str]:
    """Both replicas apply the same work at once, their creates sent together; returns the actions each
    audited."""
    config = small_config()
    barriers = {system: asyncio.Barrier(2) for system in gateways}
    replicas = [
        Applier(config, {s: Racing(g, barriers[s]) for s, g in gateways.items()}, LinkIndex())
        for _ in range(2)
    ]
    items = routes(config, {}, event)
    results = await asyncio.gather(*(r.apply(items) for r in replicas))
    assert [r.failed for r in results] == [[], []]
    return [str(a.action) for r in results for a in r.audits]


@pytest.mark.parametrize("keyed", [True, False], ids=["provisioned", "not-provisioned"])
async def test_two_replicas_creating_one_contact_make_one_row_in_a_provisioned_org(
    box: Sandbox, gateways: dict[SourceSystem, CrmGateway], keyed: bool
) -> None:
    if keyed:
        await provisioned(box)
    event = await created(gateways[HS], {"email": "zombie@example.com", "firstname": "Zed"})
    actions = await two_replicas_apply(gateways, event)
    emails = [r.values.get("emailaddress1") for r in box.dataverse.store.rows("contact")]
    assert actions.count("create") == 2  # each replica believed it created the row
    if keyed:
        assert emails.count("zombie@example.com") == 1, "two replicas made a duplicate in a provisioned org"
    else:
        assert emails.count("zombie@example.com") == 2  # what `cdc provision` prevents (and warns about)


async def test_two_replicas_creating_one_hubspot_contact_make_one_record_in_a_provisioned_org(
    box: Sandbox, gateways: dict[SourceSystem, CrmGateway]
) -> None:
    await provisioned(box)
    event = await created(gateways[DV], {"emailaddress1": "zombie-dv@example.com", "lastname": "Zed"})
    actions = await two_replicas_apply(gateways, event)
    emails = [r.properties.get("email") for r in box.hubspot.store.records["contacts"].values()]
    assert actions.count("create") == 2
    assert emails.count("zombie-dv@example.com") == 1


async def test_a_batch_whose_partitions_moved_writes_nothing(
    box: Sandbox, gateways: dict[SourceSystem, CrmGateway]
) -> None:
    """The apply loop asks before every gateway write whether the batch's partitions are still this
    replica's (a rebalance counts a generation); once they moved, no write is sent and the batch fails
    with `BatchRevokedError` (the loop drops it uncommitted; the new owner applies it)."""
    config = small_config()
    items = routes(config, {}, await created(gateways[HS], {"email": "moved@example.com"}))
    with pytest.raises(BatchRevokedError, match="not sent: the partitions moved"):
        await Applier(config, gateways, LinkIndex()).apply(items, owned=lambda: False)
    emails = [r.values.get("emailaddress1") for r in box.dataverse.store.rows("contact")]
    assert "moved@example.com" not in emails
