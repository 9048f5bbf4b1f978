"""Which fields the sync tracks per pair, reads per object and looks up, worked out once from the
configuration rather than per change and per read. Pure."""

from __future__ import annotations

from consumers.config import COUNTERPART_ID, FORMATTED_VALUE, Pair, SyncConfig, ValueType
from consumers.planner import ASSOCIATION_PREFIX, tracked_fields
from streams.keys import SourceSystem

__all__ = ["FieldSets"]


class FieldSets:
    def __init__(self, config: SyncConfig) -> None:
        self.config = config
        self._tracked: dict[Pair, dict[SourceSystem, dict[str, ValueType]]] = {}
        self._lookups: dict[Pair, list[tuple[str, SourceSystem, str]]] = {}
        self._reads: dict[tuple[SourceSystem, str], tuple[list[str], list[str]]] = {}

    def tracked(self, pair: Pair) -> dict[SourceSystem, dict[str, ValueType]]:
        """`consumers.planner.tracked_fields` of a pair."""
        tracked = self._tracked.get(pair)
        if tracked is None:
            tracked = self._tracked[pair] = tracked_fields(self.config, pair)
        return tracked

    def lookups(self, pair: Pair) -> list[tuple[str, SourceSystem, str]]:
        """(lookup kind, source system, source field) of a pair's fields that need a lookup read (a
        formatted value is read as such)."""
        found = self._lookups.get(pair)
        if found is None:
            found = self._lookups[pair] = [
                (f.lookup, step.source.system, f.source)
                for step in self.config.steps_for(pair)
                for f in step.active_fields()
                if f.lookup is not None and f.lookup != FORMATTED_VALUE
            ]
        return found

    def reads(self, system: SourceSystem, object_type: str) -> tuple[list[str], list[str]]:
        """(properties, association keys) to read of an object: what its pairs track, match on and filter
        by; the counterpart's id (the planner stamps it where it is missing, untracked). (A read always
        brings the ids merged into a record, `Record.merged_ids`.)"""
        found = self._reads.get((system, object_type))
        if found is not None:
            return found
        props: set[str] = {COUNTERPART_ID[system]}
        assocs: set[str] = set()
        for pair in self.config.pairs_of(system, object_type):
            for name in self.tracked(pair)[system]:
                if name.startswith(ASSOCIATION_PREFIX):
                    assocs.add(name[len(ASSOCIATION_PREFIX) :])
                else:
                    props.add(name)
            for step in self.config.steps_for(pair):
                if step.source.system is system:
                    props.add(step.match.source)
                    if step.filter is not None:
                        if step.filter.flag:
                            props.add(step.filter.flag)
                        props.update(c.field for c in step.filter.criteria)
                else:
                    props.add(step.match.target)
        found = self._reads[(system, object_type)] = (sorted(props), sorted(assocs))
        return found
