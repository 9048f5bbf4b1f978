"""A fake `cdc.admin.source.HealthSource` with a little of everything, for the page's tests without Kafka:
it records the actions asked of it, so a test can check that a refused request changed nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka.errors import GroupCoordinatorNotAvailableError

from cdc.admin.kafka_source import story_of
from cdc.admin.source import BudgetView, BudgetWindow, NotFoundError, Overview, PauseState, StepRow, Story
from cdc.ops._kafka import GroupInfo
from cdc.ops.deadletters import DeadLetterBook, Letter
from cdc.ops.status import GroupStatus, PartitionLag, StatusReport
from streams.admin import KafkaUnavailableError
from streams.audit import AuditAction, AuditRecord, FieldWrite
from streams.control import EVERYTHING, Pause, Pauses
from streams.deadletters import DeadLetter
from streams.exclusions import Exclusion, ExclusionReason
from streams.keys import RecordRef, SourceSystem
from streams.links import Link, LinkSide

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HS = RecordRef(system=SourceSystem.HUBSPOT, tenant="123", object_type="contact", object_id="501")
DV = RecordRef(
    system=SourceSystem.DATAVERSE,
    tenant="org.crm.dynamics.com",
    object_type="contact",
    object_id="00000000-0000-0000-0000-000000000501",
)
LINK = Link(
    link_id="l-501",
    hubspot=LinkSide(**HS.model_dump()),
    dataverse=LinkSide(**DV.model_dump()),
    created_at=AT,
    updated_at=AT,
)
WRITE = AuditRecord(
    step="hubspot-contacts-to-dataverse",
    action=AuditAction.UPDATE,
    link_id="l-501",
    source=HS,
    target=DV,
    fields=(
        FieldWrite(
            field="emailaddress1",
            source_field="email",
            old=None,
            new="ada@example.com",
            rule="one_side_changed",
        ),
    ),
    at=AT,
)
LETTER = Letter(
    partition=0,
    offset=7,
    letter=DeadLetter(
        topic="t.work", partition=1, offset=3, key="k", value="{}", step="hubspot-contacts-to-dataverse",
        error_class="ValueError", error="<script>alert(1)</script> a value no field takes", failed_at=AT,
    ),
)  # fmt: skip

EXCLUDED = RecordRef(system=SourceSystem.HUBSPOT, tenant="123", object_type="contact", object_id="502")
EXCLUSION = Exclusion(
    step="hubspot-contacts-to-dataverse",
    reason=ExclusionReason.AMBIGUOUS_MATCH,
    record=EXCLUDED,
    values={"email": "dup@example.com"},
    detail="2 candidates with this match key",
    first_seen=AT,
    last_seen=AT,
)
OPTION = Exclusion(
    step="deals",
    reason=ExclusionReason.NO_OPTION_COUNTERPART,
    record=RecordRef(system=SourceSystem.HUBSPOT, tenant="123", object_type="deal", object_id="77"),
    values={"dealstage": "<b>won</b>"},
    first_seen=AT,
    last_seen=AT,
)


@dataclass
class FakeHealth:
    actions: list[tuple[str, str, str]] = field(default_factory=list)
    kafka_down: bool = False
    coordinator_loading: bool = False
    paused: dict[str, Pause] = field(default_factory=dict)

    async def overview(self) -> Overview:
        if self.kafka_down:
            raise KafkaUnavailableError("cannot reach Kafka at kafka:9092 within 10s")
        if self.coordinator_loading:  # a broker just started: aiokafka's own error, not ours
            raise GroupCoordinatorNotAvailableError()
        return Overview(
            await self.lags(), [StepRow("hubspot-contacts-to-dataverse", "contact~contact", 1, 1, 1)], [WRITE]
        )

    async def lags(self) -> StatusReport:
        report = StatusReport(at=AT)
        report.groups.append(
            GroupStatus(
                "sync-apply", "g-sync-apply", GroupInfo("g-sync-apply", "Stable", ()),
                (PartitionLag("t.work", 0, 5, 9, 4, 2.5),),
            )
        )  # fmt: skip
        return report

    async def links(self) -> list[Link]:
        return [LINK]

    async def story(self, query: str) -> Story:
        story = story_of(query, [LINK], [WRITE], await self.exclusions())
        if not story.records:
            raise NotFoundError(f"no link and no audit record names {query!r}")
        return story

    async def budget(self) -> BudgetView:
        windows = [BudgetWindow("hubspot", "daily", 86_400, 175_000, 250_000, 1200, 2)]
        series = {"hubspot": [(AT.timestamp() - 3600, 800.0), (AT.timestamp(), 1200.0)]}
        return BudgetView(windows, series, {"hubspot": "daily"})

    async def deadletters(self) -> DeadLetterBook:
        return DeadLetterBook("t.deadletter", [LETTER])

    async def redrive(self, letter: Letter, actor: str) -> str:
        self.actions.append(("redrive", letter.ident, actor))
        return f"dead letter {letter.ident} redriven"

    async def sync_now(self, ref: RecordRef, actor: str) -> str:
        if ref.key not in {HS.key, DV.key}:
            raise NotFoundError(f"HubSpot has no {ref.object_type} {ref.object_id}")
        self.actions.append(("sync_now", ref.key, actor))
        return "read again"

    async def exclusions(self) -> list[Exclusion]:
        return [EXCLUSION, OPTION]

    async def retry(self, targets: list[Exclusion], actor: str) -> str:
        self.actions += [("retry", e.key, actor) for e in targets]
        return f"{len(targets)} excluded record(s) read again and sent to the sync"

    async def push(self, ref: RecordRef, winner: SourceSystem, actor: str) -> list[str]:
        if ref.key not in {HS.key, DV.key}:
            raise NotFoundError(f"{ref.system} {ref.object_type}: no such record: {ref.object_id}")
        self.actions.append((f"push from {winner}", ref.key, actor))
        return [f"pushed from {winner} contacts: 1 record(s) in 0.4 s", "  update dataverse contact x (step)"]

    async def pauses(self) -> PauseState:
        pauses = Pauses(dict(self.paused))
        lines = [f"paused: {t} by {p.by}" for t, p in pauses.active.items()]
        return PauseState(pauses, ["hubspot-contacts-to-dataverse"], lines)

    async def set_pause(self, target: str | None, *, paused: bool, actor: str, reason: str | None) -> str:
        name = target or EVERYTHING
        if name not in {EVERYTHING, "hubspot-contacts-to-dataverse"}:
            raise NotFoundError(
                f"unknown step {name!r}: the configuration's steps are hubspot-contacts-to-dataverse"
            )
        self.actions.append(("pause" if paused else "resume", name, actor))
        self.paused[name] = Pause(target=name, paused=paused, by=actor, at=AT, reason=reason)
        return f"{'paused' if paused else 'resumed'} {name}"
