"""Links, changes and batches for the applier's pure decisions (`consumers.units`, `consumers.merges`,
`consumers.settle`), with the packaged standard-fields configuration: HubSpot contacts <-> Dataverse
contacts matched by email, companies <-> accounts by name. No I/O: a batch here is the link store and what
the decisions return, as the applier would stage it."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from consumers.batch import Batch
from consumers.config import Pair, SyncConfig
from consumers.fieldsets import FieldSets
from consumers.loader import standard_fields_config
from consumers.owners import Owner
from consumers.ports import FieldInfo, Record
from consumers.routing import linked, routes
from consumers.values import canonical
from streams.codec import Scalar
from streams.events import ChangeEvent, Merge, Operation, Origin
from streams.keys import SourceSystem
from streams.link_store import LinkIndex
from streams.links import FieldSync, Link, LinkSide, fingerprint, link_id_for
from streams.work import WorkItem

HS = SourceSystem.HUBSPOT
DV = SourceSystem.DATAVERSE
TENANTS = {HS: "portal-1", DV: "org.crm.dynamics.com"}
AT = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
CONTACTS = Pair(hubspot="contact", dataverse="contact")
CONFIG = standard_fields_config()
FIELDS = FieldSets(CONFIG)


def propagating() -> SyncConfig:
    """The standard fields with deletes propagated both ways."""
    raw = CONFIG.model_dump(mode="json")
    raw["steps"] = [{**step, "deletes": "propagate"} for step in raw["steps"]]
    return SyncConfig.model_validate(raw)


def synced(system: SourceSystem, values: Mapping[str, Scalar], pair: Pair = CONTACTS) -> dict[str, FieldSync]:
    """The link's record of these values as last synced on one side."""
    tracked = FIELDS.tracked(pair)[system]
    return {
        prop: FieldSync(fingerprint=fingerprint(canonical(value, tracked[prop], system)), synced_at=AT)
        for prop, value in values.items()
    }


def side(
    system: SourceSystem,
    object_id: str,
    values: Mapping[str, Scalar] | None = None,
    *,
    merged: tuple[str, ...] = (),
    object_type: str = "contact",
) -> LinkSide:
    return LinkSide(
        system=system,
        tenant=TENANTS[system],
        object_type=object_type,
        object_id=object_id,
        fields=synced(system, values or {}),
        merged_ids=merged,
    )


def link(
    hubspot_id: str,
    dataverse_id: str,
    *,
    revision: int = 1,
    hubspot: Mapping[str, Scalar] | None = None,
    dataverse: Mapping[str, Scalar] | None = None,
    merged: tuple[str, ...] = (),
    waiting_for: tuple[str, ...] = (),
) -> Link:
    """A pair of contacts (its id from the ids it was made with, as the applier makes it)."""
    hs, dv = side(HS, hubspot_id, hubspot, merged=merged), side(DV, dataverse_id, dataverse)
    return Link(
        link_id=link_id_for(side(HS, hubspot_id).ref, dv.ref),
        hubspot=hs,
        dataverse=dv,
        revision=revision,
        created_at=AT,
        updated_at=AT,
        waiting_for=waiting_for,
    )


def index_of(*links: Link) -> LinkIndex:
    index = LinkIndex()
    index.commit((ln.link_id, ln) for ln in links)
    return index


def batch_of(*links: Link, dry_run: bool = False) -> Batch:
    return Batch(index_of(*links), TENANTS, dry_run=dry_run)


def change(
    system: SourceSystem,
    object_id: str,
    operation: Operation = Operation.UPDATE,
    *,
    at: datetime = AT,
    **extra: object,
) -> ChangeEvent:
    return ChangeEvent.model_validate(
        {
            "source": system,
            "tenant": TENANTS[system],
            "object_type": "contact",
            "object_id": object_id,
            "operation": operation,
            "origin": Origin.WEBHOOK if system is HS else Origin.CHANGE_TRACKING,
            "occurred_at": at,
            "received_at": at + timedelta(seconds=1),
            **extra,
        }
    )


def merge_of(primary: str, *merged: str, survivor: str | None = None, at: datetime = AT) -> ChangeEvent:
    """A HubSpot merge event of contacts: ``merged`` into ``primary``, the survivor under a new id when
    given (HubSpot's merge makes one), else the primary's."""
    told = Merge(primary_object_id=primary, merged_object_ids=merged, new_object_id=survivor)
    return change(HS, primary, Operation.MERGE, merge=told, at=at)


def item(event: ChangeEvent, *links: Link) -> WorkItem:
    """The change as the router routes it, with these links committed."""
    [routed] = routes(CONFIG, linked(index_of(*links), [event]), event)
    return routed


class NoMatches:
    """The parts of an in-memory CRM gateway tests leave alone: no match lookups, no field lookups, no
    value HubSpot's history names as this daemon's own write. Subclasses add ``read`` and ``write``; owners,
    metadata and options answer nothing."""

    def __init__(self, system: SourceSystem) -> None:
        self.system = system
        self.tenant = TENANTS[system]

    async def find(
        self, object_type: str, field: str, values: Sequence[str], **_: object
    ) -> dict[str, list[Record]]:
        del object_type, field, values
        return {}

    async def own_writes(
        self, object_type: str, ids: Sequence[str], *, fields: Sequence[str]
    ) -> dict[str, dict[str, Scalar]]:
        del object_type, ids, fields
        return {}

    async def lookup(self, kind: str, keys: Sequence[str]) -> dict[str, str]:
        del kind, keys
        return {}

    async def owners(self, *, refresh: bool = False) -> list[Owner]:
        del refresh
        return []

    async def fields(self, object_type: str, with_options: Collection[str]) -> dict[str, FieldInfo]:
        del object_type, with_options
        return {}

    async def option_labels(self, object_type: str, field: str) -> dict[str, str]:
        raise LookupError(f"no metadata here: {object_type}.{field}")
