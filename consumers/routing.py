"""Routing: which pair a change belongs to, and the key that gives each pair one owner (guarantee 4).

Pure. A change of a linked record goes to its link's route; before linking, to its match key's route, so
two new records with the same email created at once on both sides meet on one partition; a record with
no match key goes to its own route.
"""

from __future__ import annotations

from collections.abc import Mapping

from consumers.config import MatchRule, Pair, SyncConfig
from consumers.matching import match_key
from streams.codec import Scalar
from streams.events import ChangeEvent
from streams.keys import SourceSystem
from streams.links import LinkIndex
from streams.work import WorkItem, link_route, match_route, record_route

__all__ = ["match_field", "needs_lookup", "route", "routes"]


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


def needs_lookup(config: SyncConfig, index: LinkIndex, event: ChangeEvent) -> str | None:
    """The match property to fetch when an unlinked record's change does not carry it (a HubSpot
    creation or property webhook), else None."""
    if index.find(event.ref) is not None:
        return None
    for pair in config.pairs_of(event.source, event.object_type):
        name = match_field(config, pair, event.source)
        if name is not None and name not in _values(event):
            return name
    return None


def route(config: SyncConfig, index: LinkIndex, event: ChangeEvent, pair: Pair) -> str:
    link = index.find(event.ref)
    if link is not None:
        return link_route(link.link_id)
    found = _rule(config, pair, event.source)
    if found is not None:
        rule, side = found
        key = match_key(rule, _values(event), side="source" if side == "source" else "target")
        if key is not None:
            return match_route(str(pair), key)
    return record_route(str(pair), event.ref.key)


def routes(config: SyncConfig, index: LinkIndex, event: ChangeEvent) -> list[WorkItem]:
    """One work item per pair the changed record takes part in (none for objects no step syncs)."""
    return [
        WorkItem(pair=str(pair), route=route(config, index, event, pair), change=event)
        for pair in config.pairs_of(event.source, event.object_type)
    ]
