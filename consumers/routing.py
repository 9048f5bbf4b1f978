"""Routing: which pair a change belongs to, and the key that gives each pair one owner (guarantee 4).

Pure. A change of a linked record goes to its link's route; before linking, to its match key's route, so
two new records with the same email created at once on both sides meet on one partition; a record with
no match key goes to its own route.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from consumers.config import MatchRule, Pair, SyncConfig
from consumers.matching import match_key
from streams.codec import Scalar
from streams.events import ChangeEvent, Operation
from streams.keys import SourceSystem
from streams.link_store import CommittedLinks
from streams.links import Link
from streams.work import WorkItem, link_route, match_route, record_route

__all__ = ["Lookup", "link_of", "match_field", "needs_lookup", "route", "routes"]


@dataclass(frozen=True, slots=True)
class Lookup:
    """What to read of a changed record before its change can be routed: these properties, of the live
    record, or of the archived one (a delete; the read brings the ids merged into it, `Record.merged_ids`)."""

    fields: tuple[str, ...]
    archived: bool = False


def _rule(config: SyncConfig, pair: Pair, system: SourceSystem) -> tuple[MatchRule, str] | None:
    """The pair's match rule and which of its sides ("source"/"target") this system is."""
    for step in config.steps_for(pair):
        return step.match, ("source" if step.source.system is system else "target")
    return None


def match_field(config: SyncConfig, pair: Pair, system: SourceSystem) -> str | None:
    found = _rule(config, pair, system)
    if found is None:
        return None
    rule, side = found
    return rule.source if side == "source" else rule.target


def _values(event: ChangeEvent) -> Mapping[str, Scalar]:
    return event.record if event.record is not None else event.changed_properties


def needs_lookup(config: SyncConfig, index: CommittedLinks, event: ChangeEvent) -> Lookup | None:
    """What to fetch of an unlinked record before routing its change, else None: the match property
    when the change does not carry it (a HubSpot creation or property webhook); for the delete of a
    HubSpot record no link knows, its archived record (its merged ids and match property), in case it is
    the survivor of a merge whose webhook was lost (a deleted Dataverse row cannot be read at all)."""
    if link_of(index, event) is not None:
        return None
    names = [
        name
        for pair in config.pairs_of(event.source, event.object_type)
        if (name := match_field(config, pair, event.source)) is not None and name not in _values(event)
    ]
    if event.operation is Operation.DELETE:
        if event.source is SourceSystem.HUBSPOT and config.pairs_of(event.source, event.object_type):
            return Lookup(fields=tuple(dict.fromkeys(names)), archived=True)
        return None
    return Lookup(fields=(names[0],)) if names else None


def link_of(index: CommittedLinks, event: ChangeEvent) -> Link | None:
    """The link of the changed record: by its own id, or (a HubSpot record a merge made, whose merge
    has not reached the links yet) by an id merged into it (`ChangeEvent.merged_ids`)."""
    link = index.find(event.ref)
    if link is not None or event.source is not SourceSystem.HUBSPOT:
        return link
    for old in event.merged_ids:
        link = index.find(event.ref.model_copy(update={"object_id": old}))
        if link is not None:
            return link
    return None


def route(config: SyncConfig, index: CommittedLinks, event: ChangeEvent, pair: Pair) -> str:
    link = link_of(index, event)
    if link is not None:
        return link_route(link.link_id)
    found = _rule(config, pair, event.source)
    if found is not None:
        rule, side = found
        key = match_key(rule, _values(event), side="source" if side == "source" else "target")
        if key is not None:
            return match_route(str(pair), key)
    return record_route(str(pair), event.ref.key)


def routes(config: SyncConfig, index: CommittedLinks, event: ChangeEvent) -> list[WorkItem]:
    """One work item per pair the changed record takes part in (none for objects no step syncs)."""
    return [
        WorkItem(pair=str(pair), route=route(config, index, event, pair), change=event)
        for pair in config.pairs_of(event.source, event.object_type)
    ]
