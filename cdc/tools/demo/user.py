"""The demo's "user": edits records in both sandbox CRMs, as a person would in their UIs, and says what
the other CRM should then hold (an `Expectation`), so the demo can tell which edits were seen synced.

Edits go through the sandboxes' admin APIs: HubSpot sends its webhooks for them, Dataverse records them
in change tracking, and neither counts them as API calls. Every edit writes a value the field does not
hold yet (an equal value is no change). The pairs the user edits are found once the backfill is done, by
the same match keys the engine uses (email; normalized name).

An edit counts as synced when the other CRM holds every value it should (``Expectation.wanted``), not when
one particular write is seen: the engine writes only what differs, so an opportunity won, reopened and won
again gets no deal-stage write the second time (the deal still holds "closedwon"). What the target holds is
known from a read just before the edit, then from the engine's writes since (the audit), and, for an edit
still open after a while, from reading the target again. An edit that a later edit of the same field on the
same record overwrote before it synced is settled once the later one is (its value is gone by design).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from cdc.tools.demo.seed import CITIES, FIRST_NAMES, JOBS
from cdc.tools.demo.view import LiveView, Written
from consumers.matching import normalize_email, normalize_name
from streams.audit import AuditRecord
from streams.keys import SourceSystem

__all__ = ["EDIT_KINDS", "DemoUser", "Expectation", "Pair", "Pairs"]

HS, DV = SourceSystem.HUBSPOT, SourceSystem.DATAVERSE
STAGES = {2: "On Hold", 3: "Won", 1: "In Progress"}
"""Opportunity status reasons the user cycles through, in order."""
HS_FLAG, DV_FLAG = "sync_to_d365", "cdc_synctohubspot"
DEAL_STAGE = {3: "closedwon"}
"""Status reason -> the HubSpot deal stage it maps to (In Progress and On Hold keep the deal's stage)."""
PLURALS = {"contact": "contacts", "company": "companies", "deal": "deals"}


@dataclass
class Expectation:
    """After an edit: the record of ``system``/``object_type`` holds ``value`` in ``column`` (and the
    values of ``also``) once the edit is synced."""

    label: str
    system: SourceSystem
    object_type: str
    object_id: str | None
    column: str
    value: str
    made_at: float = field(default_factory=time.monotonic)
    edited_at: datetime | None = None
    """When the user's edit was sent (a hair before the CRM committed it)."""
    key: tuple[str, str] | None = None
    """For a record the sync creates (id unknown): a field and value that identify it."""
    also: dict[str, str] = field(default_factory=dict)
    """Further columns the edit sets on the record (e.g. a won opportunity: the deal's stage and its status
    reason), all of which must hold their values."""
    held: dict[str, str | None] = field(default_factory=dict)
    """What the record is known to hold of `wanted`: read before the edit, then the engine's writes."""
    met: Written | None = None
    """The engine's write that made the record hold every wanted value (it gives the latency)."""
    confirmed: bool = False
    """A read of the record found every wanted value (no write of the engine's was needed, or it was
    not seen)."""
    superseded_by: Expectation | None = None
    """A later edit of the same field(s) of the same record: this one's value is gone by design."""

    @property
    def wanted(self) -> dict[str, str]:
        return {self.column: self.value, **self.also}

    @property
    def settled(self) -> bool:
        """Seen synced: the record holds the values, or a later edit that overwrote them is synced."""
        if self.met is not None or self.confirmed:
            return True
        return self.superseded_by is not None and self.superseded_by.settled

    def holds(self, values: Mapping[str, object]) -> bool:
        return all(_same(values.get(name), value) for name, value in self.wanted.items())

    def targets(self, audit: AuditRecord) -> bool:
        """Is the audit a write of the engine's to this record, after the edit?"""
        target = audit.target
        if target is None or target.system is not self.system or target.object_type != self.object_type:
            return False
        if self.edited_at is not None and audit.at < self.edited_at:
            return False  # older than the edit: it cannot carry it
        if self.object_id is not None:
            return target.object_id == self.object_id
        if self.key is not None:
            found = _value(audit, self.key[0])
            return isinstance(found, str) and found.lower() == self.key[1].lower()
        return False

    def matches(self, audit: AuditRecord) -> bool:
        """Does the audit write (part of) this edit: one of its values to its record?"""
        return self.targets(audit) and any(_same(_value(audit, n), v) for n, v in self.wanted.items())

    def observe(self, written: Written) -> bool:
        """Take in a write of the engine's; True when it completes the edit (then it is ``met``)."""
        audit = written.audit
        if self.settled or not self.targets(audit):
            return False
        if self.object_id is None and audit.target is not None:
            self.object_id = audit.target.object_id  # a created record: its id, for later reads
        for f in audit.fields:
            if f.field in self.wanted:
                self.held[f.field] = None if f.new is None else str(f.new)
        if self.holds(self.held):
            self.met = written
            return True
        return False

    def overlaps(self, other: Expectation) -> bool:
        """Do the two edits set a value of the same field of the same record?"""
        return (
            (self.system, self.object_type) == (other.system, other.object_type)
            and self.object_id is not None
            and self.object_id == other.object_id
            and bool(self.wanted.keys() & other.wanted.keys())
        )


def _same(found: object, value: str) -> bool:
    return found is not _MISSING and found is not None and str(found) == value


def _value(audit: AuditRecord, target_field: str) -> object:
    return next((f.new for f in audit.fields if f.field == target_field), _MISSING)


_MISSING = object()


@dataclass(frozen=True)
class Pair:
    """A linked pair, and whether each side is in its step's sync set (so that its edits flow)."""

    hubspot: str
    dataverse: str
    hubspot_syncs: bool
    dataverse_syncs: bool


@dataclass
class Pairs:
    """Linked records by kind, and the duplicates the backfill must not have made."""

    contacts: list[Pair] = field(default_factory=list)
    companies: list[Pair] = field(default_factory=list)
    deals: list[Pair] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    """"HubSpot companies" -> records beyond the first sharing a match key (should be 0)."""
    records: dict[str, int] = field(default_factory=dict)
    """"HubSpot companies" -> records."""
    examples: list[str] = field(default_factory=list)
    """A few duplicated match keys, with their record ids."""


Keyed = dict[str, list[tuple[str, bool]]]
"""Match key -> (record id, in the sync set) of every record with that key."""


@dataclass
class DemoUser:
    hs: httpx.AsyncClient
    dv: httpx.AsyncClient
    view: LiveView
    rng: random.Random = field(default_factory=lambda: random.Random(11))  # noqa: S311 -- demo data
    pairs: Pairs = field(default_factory=Pairs)
    expectations: list[Expectation] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _checked: int = 0
    _last_edit: datetime | None = None
    all_met: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.view.edit_time = self.edit_time

    # -- finding pairs ---------------------------------------------------------------------------------

    async def find_pairs(self) -> Pairs:
        """Pairs by the engine's match keys (what the backfill should have linked), with their sync flags."""

        def keyed(rows: list[dict[str, Any]], key: Callable[[Any], str | None], flag: str) -> Keyed:
            out: Keyed = {}
            for row in rows:
                if (k := key(row["values"].get(row["key"]))) is not None:
                    out.setdefault(k, []).append((row["id"], row["values"].get(flag) in (True, "true")))
            return out

        async def hubspot(object_type: str, prop: str, key: Callable[[Any], str | None]) -> Keyed:
            rows = (await self._ok(self.hs.get(f"/_admin/objects/{object_type}")))["results"]
            found = [{"id": str(r["id"]), "key": prop, "values": r["properties"]} for r in rows]
            return keyed(found, key, HS_FLAG)

        async def dataverse(table: str, column: str, key: Callable[[Any], str | None]) -> Keyed:
            rows = (await self._ok(self.dv.get(f"/_admin/tables/{table}/rows")))["value"]
            return keyed(
                [{"id": str(r[f"{table}id"]), "key": column, "values": r} for r in rows], key, DV_FLAG
            )

        pairs = Pairs()

        def both(kind: str, hs: Keyed, dv: Keyed) -> list[Pair]:
            for side, found in ((f"HubSpot {kind}", hs), (f"Dataverse {kind}", dv)):
                pairs.records[side] = sum(len(ids) for ids in found.values())
                pairs.duplicates[side] = sum(len(ids) - 1 for ids in found.values())
                pairs.examples += [
                    f"{side} {k!r}: {[i for i, _ in ids]}" for k, ids in found.items() if len(ids) > 1
                ]
            return [
                Pair(hs[k][0][0], dv[k][0][0], hs[k][0][1], dv[k][0][1])
                for k in sorted(hs.keys() & dv.keys())
            ]

        pairs.contacts = both(
            "contacts",
            await hubspot("contacts", "email", normalize_email),
            await dataverse("contact", "emailaddress1", normalize_email),
        )
        pairs.companies = both(
            "companies",
            await hubspot("companies", "name", normalize_name),
            await dataverse("account", "name", normalize_name),
        )
        pairs.deals = both(
            "deals",
            await hubspot("deals", "dealname", normalize_name),
            await dataverse("opportunity", "name", normalize_name),
        )
        self.pairs = pairs
        return pairs

    def _pick(self, pairs: list[Pair], *, hubspot: bool = False, dataverse: bool = False) -> Pair:
        """A pair whose edited side(s) are in the sync set: edits to the others do not flow, by design."""
        eligible = [
            p for p in pairs if (p.hubspot_syncs or not hubspot) and (p.dataverse_syncs or not dataverse)
        ]
        if not eligible:
            raise LookupError("no linked pair to edit: did the backfill link nothing?")
        return self.rng.choice(eligible)

    # -- edits -----------------------------------------------------------------------------------------

    def expect(self, expectations: list[Expectation]) -> None:
        """Open these edits' expectations; an open one they overwrite is superseded by them."""
        self.all_met.clear()
        for e in expectations:
            e.edited_at = e.edited_at or self._last_edit
            for earlier in self.expectations:
                if earlier.superseded_by is None and not earlier.settled and earlier.overlaps(e):
                    earlier.superseded_by = e
        self.expectations.extend(expectations)

    def edit_time(self, audit: AuditRecord) -> datetime | None:
        """When the user made the edit this write carries, if it is one of theirs (the exact start of
        its latency: a Dataverse change's own time, ``modifiedon``, has whole seconds only)."""
        return next((e.edited_at for e in self.expectations if not e.settled and e.matches(audit)), None)

    async def rename_hubspot_contact(self) -> list[Expectation]:
        hs_id, dv_id = self._ids(self._pick(self.pairs.contacts, hubspot=True))
        current = await self._hs_value("contacts", hs_id, "firstname")
        name = self._other(FIRST_NAMES, current)
        label = f"HubSpot contact {hs_id} firstname {name!r}"
        expected = await self._held(Expectation(label, DV, "contact", dv_id, "firstname", name))
        await self._hs_patch("contacts", hs_id, {"firstname": name})
        return [expected]

    async def move_dataverse_contact(self) -> list[Expectation]:
        hs_id, dv_id = self._ids(self._pick(self.pairs.contacts, dataverse=True))
        current = await self._dv_value("contact", dv_id, "address1_city")
        city = self._other(CITIES, current)
        label = f"Dataverse contact {dv_id[:8]} city {city!r}"
        expected = await self._held(Expectation(label, HS, "contact", hs_id, "city", city))
        await self._dv_patch("contact", dv_id, {"address1_city": city})
        return [expected]

    async def move_hubspot_company(self) -> list[Expectation]:
        hs_id, dv_id = self._ids(self._pick(self.pairs.companies, hubspot=True))
        current = await self._hs_value("companies", hs_id, "city")
        city = self._other(CITIES, current)
        label = f"HubSpot company {hs_id} city {city!r}"
        expected = await self._held(Expectation(label, DV, "account", dv_id, "address1_city", city))
        await self._hs_patch("companies", hs_id, {"city": city})
        return [expected]

    async def advance_opportunity(self) -> list[Expectation]:
        """The next status reason: the deal then holds it as its ``d365_status_reason`` and, for Won, the
        stage "closedwon" too (which it may hold already: won, reopened and won again)."""
        hs_id, dv_id = self._ids(self._pick(self.pairs.deals, dataverse=True))
        current = await self._dv_value("opportunity", dv_id, "statuscode")
        order = list(STAGES)
        stage = order[(order.index(current) + 1) % len(order)] if current in order else order[0]
        label = f"Dataverse opportunity {dv_id[:8]} status reason {stage} ({STAGES[stage]})"
        reason = Expectation(label, HS, "deal", hs_id, "d365_status_reason", str(stage))
        if stage in DEAL_STAGE:
            also = {reason.column: reason.value}
            reason = Expectation(label, HS, "deal", hs_id, "dealstage", DEAL_STAGE[stage], also=also)
        expected = await self._held(reason)
        await self._dv_patch("opportunity", dv_id, {"statuscode": stage})
        return [expected]

    async def new_hubspot_contact(self) -> list[Expectation]:
        n = next(self._counter)
        first = self.rng.choice(FIRST_NAMES)
        email = f"{first.lower()}.new{n}.{int(time.time())}@example.net"
        props = {"email": email, "firstname": first, "lastname": f"Newcomer{n}", "sync_to_d365": "true"}
        self._last_edit = datetime.now(UTC)
        await self._ok(self.hs.post("/_admin/objects/contacts", json={"properties": props}))
        label = f"new HubSpot contact {email}"
        return [
            Expectation(label, DV, "contact", None, "lastname", f"Newcomer{n}", key=("emailaddress1", email))
        ]

    async def new_dataverse_contact(self) -> list[Expectation]:
        n = next(self._counter)
        first = self.rng.choice(FIRST_NAMES)
        email = f"{first.lower()}.dv{n}.{int(time.time())}@example.org"
        row = {"emailaddress1": email, "firstname": first, "lastname": f"Dvnew{n}", "cdc_synctohubspot": True}
        self._last_edit = datetime.now(UTC)
        await self._ok(self.dv.post("/_admin/tables/contact/rows", json=row))
        label = f"new Dataverse contact {email}"
        return [Expectation(label, HS, "contact", None, "lastname", f"Dvnew{n}", key=("email", email))]

    async def conflict(self) -> list[Expectation]:
        """The same field edited on both sides at once: by the default rule (step order) HubSpot wins."""
        hs_id, dv_id = self._ids(self._pick(self.pairs.contacts, hubspot=True, dataverse=True))
        current = await self._hs_value("contacts", hs_id, "jobtitle")
        hubspot = self._other(JOBS, current)
        dataverse = self._other(tuple(j for j in JOBS if j != hubspot), current)
        label = f"conflict on contact {hs_id}: jobtitle {hubspot!r} (HubSpot) vs {dataverse!r} (Dataverse)"
        expected = await self._held(Expectation(label, DV, "contact", dv_id, "jobtitle", hubspot))
        await self._dv_patch("contact", dv_id, {"jobtitle": dataverse})
        await self._hs_patch("contacts", hs_id, {"jobtitle": hubspot})
        return [expected]

    # -- checking --------------------------------------------------------------------------------------

    def check(self) -> list[Expectation]:
        """Take in the engine's writes seen since the last call; the expectations they complete."""
        met: list[Expectation] = []
        new, self._checked = self.view.writes[self._checked :], len(self.view.writes)
        for written in new:
            met += [e for e in self.expectations if e.observe(written)]
        self._all_met()
        return met

    async def confirm(self, *, older_than_s: float) -> list[Expectation]:
        """Read the records of the expectations open for longer than ``older_than_s`` (and not overwritten
        by a later edit); those holding every wanted value are confirmed."""
        now = time.monotonic()
        confirmed: list[Expectation] = []
        for e in self.missing:
            if e.superseded_by is not None or e.object_id is None or now - e.made_at < older_than_s:
                continue
            if e.holds(await self._record(e.system, e.object_type, e.object_id)):
                e.confirmed = True
                confirmed.append(e)
        self._all_met()
        return confirmed

    def _all_met(self) -> None:
        if self.expectations and not self.missing:
            self.all_met.set()

    @property
    def missing(self) -> list[Expectation]:
        return [e for e in self.expectations if not e.settled]

    async def agree(self, hs_id: str, dv_id: str, prop: str, column: str) -> tuple[Any, Any]:
        """A contact pair's values of one mapped field on both sides (the conflict's end state)."""
        return (await self._hs_value("contacts", hs_id, prop), await self._dv_value("contact", dv_id, column))

    # -- HTTP ------------------------------------------------------------------------------------------

    @staticmethod
    async def _ok(call: Awaitable[httpx.Response]) -> Any:
        answer = await call
        answer.raise_for_status()
        return answer.json() if answer.content else None

    async def _hs_value(self, object_type: str, object_id: str, prop: str) -> Any:
        record = await self._ok(self.hs.get(f"/_admin/objects/{object_type}/{object_id}"))
        return record["properties"].get(prop)

    async def _record(self, system: SourceSystem, object_type: str, object_id: str) -> dict[str, Any]:
        """A record's values as its CRM holds them now (HubSpot ``deal`` is read as ``deals``)."""
        if system is HS:
            plural = PLURALS.get(object_type, object_type)
            record = await self._ok(self.hs.get(f"/_admin/objects/{plural}/{object_id}"))
            return dict(record["properties"])
        return dict(await self._ok(self.dv.get(f"/_admin/tables/{object_type}/rows/{object_id}")))

    async def _held(self, expected: Expectation) -> Expectation:
        """What the edit's target holds of the wanted values just before the edit is made."""
        assert expected.object_id is not None  # noqa: S101 -- edits of linked pairs only
        values = await self._record(expected.system, expected.object_type, expected.object_id)
        expected.held = {n: None if values.get(n) is None else str(values[n]) for n in expected.wanted}
        return expected

    async def _dv_value(self, table: str, row_id: str, column: str) -> Any:
        return (await self._ok(self.dv.get(f"/_admin/tables/{table}/rows/{row_id}"))).get(column)

    async def _hs_patch(self, object_type: str, object_id: str, props: dict[str, Any]) -> None:
        self._last_edit = datetime.now(UTC)
        await self._ok(
            self.hs.patch(f"/_admin/objects/{object_type}/{object_id}", json={"properties": props})
        )

    async def _dv_patch(self, table: str, row_id: str, values: dict[str, Any]) -> None:
        self._last_edit = datetime.now(UTC)
        await self._ok(self.dv.patch(f"/_admin/tables/{table}/rows/{row_id}", json=values))

    @staticmethod
    def _ids(pair: Pair) -> tuple[str, str]:
        return pair.hubspot, pair.dataverse

    def _other(self, choices: tuple[str, ...], current: Any) -> str:
        return self.rng.choice([c for c in choices if c != current])


EDIT_KINDS: tuple[Callable[[DemoUser], Awaitable[list[Expectation]]], ...] = (
    DemoUser.rename_hubspot_contact,
    DemoUser.move_dataverse_contact,
    DemoUser.move_hubspot_company,
    DemoUser.advance_opportunity,
    DemoUser.new_hubspot_contact,
    DemoUser.conflict,
    DemoUser.new_dataverse_contact,
)
"""The scripted scenario of ``--once``, in order; the live demo draws from them at random."""
