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

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from cdc.budget import shared_budgets
from cdc.dataverse import entity_logical_name
from cdc.hubspot.paths import singular
from cdc.metrics import Metrics
from cdc.ops._kafka import load_links
from cdc.ops.explain import RecordQuery
from cdc.ops.follow import taken, work_ends, written
from cdc.ops.records import RecordsError, Selection, read_events
from cdc.ops.resync import ResyncReport, resolve_object, resync, run_command
from cdc.settings import Settings
from cdc.sources.polled import sync_config
from cdc.sources.publisher import ChangePublisher, PublishUnavailableError
from streams.audit import AuditRecord
from streams.events import ChangeEvent
from streams.keys import SourceSystem

__all__ = ["PushError", "PushReport", "Selection", "counterpart_object", "push", "run_push"]

Progress = Callable[[str], None]
WAIT_S = 30.0
"""How long a push of single records waits for the sync to take them before it says so."""


class PushError(RecordsError):
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


def _object_type(system: str, obj: str) -> str:
    """The object type events and steps name (``contact``) for an API name (``contacts``)."""
    return singular(obj) if system == "hubspot" else entity_logical_name(obj)


def _flows_from(settings: Settings, system: str, obj: str) -> None:
    """PushError unless an enabled step takes ``obj`` of ``system`` somewhere: a push nowhere would report
    "nothing to write" as if the other side agreed."""
    one = _object_type(system, obj)
    steps = sync_config(settings).enabled_steps()
    if not any(str(s.source.system) == system and s.source.object == one for s in steps):
        raise PushError(
            f"no enabled sync step takes {system} {obj} anywhere: there is nothing to push from it"
        )


def counterpart_object(settings: Settings, system: str, obj: str) -> str:
    """The object the sync configuration pairs with ``obj`` of ``system``, in the other system's API names."""
    one = _object_type(system, obj)
    for pair in sync_config(settings).pairs():
        if (pair.hubspot if system == "hubspot" else pair.dataverse) == one:
            other = "dataverse" if system == "hubspot" else "hubspot"
            return resolve_object(other, pair.dataverse if system == "hubspot" else pair.hubspot)
    raise PushError(f"no sync step pairs {system} {obj} with anything: nothing to pull it from")


def _marked(events: Sequence[ChangeEvent], token: str) -> list[ChangeEvent]:
    return [
        e.model_copy(update={"pushed": True, "source_event_id": f"{token}-{n}"}) for n, e in enumerate(events)
    ]


async def _counterparts(settings: Settings, system: str, obj: str, ids: Sequence[str]) -> list[str]:
    """The linked counterparts' ids of ``ids`` (records of ``system``), or PushError naming the unlinked."""
    index = await load_links(settings.kafka)
    kind = _object_type(system, obj)
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
    _flows_from(settings, system, name)
    metrics = metrics or Metrics(CollectorRegistry())
    if chosen.every:
        report.bulk = await resync(settings, system, name, pushed=True, progress=progress, metrics=metrics)
        report.seconds = time.monotonic() - started
        return report
    token = f"push-{uuid.uuid4().hex[:12]}"
    async with shared_budgets(settings, metrics, role="push"):  # its reads count with the running roles'
        found = await read_events(settings, system, name, chosen, metrics)
    if found.missing:
        raise PushError(f"{system} {name}: no such record: {', '.join(found.missing)}")
    report.events = _marked(found.events, token)
    since = datetime.now(UTC)
    work = await work_ends(settings)
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
    report.taken = await taken(settings, landed, ids, work, wait_s)
    report.writes = await written(settings, ids, since)
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
