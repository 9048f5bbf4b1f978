"""A batch's independent CRM calls go out at once (`consumers.concurrent`): the reads of both systems, the
writes of both systems, and a gateway's 100-id chunks. Each of them is a round trip of 100-300 ms on the
real services, so a pass that waits for their sum instead of the slowest one is what made a batch take
seconds. A failure still waits for its siblings: a write on the wire is never cancelled halfway."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from consumers.applier import Applier
from consumers.concurrent import concurrently
from consumers.ports import Record, WriteOp, WriteOutcome
from streams.events import Operation
from streams.keys import SourceSystem
from tests.unit.batch_world import CONFIG, DV, HS, NoMatches, change, index_of, item, link


class InFlight:
    """Calls under way now, and the most at once, per kind of call."""

    def __init__(self) -> None:
        self.now: dict[str, int] = {}
        self.most: dict[str, int] = {}

    async def call(self, kind: str) -> None:
        self.now[kind] = self.now.get(kind, 0) + 1
        self.most[kind] = max(self.most.get(kind, 0), self.now[kind])
        try:
            await asyncio.sleep(0.02)
        finally:
            self.now[kind] -= 1


class SlowCrm(NoMatches):
    """One CRM in memory whose reads and writes take a round trip."""

    def __init__(self, system: SourceSystem, records: dict[str, Record], flight: InFlight) -> None:
        super().__init__(system)
        self.records, self.flight = records, flight
        self.writes: list[WriteOp] = []

    async def read(self, object_type: str, ids: Sequence[str], **_: object) -> dict[str, Record]:
        del object_type
        await self.flight.call("read")
        return {i: self.records[i] for i in ids if i in self.records}

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        await self.flight.call("write")
        self.writes += ops
        return [WriteOutcome(op.ref, ok=True, object_id=op.object_id) for op in ops]


def contact(system: SourceSystem, object_id: str, email: str, city: str) -> Record:
    values = (
        {"email": email, "city": city} if system is HS else {"emailaddress1": email, "address1_city": city}
    )
    return Record("contact", object_id, dict(values))


async def test_a_pass_reads_both_crms_at_once_and_writes_both_at_once() -> None:
    # Pair 1 changed in HubSpot (its write goes to Dataverse), pair 2 in Dataverse (its write to HubSpot).
    first = link(
        "h1",
        "d1",
        hubspot={"email": "a@x.io", "city": "e1"},
        dataverse={"emailaddress1": "a@x.io", "address1_city": "e1"},
    )
    second = link(
        "h2",
        "d2",
        hubspot={"email": "b@x.io", "city": "e1"},
        dataverse={"emailaddress1": "b@x.io", "address1_city": "e1"},
    )
    flight = InFlight()
    hs = SlowCrm(
        HS, {"h1": contact(HS, "h1", "a@x.io", "hs-new"), "h2": contact(HS, "h2", "b@x.io", "e1")}, flight
    )
    dv = SlowCrm(
        DV, {"d1": contact(DV, "d1", "a@x.io", "e1"), "d2": contact(DV, "d2", "b@x.io", "dv-new")}, flight
    )
    applier = Applier(CONFIG, {HS: hs, DV: dv}, index_of(first, second))
    items = [
        item(change(HS, "h1", Operation.UPDATE), first, second),
        item(change(DV, "d2", Operation.UPDATE), first, second),
    ]
    result = await applier.apply(items, owned=lambda: True)
    assert [dict(op.values) for op in dv.writes] == [{"address1_city": "hs-new"}]
    assert [dict(op.values) for op in hs.writes] == [{"city": "dv-new"}]
    assert not result.failed
    # Before: one read, then the other; one system's write, then the other's (1 and 1).
    assert flight.most == {"read": 2, "write": 2}


async def test_concurrently_keeps_the_order_and_waits_for_every_call_before_raising() -> None:
    finished: list[str] = []

    async def ok(name: str, seconds: float) -> str:
        await asyncio.sleep(seconds)
        finished.append(name)
        return name

    async def fails() -> str:
        await asyncio.sleep(0.001)
        raise ValueError("refused")

    assert await concurrently([ok("slow", 0.02), ok("fast", 0.0)]) == ["slow", "fast"]
    finished.clear()
    with pytest.raises(ValueError, match="refused"):
        await concurrently([fails(), ok("write on the wire", 0.02)])
    assert finished == ["write on the wire"]  # not cancelled by its sibling's failure


async def test_concurrently_of_one_call_or_none() -> None:
    async def one() -> int:
        return 1

    assert await concurrently([one()]) == [1]
    assert await concurrently(iter(())) == []
