"""Carrying out rules (`consumers.rule_effects`) against a gateway that answers as told: a refused write is a
counted, audited skip and its second round is never sent; a related record gone is counted; a clear and
its set go in two requests, in that order."""

from __future__ import annotations

from collections.abc import Sequence

from consumers.planner import RuleEffect
from consumers.ports import CrmGateway, Record, WriteKind, WriteOp, WriteOutcome
from consumers.rule_effects import apply_rules
from consumers.units import Unit
from tests.unit.batch_world import AT, CONTACTS, DV, HS, batch_of, change, item


class Gateway:
    """HubSpot records by id; writes answered ok unless their id is in ``refuse``."""

    def __init__(self, records: dict[str, Record], refuse: frozenset[str] = frozenset()) -> None:
        self.records, self.refuse = records, refuse
        self.sent: list[list[WriteOp]] = []
        self.system, self.tenant = HS, "portal-1"

    async def read(self, object_type: str, ids: Sequence[str], **_: object) -> dict[str, Record]:
        return {
            i: self.records[i]
            for i in ids
            if i in self.records and self.records[i].object_type == object_type
        }

    async def send(self, system: object, ops: list[WriteOp]) -> list[WriteOutcome]:
        del system
        self.sent.append(ops)
        return [
            WriteOutcome(
                op.ref, ok=op.object_id not in self.refuse, error="VALIDATION_ERROR (lifecyclestage)"
            )
            for op in ops
        ]


def effect(object_id: str, *, back: bool = False) -> RuleEffect:
    return RuleEffect("won", HS, "contact", object_id, {"lifecyclestage": "customer"}, allow_backwards=back)


def contact(object_id: str, stage: str) -> Record:
    return Record("contact", object_id, {"lifecyclestage": stage})


async def run(
    gateway: Gateway, *effects: RuleEffect
) -> tuple[dict[tuple[str, str], int], list[dict[str, object]]]:
    batch = batch_of()
    unit = Unit(CONTACTS, "r", [item(change(DV, "dv-1"))], {HS: None, DV: "dv-1"})
    gateways: dict[object, CrmGateway] = {HS: gateway}  # type: ignore[dict-item]
    await apply_rules(batch, [(unit, e) for e in effects], gateways, gateway.send, now=AT, dry_run=False)  # type: ignore[arg-type]
    audits = [a.model_dump(mode="json") for a in batch.result.audits]
    return dict(batch.result.skips), audits


async def test_a_refused_clear_is_a_skip_and_its_set_is_never_sent() -> None:
    gateway = Gateway({"a": contact("a", "evangelist"), "b": contact("b", "lead")}, refuse=frozenset({"a"}))
    skips, audits = await run(gateway, effect("a", back=True), effect("b"), effect("gone"))
    assert [[(op.object_id, dict(op.values)) for op in ops] for ops in gateway.sent] == [
        [("a", {"lifecyclestage": ""}), ("b", {"lifecyclestage": "customer"})]
    ]
    assert all(op.kind is WriteKind.UPDATE for ops in gateway.sent for op in ops)
    assert skips == {("won", "rule_write_failed"): 1, ("won", "rule_target_gone"): 1}
    by_target = {a["target"]["object_id"]: a for a in audits}  # type: ignore[index]
    assert by_target["a"]["action"] == "skip"
    assert by_target["a"]["reason"] == "rule_write_failed: VALIDATION_ERROR (lifecyclestage)"
    assert by_target["b"]["action"] == "update"
    assert by_target["b"]["fields"] == [
        {
            "field": "lifecyclestage",
            "source_field": None,
            "old": "lead",
            "new": "customer",
            "rule": "rule:won",
        }
    ]


async def test_a_backwards_move_allowed_is_a_clear_then_a_set_in_two_requests() -> None:
    gateway = Gateway({"a": contact("a", "other")})
    skips, _ = await run(gateway, effect("a", back=True), effect("a", back=True))  # fired twice: one target
    assert [[dict(op.values) for op in ops] for ops in gateway.sent] == [
        [{"lifecyclestage": ""}],
        [{"lifecyclestage": "customer"}],
    ]
    assert skips == {}
