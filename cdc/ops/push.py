"""`cdc push` and `cdc pull`: sync records now, with one side winning every conflict for that pass.

Accelo's Push and Pull buttons, on the command line. ``cdc push hubspot contacts --id 101`` re-reads HubSpot
contact 101 and publishes it as a change event marked ``pushed``: the sync applies it through the normal
pipeline, and for that pass (only that one) HubSpot's values go over the Dataverse contact's wherever a step
maps them, whether either side changed them since the last sync and whatever the conflict rules say
(`consumers.planner.PairState.pushed`). ``cdc pull hubspot contacts --id 101`` is the same from the other
side: the Dataverse counterpart is re-read and its values go over HubSpot's.

- ``--id`` / ``--email`` (repeatable): the records are read by id (HubSpot batch read; Dataverse by key)
  or by email (HubSpot's ``idProperty=email``; Dataverse ``emailaddress1``), with their associations, and
  published; then the command waits until the sync has taken them (its two consumer groups' committed
  offsets passed them) and prints what was written, from the audit topic.
- ``--all``: every record of the object, as `cdc resync` reads them, each event marked ``pushed``; progress
  as it goes and a summary at the end. It does not wait for the sync.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata
from prometheus_client import CollectorRegistry

from cdc.dataverse import DataverseClient, TokenProvider, entity_logical_name, row_to_event
from cdc.dataverse.poller import table_url
from cdc.hubspot.client import hubspot_client
from cdc.hubspot.paths import singular
from cdc.hubspot.reconciler import (
    RECONCILED,
    association_events,
    hubspot_objects,
    object_properties,
    read_edges,
    record_event,
)
from cdc.hubspot.search import MAX_PAGE
from cdc.metrics import Metrics
from cdc.ops._kafka import Raw, committed_offsets, known_groups, load_links, open_reader, partitions_of, scan
from cdc.ops.explain import RecordQuery
from cdc.ops.resync import ResyncError, ResyncReport, resolve_object, resync, run_command
from cdc.settings import Settings, require
from cdc.sources.polled import sync_config
from cdc.sources.publisher import ChangePublisher, PublishUnavailableError
from streams.admin import open_admin
from streams.audit import AUDIT_CODEC, AuditRecord
from streams.codec import Position, SchemaError
from streams.events import ChangeEvent, Origin
from streams.keys import SourceSystem
from streams.topics import TopicCatalog, TopicRole
from streams.work import WORK_CODEC

__all__ = ["PushError", "PushReport", "counterpart_object", "push", "run_push"]

Progress = Callable[[str], None]
WAIT_S = 30.0
"""How long a push of single records waits for the sync to take them before it says so."""
POLL_S = 0.25
EMAIL_OBJECTS = {"hubspot": ("contacts",), "dataverse": ("contacts", "leads")}
"""Objects that can be found by email (HubSpot: ``email`` is a unique property of contacts only)."""
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class PushError(ResyncError):
    """A usage error: an unknown object, a record not found, a pull of a record with no counterpart."""


@dataclass
class PushReport:
    """What one push published and, for single records, what the sync then wrote."""

    system: str
    object: str
    pulled_into: str | None = None
    """For `cdc pull`: the system whose records were made to match (the other one was read)."""
    events: list[ChangeEvent] = field(default_factory=list)
    writes: list[AuditRecord] = field(default_factory=list)
    taken: bool = False
    """The sync took every published event (both consumer groups committed past them)."""
    bulk: ResyncReport | None = None
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return self.bulk.records if self.bulk is not None else len({e.key for e in self.events})

    def lines(self) -> list[str]:
        verb = f"pulled into {self.pulled_into} from" if self.pulled_into else "pushed from"
        if self.bulk is not None:
            return [
                f"{verb} {self.system} {self.object}: {self.bulk.records} records published in "
                f"{self.seconds:.1f} s, {self.system} winning every conflict of their pass; "
                "`cdc status` shows the sync's lag as it applies them"
            ]
        out = [f"{verb} {self.system} {self.object}: {self.records} record(s) in {self.seconds:.1f} s"]
        for record in self.writes:
            target = record.target
            where = f"{target.system} {target.object_type} {target.object_id}" if target else "?"
            out.append(f"  {record.action.value} {where} ({record.step})")
            out.extend(f"    {w.field}: {w.old!r} -> {w.new!r} [{w.rule}]" for w in record.fields)
        if self.taken and not self.writes:
            out.append("  nothing to write: the other side already holds these values")
        if not self.taken:
            out.append(
                f"  the sync has not taken the change within {WAIT_S:.0f} s: is `cdc sync` running? "
                "(`cdc status`); the change waits in Kafka and is applied when it runs"
            )
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "object": self.object,
            "pulled_into": self.pulled_into,
            "records": self.records,
            "taken": self.taken,
            "seconds": round(self.seconds, 3),
            "writes": [r.model_dump(mode="json", exclude_none=True) for r in self.writes],
        }


@dataclass(frozen=True)
class Selection:
    """Which records: ids, emails, or all of them."""

    ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    every: bool = False

    def check(self, system: str, obj: str) -> None:
        if self.every == bool(self.ids or self.emails):
            raise PushError("say which records: --id, --email (each may repeat), or --all")
        if self.emails and obj not in EMAIL_OBJECTS[system]:
            can = ", ".join(EMAIL_OBJECTS[system])
            raise PushError(f"{system} {obj} cannot be found by email: use --id (by email: {can})")
        if system == "dataverse":
            bad = [i for i in self.ids if not _GUID.match(i)]
            if bad:
                raise PushError(f"not a Dataverse row id (a GUID): {', '.join(bad)}")
        elif bad := [i for i in self.ids if not i.isdigit()]:
            raise PushError(f"not a HubSpot record id (digits): {', '.join(bad)}")


def counterpart_object(settings: Settings, system: str, obj: str) -> str:
    """The object the sync configuration pairs with ``obj`` of ``system``, in the other system's API names."""
    one = singular(obj) if system == "hubspot" else entity_logical_name(obj)
    for pair in sync_config(settings).pairs():
        if (pair.hubspot if system == "hubspot" else pair.dataverse) == one:
            other = "dataverse" if system == "hubspot" else "hubspot"
            return resolve_object(other, pair.dataverse if system == "hubspot" else pair.hubspot)
    raise PushError(f"no sync step pairs {system} {obj} with anything: nothing to pull it from")


def _marked(events: Sequence[ChangeEvent], token: str) -> list[ChangeEvent]:
    return [
        e.model_copy(update={"pushed": True, "source_event_id": f"{token}-{n}"}) for n, e in enumerate(events)
    ]


async def _read_hubspot(
    settings: Settings, obj: str, chosen: Selection, metrics: Metrics
) -> list[ChangeEvent]:
    """The records by id or email (batch read), with their associations to the configured objects."""
    require(settings.hubspot.portal_id, "hubspot.portal_id", "push")
    portal = str(settings.hubspot.portal_id)
    properties = list(object_properties(settings, obj, MAX_PAGE))
    configured = settings.poll.hubspot_objects or hubspot_objects(settings, sync_config(settings))
    others = tuple(o for o in configured if o != obj and o in RECONCILED)
    received = datetime.now(UTC)
    ms = int(received.timestamp() * 1000)
    async with hubspot_client(settings.hubspot, metrics, command="push") as client:
        rows: list[dict[str, Any]] = []
        for values, id_property in ((chosen.ids, None), (chosen.emails, "email")):
            if not values:
                continue
            body: dict[str, Any] = {"properties": properties, "inputs": [{"id": v} for v in values]}
            if id_property:
                body["idProperty"] = id_property
            answer = await client.call(client.api.batch_read, obj, body=body)
            rows += [r for r in answer.get("results") or [] if isinstance(r, dict)]
        found_ids = {str(r["id"]) for r in rows}
        found_emails = {str((r.get("properties") or {}).get("email") or "").lower() for r in rows}
        missing = [i for i in chosen.ids if i not in found_ids]
        missing += [e for e in chosen.emails if e.lower() not in found_emails]
        if missing:
            raise PushError(f"hubspot {obj}: no such record: {', '.join(missing)}")
        events = [record_event(portal, obj, ms, r, received=received, origin=Origin.RESYNC) for r in rows]
        ids = sorted(found_ids)
        edges = await read_edges(client, obj, others, ids) if others else {}
    for record_id, found in edges.items():
        events += association_events(
            portal, singular(obj), record_id, found, before=None, received=received, origin=Origin.RESYNC
        )
    return events


async def _read_dataverse(
    settings: Settings, table: str, chosen: Selection, metrics: Metrics
) -> list[ChangeEvent]:
    """The rows by key or by ``emailaddress1`` (a plain query with the configured ``$select``)."""
    tokens = TokenProvider(settings.dataverse)
    client = DataverseClient(settings.dataverse, tokens, metrics)
    logical = entity_logical_name(table)
    key = f"{logical}id"
    wanted = [f"{key} eq {i}" for i in chosen.ids]  # GUIDs, checked: no quoting needed
    wanted += ["emailaddress1 eq '" + e.replace("'", "''") + "'" for e in chosen.emails]
    try:
        await tokens.token()
        await client.start()
        page = await client.get_json(
            table_url(client.api_root, table, settings.poll, where=" or ".join(wanted)),
            endpoint=f"{table}:push",
        )
    finally:
        await client.close()
        tokens.close()
    rows = [r for r in page.get("value") or [] if isinstance(r, dict)]
    found_ids = {str(r.get(key, "")).lower() for r in rows}
    found_emails = {str(r.get("emailaddress1") or "").lower() for r in rows}
    missing = [i for i in chosen.ids if i.lower() not in found_ids]
    missing += [e for e in chosen.emails if e.lower() not in found_emails]
    if missing:
        raise PushError(f"dataverse {table}: no such record: {', '.join(missing)}")
    received = datetime.now(UTC)
    return [
        row_to_event(r, tenant=tokens.org_host, object_type=logical, received_at=received).model_copy(
            update={"origin": Origin.RESYNC, "occurred_at": received}
        )
        for r in rows
    ]


async def _counterparts(settings: Settings, system: str, obj: str, ids: Sequence[str]) -> list[str]:
    """The linked counterparts' ids of ``ids`` (records of ``system``), or PushError naming the unlinked."""
    index = await load_links(settings.kafka)
    kind = singular(obj) if system == "hubspot" else entity_logical_name(obj)
    out, unlinked = [], []
    for record_id in ids:
        query = RecordQuery(SourceSystem(system), kind, record_id)
        link = next((lk for lk in index if query.matches_side(lk.side(query.system))), None)
        if link is None:
            unlinked.append(record_id)
        else:
            out.append(link.side(query.system.other).object_id)
    if unlinked:
        raise PushError(
            f"{system} {obj} {', '.join(unlinked)}: not linked to a record in the other system yet, so there "
            f"is nothing to pull from; `cdc push {system} {obj} --id ...` creates the counterpart"
        )
    return out


async def _ends(settings: Settings, topic: str) -> dict[TopicPartition, int]:
    async with open_admin(settings.kafka) as admin:
        partitions = await partitions_of(admin, [topic])
    async with open_reader(settings.kafka) as reader:
        ends: dict[TopicPartition, int] = await reader.end_offsets(partitions)
    return ends


async def _passed(settings: Settings, group: str, last: dict[TopicPartition, int], deadline: float) -> bool:
    """Wait until ``group`` committed past each partition's ``last`` offset; False at the deadline."""
    while True:
        async with open_admin(settings.kafka) as admin:
            committed = await committed_offsets(admin, group)
        if all(committed.get(tp, 0) > offset for tp, offset in last.items()):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_S)


async def _routed(
    settings: Settings, start: dict[TopicPartition, int], ids: set[str]
) -> dict[TopicPartition, int]:
    """Where the router put the work items of the events ``ids`` (read from ``start`` to the end)."""
    found: dict[TopicPartition, int] = {}
    async with open_reader(settings.kafka) as reader:
        reader.assign(list(start))
        for tp, offset in start.items():
            reader.seek(tp, offset)
        ends = await reader.end_offsets(list(start))
        while [tp for tp, end in ends.items() if await reader.position(tp) < end]:
            batches = await reader.getmany(timeout_ms=int(POLL_S * 1000))
            if not batches:
                break  # only transaction markers are left
            for tp, messages in batches.items():
                for m in messages:
                    try:
                        item = WORK_CODEC.decode(m.value, Position(m.topic, m.partition, m.offset))
                    except SchemaError:
                        continue
                    if item.change.source_event_id in ids:
                        found[tp] = max(found.get(tp, -1), m.offset)
    return found


async def _taken(
    settings: Settings,
    landed: Sequence[RecordMetadata],
    ids: set[str],
    work: dict[TopicPartition, int],
    wait_s: float,
) -> bool:
    """Has the sync taken the published events: the router committed past them, then the appliers past the
    work items it made of them (exact offsets, so later traffic never makes it wait longer)?"""
    deadline = time.monotonic() + wait_s
    groups = known_groups(settings)
    published: dict[TopicPartition, int] = {}
    for meta in landed:
        tp = TopicPartition(meta.topic, meta.partition)
        published[tp] = max(published.get(tp, -1), meta.offset)
    if not await _passed(settings, groups["sync-route"], published, deadline):
        return False
    return await _passed(settings, groups["sync-apply"], await _routed(settings, work, ids), deadline)


async def _written(settings: Settings, event_ids: set[str], since: datetime) -> list[AuditRecord]:
    found: list[AuditRecord] = []

    def take(message: Raw) -> None:
        try:
            record = AUDIT_CODEC.decode(
                message.value, Position(message.topic, message.partition, message.offset)
            )
        except SchemaError:
            return
        if event_ids & set(record.source_event_ids):
            found.append(record)

    await scan(
        settings.kafka, TopicCatalog.from_settings(settings.kafka).name(TopicRole.AUDIT), take, since=since
    )
    return sorted(found, key=lambda r: r.at)


async def push(
    settings: Settings,
    system: str,
    obj: str,
    chosen: Selection,
    *,
    pull: bool = False,
    wait_s: float = WAIT_S,
    progress: Progress | None = None,
    metrics: Metrics | None = None,
) -> PushReport:
    """Push records of ``obj`` from ``system`` (with ``pull``: from the counterparts of those records, into
    ``system``); see the module docstring. Raises PushError for usage errors, the CRM clients' and the
    publisher's errors otherwise."""
    started = time.monotonic()
    name = resolve_object(system, obj)
    report = PushReport(system, name)
    if pull:  # the ids name records of ``system``; the emails, records of the other system read by them
        if chosen.ids:
            chosen.check(system, name)
        other = "dataverse" if system == "hubspot" else "hubspot"
        other_obj = counterpart_object(settings, system, name)
        if chosen.ids:
            chosen = Selection(ids=tuple(await _counterparts(settings, system, name, chosen.ids)))
        report = PushReport(other, other_obj, pulled_into=system)
        system, name = other, other_obj
    chosen.check(system, name)
    metrics = metrics or Metrics(CollectorRegistry())
    if chosen.every:
        report.bulk = await resync(settings, system, name, pushed=True, progress=progress, metrics=metrics)
        report.seconds = time.monotonic() - started
        return report
    read = _read_hubspot if system == "hubspot" else _read_dataverse
    token = f"push-{uuid.uuid4().hex[:12]}"
    report.events = _marked(await read(settings, name, chosen, metrics), token)
    since = datetime.now(UTC)
    work = await _ends(settings, TopicCatalog.from_settings(settings.kafka).name(TopicRole.WORK))
    publisher = ChangePublisher(settings.kafka, metrics, deadline_s=30.0)
    try:
        await publisher.start()
    except KafkaError as error:
        raise PublishUnavailableError(f"Kafka is not reachable: {error}") from None
    try:
        landed = await publisher.publish(report.events)
    finally:
        await publisher.stop()
    ids = {e.source_event_id for e in report.events if e.source_event_id}
    report.taken = await _taken(settings, landed, ids, work, wait_s)
    report.writes = await _written(settings, ids, since)
    report.seconds = time.monotonic() - started
    return report


def run_push(
    settings: Settings,
    system: str,
    obj: str,
    chosen: Selection,
    *,
    pull: bool,
    progress: Progress,
) -> PushReport:
    """`cdc push` / `cdc pull`: :func:`push` on its own event loop, its failures as CliError exit codes."""
    return run_command(push(settings, system, obj, chosen, pull=pull, progress=progress))
