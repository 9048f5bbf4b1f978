"""Before routing: what a change must carry to find its pair, read from the CRM it came from.

An unlinked record's change that lacks its match property (a HubSpot creation or property webhook) gets it
read; the delete of a HubSpot record no link knows gets its archived record's merged ids read, so the
survivor of a merge whose webhook was lost reaches the pair the merge continued (`routing.needs_lookup`
decides what; this does the reads, batched per object).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from consumers.config import SyncConfig
from consumers.ports import CrmGateway, Record
from consumers.routing import linked, needs_lookup
from streams.events import ChangeEvent
from streams.keys import SourceSystem
from streams.link_store import CommittedLinks

__all__ = ["enrich"]


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
    wanted: dict[tuple[SourceSystem, str, bool], tuple[set[str], set[str]]] = {}
    for event, lookup in zip(events, lookups, strict=True):
        if lookup is not None:
            fields, ids = wanted.setdefault(
                (event.source, event.object_type, lookup.archived), (set(), set())
            )
            fields.update(lookup.fields)
            ids.add(event.object_id)
    if not wanted:
        return list(events)
    found: dict[tuple[SourceSystem, str, bool, str], Record] = {}
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
