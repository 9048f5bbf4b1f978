"""Before routing: what a change must carry to find its pair, read from the CRM it came from.

An unlinked record's change that lacks its match property (a HubSpot creation or property webhook) gets it
read; the delete of a HubSpot record no link knows gets its archived record's merged ids read, so the
survivor of a merge whose webhook was lost reaches the pair the merge continued (`routing.needs_lookup`
decides what; this does the reads, batched per object). A record created in the batch whose changes carry
the match property (an API create's webhooks) is not read for it (`answered`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from consumers.config import SyncConfig
from consumers.ports import CrmGateway, Record
from consumers.routing import Lookup, linked, needs_lookup
from streams.codec import Scalar
from streams.events import ChangeEvent, Operation
from streams.keys import SourceSystem
from streams.link_store import CommittedLinks

__all__ = ["answered", "carried", "enrich"]


def carried(events: Sequence[ChangeEvent]) -> dict[str, dict[str, Scalar]]:
    """Per record created in the batch (its creation is one of the changes), the latest value of each
    property the batch's changes of it carry, in batch order; a record deleted in the batch is left out."""
    told: dict[str, dict[str, Scalar]] = {}
    created: set[str] = set()
    for event in events:
        if event.operation is Operation.DELETE:
            created.discard(event.key)
            told.pop(event.key, None)
            continue
        if event.operation is Operation.CREATE:
            created.add(event.key)
        values = event.record if event.record is not None else event.changed_properties
        told.setdefault(event.key, {}).update(values)
    return {key: values for key, values in told.items() if key in created}


def answered(
    told: Mapping[str, Mapping[str, Scalar]], event: ChangeEvent, lookup: Lookup
) -> dict[str, Scalar] | None:
    """The match fields a live record's read would bring for routing, when the changes of a record created
    in the batch carry them (an API create's webhooks: the creation, which carries no property, beside a
    ``propertyChange`` per property set, the email's among them). The read would give the record's state
    now, which the batch's latest values are, or precede by at most the batch; a record created in the
    batch has no merge history for the read to bring. None: read it."""
    if lookup.archived:
        return None
    values = told.get(event.key, {})
    if not all(name in values for name in lookup.fields):
        return None
    return {name: values[name] for name in lookup.fields}


async def enrich(
    config: SyncConfig,
    index: CommittedLinks,
    gateways: Mapping[SourceSystem, CrmGateway],
    events: Sequence[ChangeEvent],
) -> list[ChangeEvent]:
    """The events, each unlinked one with what `needs_lookup` names merged into its changed properties
    (values the change carries win)."""
    links = linked(index, events)
    lookups = [needs_lookup(config, links, event) for event in events]
    told = carried(events)
    found: dict[tuple[SourceSystem, str, bool, str], Record] = {}
    wanted: dict[tuple[SourceSystem, str, bool], tuple[set[str], set[str]]] = {}
    for event, lookup in zip(events, lookups, strict=True):
        if lookup is not None and (values := answered(told, event, lookup)) is not None:
            found[(event.source, event.object_type, False, event.object_id)] = Record(
                event.object_type, event.object_id, values
            )
        elif lookup is not None:
            fields, ids = wanted.setdefault(
                (event.source, event.object_type, lookup.archived), (set(), set())
            )
            fields.update(lookup.fields)
            ids.add(event.object_id)
    if not wanted and not found:
        return list(events)
    for (system, object_type, archived), (fields, ids) in wanted.items():
        records = await gateways[system].read(
            object_type, sorted(ids), fields=sorted(fields), archived=archived
        )
        for object_id, record in records.items():
            found[(system, object_type, archived, object_id)] = record
    out = []
    for event, lookup in zip(events, lookups, strict=True):
        extra = (
            None
            if lookup is None
            else found.get((event.source, event.object_type, lookup.archived, event.object_id))
        )
        if extra is None:
            out.append(event)
            continue
        changed = {**extra.values, **event.changed_properties}
        merged_ids = event.merged_ids or extra.merged_ids
        out.append(event.model_copy(update={"changed_properties": changed, "merged_ids": merged_ids}))
    return out
