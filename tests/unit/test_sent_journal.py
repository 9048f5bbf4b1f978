"""A replica killed after its writes landed but before its link update committed: the replica that takes
over knows those writes from the notes the first one kept before sending them (`streams.sent_log`), not
only from HubSpot's property history (`tests/unit/test_own_writes.py`), which cannot vouch for an
association or for anything written to Dataverse.

The sequence (chaos seeds 136 and 141): a field changes on one side (e12 -> e65); replica A writes e65 to the
other side and dies before its Kafka transaction commits; the user then edits the first side again (e197).
Replica B reads the other side's e65 and the user's e197, both unlike the link's e12: a conflict. Without
A's notes, B takes e65 for a user's edit, and when the conflict rule favours that side, writes the old e65
over the user's newer e197. With them, e65 counts as synced and e197 flows.

The CRMs are in memory and neither vouches for a write through history (as Dataverse never can); the
journal is a list standing in for the topic, which `tests/integration/test_sent_log.py` runs on Kafka."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from consumers.applier import Applier
from consumers.config import SyncConfig
from consumers.sent import SentValues
from streams.events import Operation
from streams.keys import SourceSystem
from tests.unit.batch_world import CONFIG, DV, HS, change, index_of, item
from tests.unit.test_own_writes import Crm, pair, written


class Journal:
    """The notes every replica would read back from the `sync.sent` topic, and when they were kept."""

    def __init__(self, *crms: Crm) -> None:
        self.kept: list[tuple[str, dict[str, tuple[str, str]]]] = []
        self.crms = crms
        self.writes_before_kept: list[int] = []

    async def record(self, notes: Mapping[str, Mapping[str, tuple[str, str]]]) -> None:
        self.writes_before_kept.append(sum(len(crm.writes) for crm in self.crms))
        self.kept += [(key, dict(fields)) for key, fields in notes.items()]

    def read_back(self) -> SentValues:
        """A replica starting now: it takes in every note kept."""
        sent = SentValues()
        for key, fields in self.kept:
            sent.absorb(key, fields)
        return sent


def favouring(system: SourceSystem) -> SyncConfig:
    raw = CONFIG.model_dump(mode="json")
    policy = "source_of_truth:hubspot" if system is HS else "source_of_truth:dynamics"
    raw["steps"] = [{**step, "conflict": policy} for step in raw["steps"]]
    return SyncConfig.model_validate(raw)


CITY = {HS: "city", DV: "address1_city"}


def set_city(crm: Crm, object_id: str, value: str) -> None:
    """A write landing, or a user's edit, on one record's city."""
    record = crm.records[object_id]
    crm.records[object_id] = replace(record, values={**record.values, CITY[crm.system]: value})


@pytest.mark.parametrize("written_to", [HS, DV], ids=["written-to-hubspot", "written-to-dataverse"])
async def test_a_killed_replicas_write_does_not_overwrite_the_users_newer_edit(
    written_to: SourceSystem,
) -> None:
    source = written_to.other
    config = favouring(written_to)  # the side the killed replica wrote wins conflicts: the worst case
    start = {HS: "e12", DV: "e12"}
    hs, dv, linked = pair(start[HS], start[DV], city_history=[])
    crms = {HS: hs, DV: dv}
    target_id, source_id = ("h1", "d1") if written_to is HS else ("d1", "h1")
    set_city(crms[source], source_id, "e65")
    journal = Journal(hs, dv)

    a = Applier(config, {HS: hs, DV: dv}, index_of(linked), journal=journal)
    await a.apply([item(change(source, source_id, Operation.UPDATE), linked)], owned=lambda: True)
    assert written(crms[written_to]) == [{CITY[written_to]: "e65"}]
    assert journal.writes_before_kept == [0]  # kept before anything was sent
    set_city(crms[written_to], target_id, "e65")  # the write landed...
    # ...and replica A died: no commit, its link still says e12 on both sides.

    set_city(crms[source], source_id, "e197")  # the user's newer edit
    for crm in crms.values():
        crm.writes.clear()
    b = Applier(config, {HS: hs, DV: dv}, index_of(linked), sent=journal.read_back())
    await b.apply([item(change(source, source_id, Operation.UPDATE), linked)], owned=lambda: True)
    assert written(crms[written_to]) == [{CITY[written_to]: "e197"}]
    assert written(crms[source]) == []  # before: [{city: "e65"}], the daemon's own echo over the user's e197


async def test_without_the_notes_the_takeover_loses_the_users_edit() -> None:
    """The failure the journal prevents, shown with a replica that starts with nothing kept."""
    hs, dv, linked = pair("e12", "e197", city_history=[])
    set_city(dv, "d1", "e65")  # what the killed replica wrote
    set_city(hs, "h1", "e197")  # the user's newer edit
    b = Applier(favouring(DV), {HS: hs, DV: dv}, index_of(linked))
    await b.apply([item(change(HS, "h1", Operation.UPDATE), linked)], owned=lambda: True)
    assert written(hs) == [{"city": "e65"}]


def test_a_commit_clears_what_it_covers_and_nothing_else() -> None:
    _, _, linked = pair("e12", "e12", city_history=[])
    sent = SentValues()
    sent.absorb(linked.hubspot.key, {"city": ("fp", "address1_city")})
    sent.absorb("dataverse/org/contact/d9", {"address1_city": ("fp", "city")})
    assert sent.pending([linked, None]) == [linked.hubspot.key]
    sent.forget([linked])
    assert sent.pending([linked]) == []
    assert len(sent) == 1
    sent.absorb("dataverse/org/contact/d9", None)  # another replica's commit cleared it
    assert len(sent) == 0
