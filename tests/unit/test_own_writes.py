"""A value this daemon wrote to HubSpot whose link update never committed is no user's edit (chaos seed 136).

The sequence: a contact's city changed on Dataverse (e12 -> e65); a sync replica wrote e65 to HubSpot and
was SIGKILLed before its Kafka transaction (link update and audit) committed, so its in-memory
`SentValues` died with it; the user then edited the Dataverse city again (e197). The replica that takes the
partition over reads HubSpot e65 and Dataverse e197, both unlike the link's e12: a conflict, which
``step_order`` gave to HubSpot, writing the old e65 over the user's newer e197. HubSpot's property history
(``propertiesWithHistory``: ``sourceType`` INTEGRATION with ``sourceId`` the app id for an app's writes,
fact sheet reference/hubspot.md §3.3 and §6) names the daemon as e65's writer, so e65 counts as synced.

The applier here runs with in-memory CRMs; the HubSpot one answers history through
`cdc.hubspot.history.own_values`, as the real gateway does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from cdc.hubspot.history import own_values
from consumers.applier import Applier
from consumers.ports import Record, WriteOp, WriteOutcome
from streams.codec import Scalar
from streams.events import Operation
from streams.keys import SourceSystem
from streams.links import Link
from tests.unit.batch_world import AT, CONFIG, DV, HS, NoMatches, change, index_of, item, link

APP = "1160452"
EMAIL = "dana@example.com"


def stamp(seconds: int) -> str:
    return (AT + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


class Crm(NoMatches):
    """One CRM's records in memory; HubSpot's with each property's history, newest first."""

    def __init__(
        self, system: SourceSystem, records: dict[str, Record], history: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(system)
        self.records = records
        self.history = dict(history or {})
        self.writes: list[WriteOp] = []
        self.history_reads: list[tuple[str, list[str], list[str]]] = []

    async def read(self, object_type: str, ids: Sequence[str], **_: object) -> dict[str, Record]:
        del object_type
        return {i: self.records[i] for i in ids if i in self.records}

    async def own_writes(
        self, object_type: str, ids: Sequence[str], *, fields: Sequence[str]
    ) -> dict[str, dict[str, Scalar]]:
        """As `cdc.hubspot.gateway.HubSpotGateway.own_writes` decides it (Dataverse: nothing known)."""
        self.history_reads.append((object_type, list(ids), list(fields)))
        found: dict[str, dict[str, Scalar]] = {}
        for i in ids:
            history = {"propertiesWithHistory": self.history.get(i, {})}
            if self.system is HS and (own := own_values(history, fields, APP)):
                found[i] = dict(own)
        return found

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        self.writes += ops
        return [WriteOutcome(op.ref, ok=True, object_id=op.object_id) for op in ops]


def written(crm: Crm) -> list[dict[str, Scalar]]:
    return [dict(op.values) for op in crm.writes]


def pair(hs_city: str, dv_city: str, *, city_history: list[dict[str, Any]]) -> tuple[Crm, Crm, Link]:
    """The pair as the replica taking over finds it: the link last synced at e12 on both sides."""
    linked = link(
        "h1",
        "d1",
        hubspot={"email": EMAIL, "city": "e12"},
        dataverse={"emailaddress1": EMAIL, "address1_city": "e12"},
    )
    hs = Crm(
        HS, {"h1": Record("contact", "h1", {"email": EMAIL, "city": hs_city})}, {"h1": {"city": city_history}}
    )
    dv = Crm(DV, {"d1": Record("contact", "d1", {"emailaddress1": EMAIL, "address1_city": dv_city})})
    return hs, dv, linked


async def apply(hs: Crm, dv: Crm, linked: Link, system: SourceSystem, object_id: str) -> None:
    applier = Applier(CONFIG, {HS: hs, DV: dv}, index_of(linked))
    await applier.apply([item(change(system, object_id, Operation.UPDATE), linked)], owned=lambda: True)


async def test_our_unrecorded_hubspot_write_does_not_overwrite_the_users_newer_dataverse_edit() -> None:
    ours_last = [
        {"value": "e65", "timestamp": stamp(5), "sourceType": "INTEGRATION", "sourceId": APP},
        {"value": "e12", "timestamp": stamp(0), "sourceType": "CRM_UI", "sourceId": "userId:7"},
    ]
    hs, dv, linked = pair("e65", "e197", city_history=ours_last)
    await apply(hs, dv, linked, DV, "d1")  # the user's e197 on Dataverse
    assert written(dv) == []  # before the fix: [{"address1_city": "e65"}], the user's e197 lost
    assert written(hs) == [{"city": "e197"}]
    assert hs.history_reads == [("contact", ["h1"], ["city"])]  # one read, of the conflicting field


async def test_a_users_hubspot_edit_after_our_write_still_wins_the_conflict() -> None:
    user_last = [
        {"value": "e66", "timestamp": stamp(9), "sourceType": "CRM_UI", "sourceId": "userId:7"},
        {"value": "e65", "timestamp": stamp(5), "sourceType": "INTEGRATION", "sourceId": APP},
    ]
    hs, dv, linked = pair("e66", "e197", city_history=user_last)
    await apply(hs, dv, linked, DV, "d1")
    assert written(dv) == [{"address1_city": "e66"}]  # step_order: HubSpot's edit wins, as configured
    assert written(hs) == []


async def test_another_apps_write_is_a_change_like_a_users() -> None:
    other_app = [{"value": "e65", "timestamp": stamp(5), "sourceType": "INTEGRATION", "sourceId": "999"}]
    hs, dv, linked = pair("e65", "e197", city_history=other_app)
    await apply(hs, dv, linked, DV, "d1")
    assert written(dv) == [{"address1_city": "e65"}]


async def test_without_a_conflict_no_history_is_read() -> None:
    hs, dv, linked = pair("e12", "e197", city_history=[])
    await apply(hs, dv, linked, DV, "d1")
    assert written(hs) == [{"city": "e197"}]
    assert hs.history_reads == []
    assert dv.history_reads == []
