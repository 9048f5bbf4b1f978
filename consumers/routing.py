"""Routing: which pair a change belongs to, and the key that gives each pair one owner (guarantee 4).

Pure, over `Linked`: the links of a batch's records, read from the link store in one query per batch
(`linked`), not one per change; routing needs their ids only, never a decoded link.

A change of a linked record goes to its link's route; before linking, to its match key's route, so
two new records with the same email created at once on both sides meet on one partition; a record with
no match key goes to its own route.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from consumers.config import MatchRule, Pair, SyncConfig
from consumers.matching import match_key
from streams.codec import Scalar
from streams.events import ChangeEvent, Operation
from streams.keys import SourceSystem, join_key
from streams.link_store import CommittedLinks
from streams.work import WorkItem, link_route, match_route, record_route

__all__ = ["Linked", "Lookup", "link_of", "linked", "match_field", "needs_lookup", "route", "routes"]

Linked = Mapping[str, str]
"""Record keys -> the id of the link holding each (a key no link holds is absent)."""


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


def needs_lookup(config: SyncConfig, links: Linked, event: ChangeEvent) -> Lookup | None:
    """What to fetch of an unlinked record before routing its change, else None: the match property
    when the change does not carry it (a HubSpot creation or property webhook); for the delete of a
    HubSpot record no link knows, its archived record (its merged ids and match property), in case it is
    the survivor of a merge whose webhook was lost (a deleted Dataverse row cannot be read at all)."""
    if link_of(links, event) is not None:
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


def _keys(event: ChangeEvent) -> Iterator[str]:
    """The record keys a change may be linked by: its record's, then (a HubSpot record a merge made, whose
    merge has not reached the links yet) those of the ids merged into it (`ChangeEvent.merged_ids`)."""
    yield event.key
    if event.source is SourceSystem.HUBSPOT:
        for old in event.merged_ids:
            yield join_key(event.source, event.tenant, event.object_type, old)


def linked(index: CommittedLinks, events: Iterable[ChangeEvent]) -> dict[str, str]:
    """The links of these changes' records, as routing needs them: one lookup for them all."""
    return index.link_ids(key for event in events for key in _keys(event))


def link_of(links: Linked, event: ChangeEvent) -> str | None:
    """The id of the changed record's link: by its own id, or by an id merged into it (`_keys`)."""
    return next((link_id for key in _keys(event) if (link_id := links.get(key)) is not None), None)


def route(config: SyncConfig, links: Linked, event: ChangeEvent, pair: Pair) -> str:
    link_id = link_of(links, event)
    if link_id is not None:
        return link_route(link_id)
    found = _rule(config, pair, event.source)
    if found is not None:
        rule, side = found
        key = match_key(rule, _values(event), side="source" if side == "source" else "target")
        if key is not None:
            return match_route(str(pair), key)
    return record_route(str(pair), event.key)


def routes(config: SyncConfig, links: Linked, event: ChangeEvent) -> list[WorkItem]:
    """One work item per pair the changed record takes part in (none for objects no step syncs)."""
    return [
        WorkItem(pair=str(pair), route=route(config, links, event, pair), change=event)
        for pair in config.pairs_of(event.source, event.object_type)
    ]
