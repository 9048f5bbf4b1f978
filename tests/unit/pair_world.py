"""An in-memory pair of CRM records for planner tests: plan, apply the plan as the CRMs would, link, repeat.

`apply_plan` does what the applier does around a plan, without I/O: it merges each write into the record
(creating it with a new id that holds the id of the record it copies, as the gateways' creates do), bumps
the record's version and modification time as the CRM would, and builds the link from ``plan.after`` (the
fingerprints of what both sides hold once the writes land; sync times kept as `consumers.settle` keeps
them). `World` keeps the current records, the link and a clock, so a test can edit either side and
re-plan, and so simulate a whole sequence of edits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from consumers.config import COUNTERPART_ID, Pair, SyncConfig
from consumers.planner import MatchState, PairPlan, PairState, plan_pair
from consumers.ports import Record, WriteKind
from consumers.settle import synced_fields
from streams.codec import Scalar
from streams.keys import SourceSystem
from streams.links import Link, LinkSide, link_id_for

HS = SourceSystem.HUBSPOT
DV = SourceSystem.DATAVERSE
TENANTS = {HS: "portal-1", DV: "org.crm.dynamics.com"}
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CONTACTS = Pair(hubspot="contact", dataverse="contact")


def version_of(system: SourceSystem, serial: int, at: datetime) -> str:
    """A concurrency token as the CRM gives it: a Dataverse ETag, a HubSpot ``updatedAt``."""
    return f'W/"{serial}"' if system is DV else at.isoformat()


def record(
    system: SourceSystem,
    object_id: str,
    values: Mapping[str, Scalar],
    *,
    object_type: str = "contact",
    serial: int = 1,
    at: datetime = START,
    associations: Mapping[str, str | None] | None = None,
) -> Record:
    return Record(
        object_type=object_type,
        object_id=object_id,
        values=dict(values),
        version=version_of(system, serial, at),
        modified_at=at,
        associations=dict(associations or {}),
    )


@dataclass(frozen=True, slots=True)
class Applied:
    hubspot: Record | None
    dataverse: Record | None
    link: Link | None


def _serial(rec: Record) -> int:
    version = rec.version or ""
    digits = "".join(c for c in version if c.isdigit())
    return int(digits) if version.startswith("W/") and digits else 1


def _write_into(
    system: SourceSystem,
    current: Record | None,
    plan: PairPlan,
    *,
    now: datetime,
    new_id: str,
    origin: Record | None = None,
) -> Record | None:
    w = plan.write_for(system)
    if w is None:
        return current
    assert w.kind is not WriteKind.DELETE
    if current is None:
        assert w.kind is WriteKind.CREATE, "an update of a record that does not exist"
        # The gateways write the copied record's id (`WriteOp.origin_id`) into a create.
        origin_id = {COUNTERPART_ID[system]: origin.object_id} if origin is not None else {}
        return Record(
            object_type=w.object_type,
            object_id=new_id,
            values={**w.values, **origin_id},
            version=version_of(system, 1, now),
            modified_at=now,
            associations=dict(w.associations),
        )
    assert w.kind is WriteKind.UPDATE
    assert w.object_id == current.object_id
    return Record(
        object_type=current.object_type,
        object_id=current.object_id,
        values={**current.values, **w.values},
        version=version_of(system, _serial(current) + 1, now),
        modified_at=now,
        associations={**current.associations, **w.associations},
    )


def _side(
    system: SourceSystem, rec: Record, plan: PairPlan, prior: LinkSide | None, now: datetime
) -> LinkSide:
    fields = synced_fields(prior, plan.after.get(system, {}), now)
    return LinkSide(
        system=system,
        tenant=TENANTS[system],
        object_type=rec.object_type,
        object_id=rec.object_id,
        fields=fields,
        version=rec.version,
        modified_at=rec.modified_at,
    )


def apply_plan(
    state: PairState,
    plan: PairPlan,
    *,
    now: datetime = START,
    new_ids: Mapping[SourceSystem, str] | None = None,
) -> Applied:
    """The records after the plan's writes succeed, and the link the applier would then keep (None when
    one side still has no record: nothing to link)."""
    ids = {HS: "hs-new", DV: "dv-new", **(new_ids or {})}
    hubspot = _write_into(HS, state.hubspot, plan, now=now, new_id=ids[HS], origin=state.dataverse)
    dataverse = _write_into(DV, state.dataverse, plan, now=now, new_id=ids[DV], origin=state.hubspot)
    if hubspot is None or dataverse is None:
        return Applied(hubspot, dataverse, None)
    old = state.link
    hs_side = _side(HS, hubspot, plan, old.hubspot if old is not None else None, now)
    dv_side = _side(DV, dataverse, plan, old.dataverse if old is not None else None, now)
    link = Link(
        link_id=old.link_id if old is not None else link_id_for(hs_side.ref, dv_side.ref),
        hubspot=hs_side,
        dataverse=dv_side,
        revision=(old.revision + 1) if old is not None else 1,
        created_at=old.created_at if old is not None else now,
        updated_at=now,
    )
    return Applied(hubspot, dataverse, link)


def write_count(plan: PairPlan) -> int:
    return len(plan.writes)


@dataclass(slots=True)
class World:
    """Both records of one pair, their link, the counterparts of related records, and a clock."""

    config: SyncConfig
    pair: Pair = CONTACTS
    hubspot: Record | None = None
    dataverse: Record | None = None
    link: Link | None = None
    related: dict[tuple[SourceSystem, str, str], str] = field(default_factory=dict)
    """(system, object, id) -> id of its linked counterpart: what the resolver answers."""
    clock: datetime = START
    match: MatchState = field(default_factory=MatchState)
    lookups: dict[str, dict[str, str]] = field(default_factory=dict)
    """What the field lookups read: ``owner_email`` -> owner id -> email."""
    pushed: SourceSystem | None = None
    """The side an operator pushes in the next plan (`cdc push`)."""

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def state(self) -> PairState:
        return PairState(self.pair, self.hubspot, self.dataverse, self.link, self.match, self.pushed)

    def resolve(self, system: SourceSystem, object_type: str, object_id: str) -> str | None:
        return self.related.get((system, object_type, object_id))

    def relate(self, hubspot: tuple[str, str], dataverse: tuple[str, str]) -> None:
        """Link two related records (e.g. a company and an account) both ways, for the resolver."""
        self.related[(HS, *hubspot)] = dataverse[1]
        self.related[(DV, *dataverse)] = hubspot[1]

    def plan(self) -> PairPlan:
        return plan_pair(
            self.config, self.state(), resolve=self.resolve, now=self.clock, lookups=self.lookups
        )

    def apply(self, plan: PairPlan) -> None:
        applied = apply_plan(self.state(), plan, now=self.tick())
        self.hubspot, self.dataverse = applied.hubspot, applied.dataverse
        if applied.link is not None:
            self.link = applied.link

    def sync(self) -> PairPlan:
        """Plan and apply once; the plan is returned for inspection."""
        plan = self.plan()
        self.apply(plan)
        return plan

    def edit(
        self,
        system: SourceSystem,
        values: Mapping[str, Scalar] | None = None,
        *,
        associations: Mapping[str, str | None] | None = None,
        at: datetime | None = None,
    ) -> None:
        """A user edits one side: new values, a new version and modification time."""
        current = self.hubspot if system is HS else self.dataverse
        assert current is not None
        moment = at if at is not None else self.tick()
        edited = replace(
            current,
            values={**current.values, **(values or {})},
            associations={**current.associations, **(associations or {})},
            version=version_of(system, _serial(current) + 1, moment),
            modified_at=moment,
        )
        if system is HS:
            self.hubspot = edited
        else:
            self.dataverse = edited
