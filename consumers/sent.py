"""What updates were sent to set, until a committed link covers it. Pure, no I/O.

A batch that fails after some of its writes landed (a 429 on the next call) is read again. A value that is
exactly what was sent is this daemon's write, not a user's edit: the retry counts it as synced
(`SentValues.covering`), else it would take it for the newer change and let it overwrite the other side's
newer one.

Unless both sides of one mapping hold what was sent to them: two failed attempts each wrote one side (one
the other's value, the next the other way round), and the users then picked those very values, so the
sides disagree while each looks like our write. Taking both for ours would leave the pair apart for good
(the chaos test's company race, where only three companies are picked from); neither is taken for ours,
and the pair's conflict rule settles it.

The notes would die with the replica: one killed after its writes landed but before its link update
committed would leave the replica that takes the partition over nothing to recognise them by. So each note is
also made durable before its write is sent (`consumers.ports.SentJournal`, the `sync.sent` topic), and
every replica takes in the others' notes (`absorb`): the one that takes a partition over holds what its
last owner sent. The CRM's own record of who wrote a value (`CrmGateway.own_writes`: HubSpot's property
history) covers a field the same way (`covered_by_own`), for notes the journal could not keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from consumers.config import ValueType
from consumers.planner import ASSOCIATION_PREFIX, PairPlan, SideWrite, field_value
from consumers.ports import Record
from consumers.values import canonical
from streams.codec import Scalar
from streams.keys import SourceSystem
from streams.links import FieldSync, Link, LinkSide, fingerprint

__all__ = ["MAX_SENT", "Noted", "SentValues", "covered_by_own"]

MAX_SENT = 100_000
"""Records remembered at most: those whose link never came (deleted meanwhile) go, oldest first."""

Noted = dict[str, tuple[str, str]]
"""One record's notes: tracked field -> (fingerprint of the value sent, the other side's field it came from,
or "" for a value of the daemon's own such as a sync time)."""


class SentValues:
    def __init__(self) -> None:
        self._sent: dict[str, Noted] = {}
        """Record key -> its notes."""

    def __len__(self) -> int:
        return len(self._sent)

    def note(self, key: str, write: SideWrite, plan: PairPlan) -> Noted:
        """An update of the record ``key`` about to be sent: the fingerprints of what it sets (returned)."""
        written = set(write.values) | {ASSOCIATION_PREFIX + k for k in write.associations}
        after = plan.after.get(write.system, {})
        sources = {d.target: d.source for d in write.decisions}
        noted = {prop: (fp, sources.get(prop, "")) for prop, fp in after.items() if prop in written}
        self.absorb(key, noted)
        return noted

    def absorb(self, key: str, noted: Mapping[str, tuple[str, str]] | None) -> None:
        """Notes of ``key`` made elsewhere (another replica's, read from the journal); ``None``: the link
        that covers them committed, they are no longer pending."""
        if noted is None:
            self._sent.pop(key, None)
            return
        self._sent.setdefault(key, {}).update(noted)
        while len(self._sent) > MAX_SENT:
            del self._sent[next(iter(self._sent))]

    def pending(self, links: Iterable[Link | None]) -> list[str]:
        """The keys of these links' records that have notes: what committing the links clears."""
        keys = (key for link in links if link is not None for key in (link.hubspot.key, link.dataverse.key))
        return [key for key in keys if key in self._sent]

    def forget(self, links: Iterable[Link | None]) -> None:
        """These links are committed: what they cover is no longer pending."""
        for key in self.pending(links):
            del self._sent[key]

    def covering(
        self,
        link: Link,
        records: Mapping[SourceSystem, Record | None],
        tracked: Mapping[SourceSystem, Mapping[str, ValueType]],
        now: datetime,
    ) -> Link:
        """The link as it would be had the writes of an earlier, failed attempt been committed: a field that
        holds exactly the value sent to it counts as synced, unless the field it was sent from holds what was
        sent to it too (both sides look like ours: neither is taken for ours)."""
        held: dict[SourceSystem, Noted] = {}
        for system in SourceSystem:
            record, sent = records[system], self._sent.get(link.side(system).key)
            if not sent or record is None:
                continue
            held[system] = {
                prop: (fp, source)
                for prop, (fp, source) in sent.items()
                if (value_type := tracked[system].get(prop)) is not None
                and fp == fingerprint(canonical(field_value(record, prop), value_type, system))
            }
        sides: dict[SourceSystem, LinkSide] = {}
        for system, covered in held.items():
            both = held.get(system.other, {})
            side = link.side(system)
            fields = dict(side.fields)
            for prop, (fp, source) in covered.items():
                if not (source and source in both):
                    fields[prop] = FieldSync(fingerprint=fp, synced_at=now)
            sides[system] = side.model_copy(update={"fields": fields})
        if not sides:
            return link
        return link.model_copy(
            update={
                "hubspot": sides.get(SourceSystem.HUBSPOT, link.hubspot),
                "dataverse": sides.get(SourceSystem.DATAVERSE, link.dataverse),
            }
        )


def covered_by_own(
    link: Link,
    record: Record,
    system: SourceSystem,
    own: Mapping[str, Scalar],
    tracked: Mapping[str, ValueType],
    *,
    now: datetime,
) -> Link:
    """The link as it would be had the daemon's own writes of ``own`` (field -> the value the CRM says the
    daemon wrote last) been recorded on the ``system`` side: a tracked field that still holds that value
    counts as synced. A field holding anything else keeps its fingerprint."""
    side = link.side(system)
    fields = dict(side.fields)
    for prop, value in own.items():
        value_type = tracked.get(prop)
        if value_type is None:
            continue
        held = fingerprint(canonical(field_value(record, prop), value_type, system))
        if held == fingerprint(canonical(value, value_type, system)):
            fields[prop] = FieldSync(fingerprint=held, synced_at=now)
    if fields == side.fields:
        return link
    name = "hubspot" if system is SourceSystem.HUBSPOT else "dataverse"
    return link.model_copy(update={name: side.model_copy(update={"fields": fields})})
