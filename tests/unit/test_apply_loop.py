"""The apply loop's handling of an unexpected error, without Kafka: a poison record is retried with the
batch, then found by applying the batch item by item and dead-lettered alone; when every record fails alike
the cause is systemic and the loop pauses (keeping its consumer in the group) instead of emptying the
queue into dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from consumers.applier import Applier
from consumers.apply_loop import ApplyLoop
from consumers.ports import Record, WriteOp, WriteOutcome
from streams.codec import Scalar
from streams.config import KafkaSettings
from streams.events import Operation
from streams.keys import SourceSystem
from streams.link_store import LinkIndex
from streams.topics import TopicCatalog
from streams.work import WorkItem
from tests.unit.batch_world import CONFIG, DV, HS, NoMatches, change, item


class Poisoned(NoMatches):
    """A CRM gateway whose records are all gone, and whose read of a poison id raises a bug's error."""

    def __init__(self, system: SourceSystem, poison: set[str]) -> None:
        super().__init__(system)
        self.poison = poison

    async def read(self, object_type: str, ids: Sequence[str], **_: object) -> dict[str, Record]:
        del object_type
        if self.poison & set(ids):
            raise ValueError(f"unreadable answer for {sorted(self.poison & set(ids))}")
        return {}

    async def own_writes(
        self, object_type: str, ids: Sequence[str], *, fields: Sequence[str]
    ) -> dict[str, dict[str, Scalar]]:
        raise AssertionError(f"no conflict here: {object_type} {ids} {fields}")

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        raise AssertionError(f"nothing to write here: {ops}")


def loop_with(poison: set[str]) -> ApplyLoop:
    gateways = {system: Poisoned(system, poison) for system in (HS, DV)}
    applier = Applier(CONFIG, gateways, LinkIndex())
    kafka = KafkaSettings()
    return ApplyLoop(kafka, TopicCatalog.from_settings(kafka), applier, group="test-apply")


def updates(*ids: str) -> list[WorkItem]:
    return [item(change(HS, i, Operation.UPDATE)) for i in ids]


async def test_a_poison_record_is_dead_lettered_alone_and_the_others_are_applied() -> None:
    items = updates("h1", "bad", "h2")

    async def keepalive() -> None:
        pass

    result, poisoned = await loop_with({"bad"})._apply(items, asyncio.Event(), keepalive, owned=lambda: True)
    assert [(i.change.object_id, str(e)) for i, e in poisoned] == [("bad", "unreadable answer for ['bad']")]
    assert result.skips == {("contacts_to_contacts", "source_record_gone"): 2}  # h1 and h2, read: gone


async def test_when_every_record_fails_alike_the_loop_pauses_instead_of_dead_lettering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = updates("bad", "worse")
    stop = asyncio.Event()
    kept_alive = 0

    async def keepalive() -> None:  # the consumer polled through the pause; an operator stops the loop
        nonlocal kept_alive
        kept_alive += 1
        stop.set()

    _, poisoned = await loop_with({"bad", "worse"})._apply(items, stop, keepalive, owned=lambda: True)
    assert "every record fails" in caplog.text
    assert kept_alive == 1
    assert [i.change.object_id for i, _ in poisoned] == ["bad", "worse"]  # handed back only once stopped
