"""The record ids the `links` topic holds, for the pollers' delete checks.

A delete the source's feed never reported (a Dataverse row deleted while its delta token expired, a HubSpot
delete whose webhook HubSpot gave up on) matters only for records that are linked: the pollers compare the
records they can still see against these ids and publish the deletes of the linked ones that are gone.
"""

from __future__ import annotations

from streams.config import KafkaSettings
from streams.keys import SourceSystem
from streams.link_view import LinkView
from streams.topics import TopicCatalog

__all__ = ["linked_ids"]


async def linked_ids(kafka: KafkaSettings, system: SourceSystem, tenant: str, object_type: str) -> set[str]:
    """Ids (lower case) of ``system``'s ``object_type`` records of ``tenant`` that some link holds; the
    `links` topic is read whole, once per call."""
    view = LinkView(kafka, TopicCatalog.from_settings(kafka))
    try:
        await view.load()
    finally:
        await view.close()
    sides = (link.side(system) for link in view.index)
    return {s.object_id.lower() for s in sides if s.object_type == object_type and s.tenant == tenant}
