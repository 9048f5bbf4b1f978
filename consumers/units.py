"""Units: a batch's work items grouped by pair, and the passes they run in. Pure, no I/O.

A *unit* is one pair's work in a batch: every change of a linked pair coalesces into one unit (the current
state of both records is read, so a burst of edits costs one read and at most one write per side); an
unlinked record is a unit of its own, until two unlinked records of one match key, one on each side, pair
up. Units that share a route (two new records with one match key) run in successive passes, so the second
sees the link the first made. A change that carries nothing new for its linked pair (our own write coming
back, a re-read) is dropped here, before any read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from consumers.batch import Batch, Failure
from consumers.config import Pair, Step, SyncConfig, ValueType
from consumers.fieldsets import FieldSets
from consumers.matching import KEY_JOINER, match_key
from consumers.planner import ASSOCIATION_PREFIX
from consumers.ports import Record
from consumers.values import canonical
from streams.codec import Scalar
from streams.events import ChangeEvent, Operation, Origin
from streams.keys import SourceSystem
from streams.link_store import StagedLinks
from streams.links import Link, fingerprint
from streams.work import WorkItem

__all__ = [
    "Grouping",
    "MatchRequests",
    "Unit",
    "current",
    "first_step",
    "linked_meanwhile",
    "match_requests",
    "pair_of",
    "row_version",
    "step_name",
]

HS = SourceSystem.HUBSPOT
DV = SourceSystem.DATAVERSE


@dataclass(slots=True, eq=False)
class Unit:
    """One pair's work in a batch (compared by identity: two units are never the same work)."""

    pair: Pair
    route: str
    items: list[WorkItem]
    ids: dict[SourceSystem, str | None]
    link: Link | None = None
    attempts: int = 0
    error: str | None = None
    failed_step: str | None = None

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.change.source_event_id for i in self.items if i.change.source_event_id))

    @property
    def trigger(self) -> SourceSystem:
        return self.items[-1].change.source

    @property
    def pushed(self) -> SourceSystem | None:
        """The side an operator pushed in this unit (`cdc push`, `cdc pull`; the later push if both were)."""
        return next((i.change.source for i in reversed(self.items) if i.change.pushed), None)

    def relink(self, link: Link) -> None:
        """Continue on this link: its records are the unit's."""
        self.link = link
        self.ids = {HS: link.hubspot.object_id, DV: link.dataverse.object_id}

    def failure(self) -> Failure:
        return Failure(items=self.items, step=self.failed_step, error=self.error, attempts=self.attempts)


@functools.lru_cache(maxsize=256)
def pair_of(text: str) -> Pair:
    """The pair a work item names (``<hubspot object>~<dataverse object>``)."""
    hubspot, _, dataverse = text.partition("~")
    return Pair(hubspot=hubspot, dataverse=dataverse)


class Grouping:
    """Items in batch order into units, and units into passes (units of one route run one per pass).

    Items are added one by one, so each is grouped on the links as the batch has staged them when it comes
    (a merge or a delete earlier in the batch has moved them)."""

    def __init__(self, view: StagedLinks, fields: FieldSets) -> None:
        self.view = view
        self.fields = fields
        self.echoes = 0
        """Changes dropped: our own write coming back, or a change to nothing the pair maps."""
        self._by_key: dict[tuple[str, str], Unit] = {}
        self._per_route: dict[tuple[str, str], list[Unit]] = {}

    def add(self, item: WorkItem) -> None:
        pair = pair_of(item.pair)
        change = item.change
        link = self.view.find(change.key)
        if link is not None and nothing_new(change, self.fields.tracked(pair)[change.source], link):
            self.echoes += 1
            return
        key = (item.pair, f"link:{link.link_id}" if link else change.ref.key)
        unit = self._by_key.get(key)
        if unit is None:
            unit = Unit(pair=pair, route=item.route, items=[], ids={HS: None, DV: None})
            if link is not None:
                unit.relink(link)
            else:
                unit.ids[change.source] = change.object_id
            self._by_key[key] = unit
            self._per_route.setdefault((item.pair, item.route), []).append(unit)
        unit.items.append(item)

    def passes(self) -> list[list[Unit]]:
        passes: list[list[Unit]] = []
        for group in self._per_route.values():
            _pair_up(group)
            for n, unit in enumerate(group):
                while len(passes) <= n:
                    passes.append([])
                passes[n].append(unit)
        return passes


def nothing_new(change: ChangeEvent, tracked: Mapping[str, ValueType], link: Link) -> bool:
    """Can this change of a linked record be dropped before any read? Only when what it carries settles it:

    - an update every mapped field of which matches the link's fingerprint (an echo of our write, or a
      reconciler/poller re-read), holding them all (a full record) or touching only those (a property
      webhook): `_values_known`;
    - a Dataverse row older than the one the link was settled on: `_older_than_synced`;
    - a linked record's creation (a replay, or our own create coming back);
    - an association the link already holds, or of a type the pair does not map: `_association_known`.

    Merges, deletes, restores, removed associations and pushes always go through. ``tracked``: the fields
    the pair tracks on the change's side."""
    if change.pushed:
        return False  # a push asks for the other side to be made to match, whatever the link says
    if change.operation is Operation.CREATE:
        # The pair is linked, so this record was read (or made by this daemon) after it was created: its
        # creation, and any value it came with, is known; what changed since comes as changes of its own.
        return True
    if change.operation is Operation.ASSOCIATION:
        return _association_known(change, tracked, link)
    return change.operation in {Operation.UPDATE, Operation.UPSERT} and (
        _older_than_synced(change, link) or _values_known(change, tracked, link)
    )


def _older_than_synced(change: ChangeEvent, link: Link) -> bool:
    """A Dataverse row older than the state the link was settled on (a replay of the delta feed's history).

    A row's version number only grows (Dataverse's rowversion: every write moves it), and the link's comes
    from a read, or from a write sent with ``If-Match`` on that read's ETag, which Dataverse refuses (412)
    had the row changed since: every state before it was read. Not so for HubSpot, which has no If-Match:
    a write there may land after a user's edit it never read."""
    if change.source is not DV or change.origin is not Origin.CHANGE_TRACKING:
        return False
    row, synced = row_version(change.source_version), row_version(link.dataverse.version)
    return row is not None and synced is not None and row < synced


def row_version(version: str | None) -> int | None:
    """A Dataverse version number, bare (``123``, a delta row's) or as an ETag (``W/"123"``, a link's)."""
    digits = (version or "").removeprefix("W/").strip('"')
    return int(digits) if digits.isdigit() else None


def _values_known(change: ChangeEvent, tracked: Mapping[str, ValueType], link: Link) -> bool:
    synced = link.side(change.source).fields
    if change.record is not None:
        carried = _carried(change, tracked)
        if carried is None:
            return False
        values: Mapping[str, Scalar] = carried
        wanted = list(carried)
    else:
        values = change.changed_properties
        if not values:
            return False
        wanted = [p for p in values if p in tracked]
    for prop in wanted:
        fp = synced.get(prop)
        if fp is None or fp.fingerprint != fingerprint(
            canonical(values.get(prop), tracked[prop], change.source)
        ):
            return False
    return True


def _association_known(change: ChangeEvent, tracked: Mapping[str, ValueType], link: Link) -> bool:
    """An association added that the link already holds (``@<object>:<type id>`` fingerprints the related
    record's id), or one of a type the pair does not map (HubSpot adds its unlabeled type beside a labeled
    one). A removal, or an association whose type the event does not name, goes through: only a read tells
    what the record holds then."""
    association = change.association
    if association is None or association.removed or association.association_type_id is None:
        return False
    prop = f"{ASSOCIATION_PREFIX}{association.to_object_type}:{association.association_type_id}"
    if prop not in tracked:
        return True
    synced = link.side(change.source).fields.get(prop)
    return synced is not None and synced.fingerprint == fingerprint(
        canonical(association.to_object_id, tracked[prop], change.source)
    )


def _carried(change: ChangeEvent, tracked: Mapping[str, ValueType]) -> dict[str, Scalar] | None:
    """The tracked values a full record carries, or None when it lacks one (then only a read can tell).

    A Dataverse row carries its lookups as ``_<column>_value`` (the related record's id): the association
    ``@parentcustomerid:account`` is compared by that id, so a change of nothing but the parent account is
    a change. A HubSpot record carries no associations: their changes come as association events."""
    record = change.record or {}
    out: dict[str, Scalar] = {}
    for prop in tracked:
        if not prop.startswith(ASSOCIATION_PREFIX):
            if prop not in record:
                return None
            out[prop] = record[prop]
        elif change.source is DV:
            raw = f"_{prop[len(ASSOCIATION_PREFIX) :].partition(':')[0]}_value"
            if raw not in record:
                return None
            out[prop] = record[raw]
    return out


def _pair_up(group: list[Unit]) -> None:
    """Two unlinked records of one route (one match key), one on each side, are one pair: the units merge,
    whatever the CRMs' own searches would find (names with odd spacing, a search index lagging)."""
    unlinked = [u for u in group if u.link is None]
    hubspot = [u for u in unlinked if u.ids[HS] is not None]
    dataverse = [u for u in unlinked if u.ids[DV] is not None]
    if len(hubspot) == 1 and len(dataverse) == 1:
        keep, other = hubspot[0], dataverse[0]
        keep.ids[DV] = other.ids[DV]
        _absorb(keep, other)
        group.remove(other)


def _absorb(keep: Unit, other: Unit) -> None:
    """``other``'s changes join ``keep``'s, in the order they happened."""
    keep.items.extend(other.items)
    keep.items.sort(key=lambda i: i.change.occurred_at)


def current(units: Sequence[Unit], batch: Batch) -> list[Unit]:
    """The units of a pass on their links as the batch has staged them so far, one unit per link (two that
    now share one, such as a survivor's change and a change of the pair a merge moved to it, are one: one
    read, one plan, one link write). A unit whose link is gone (deleted or erased in this batch) is
    dropped."""
    out: list[Unit] = []
    by_link: dict[str, Unit] = {}
    for unit in units:
        if not _up_to_date(unit, batch):
            continue
        if unit.link is None:
            out.append(unit)
            continue
        first = by_link.setdefault(unit.link.link_id, unit)
        if first is unit:
            out.append(unit)
        else:
            _absorb(first, unit)
    return out


def linked_meanwhile(unit: Unit, batch: Batch) -> bool:
    """Has another replica linked this unlinked unit's record since the batch began (its link reached the
    link store, whose tail runs between any two awaits of a batch)? The unit then takes that link."""
    if unit.link is not None:
        return False
    _up_to_date(unit, batch)
    return unit.link is not None


def _up_to_date(unit: Unit, batch: Batch) -> bool:
    """Bring a unit's link up to what the batch has staged so far, before it is read and planned: a merge
    earlier in the batch may have moved it to the survivor, an earlier pass may have linked the record
    (same route). False when the pair's link is gone."""
    if unit.link is not None:
        found = batch.view.get(unit.link.link_id)
        if found is None:
            return False
    else:
        found = next(
            (
                link
                for system in (HS, DV)
                if (object_id := unit.ids[system]) is not None
                and (link := batch.linked(system, unit.pair.object_on(system), object_id)) is not None
            ),
            None,
        )
        if found is None:
            return True
    unit.relink(found)
    return True


def first_step(config: SyncConfig, pair: Pair, source: SourceSystem) -> Step | None:
    """The pair's first step from ``source``: the one that creates the record on the other side."""
    return next((s for s in config.steps_for(pair) if s.source.system is source), None)


def step_name(config: SyncConfig, unit: Unit) -> str:
    step = first_step(config, unit.pair, unit.trigger)
    return step.name if step else str(unit.pair)


MatchRequests = dict[tuple[SourceSystem, str, Step], dict[str, list[tuple[Unit, str]]]]
"""(system, object, step) -> match value to look up -> the units asking, with their match key."""


def match_requests(
    units: Sequence[Unit], record: Callable[[Unit, SourceSystem], Record | None], config: SyncConfig
) -> MatchRequests:
    """What to look up for first sync: each unlinked unit with one side looks its other side up by the match
    value of the side it has (``record``: a unit's record on one side, as read)."""
    requests: MatchRequests = {}
    for unit in units:
        if unit.link is not None or (unit.ids[HS] is not None and unit.ids[DV] is not None):
            continue  # linked, or paired within the batch
        have = HS if unit.ids[HS] is not None else DV
        rec = record(unit, have)
        step = first_step(config, unit.pair, have)
        if rec is None or step is None:
            continue
        key = match_key(step.match, rec.values, side="source")
        raw = rec.values.get(step.match.source)
        if key is not None and isinstance(raw, str):
            lookup = (have.other, unit.pair.object_on(have.other), step)
            for value in _lookup_values(step, raw, key):
                requests.setdefault(lookup, {}).setdefault(value, []).append((unit, key))
    return requests


def _lookup_values(step: Step, raw: str, key: str) -> tuple[str, ...]:
    """The values to ask the other CRM for; the candidates' match keys then decide.

    The CRMs compare exactly (bar case): a name or email is asked as written and with its spacing
    normalized. A domain is asked as its host, bare and with ``www.`` (a HubSpot ``domain`` holds a host);
    the gateway finds a Dataverse ``websiteurl`` *containing* it (`CrmGateway.find`), as it holds a URL."""
    if step.match.kind == "domain":
        host = key.partition(KEY_JOINER)[0]
        return (host, "www." + host)
    return tuple(dict.fromkeys((raw.strip(), " ".join(raw.split()))))
