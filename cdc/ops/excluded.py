"""`cdc excluded`: the records the sync refuses or skips now (`streams.exclusions`), and their retry.

``list`` and ``show`` read the `exclusions` topic to its end. ``retry`` re-reads each record from its
source CRM, as `cdc resync` does for a whole object (the same properties and columns, the same event
builders), and publishes it as a change event (``origin=resync``) through the normal pipeline: the sync
plans it again, and clears its exclusion when it syncs, or records it again with what still stops it. A
record its CRM no longer has is reported, not published (its exclusion clears when its delete arrives).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from cdc.budget import shared_budgets
from cdc.dataverse import DataverseApiError, DataverseClient, TokenProvider, row_to_event
from cdc.dataverse import RetriableError as DataverseRetriable
from cdc.dataverse.poller import table_url
from cdc.exits import CliError, ExitCode
from cdc.hubspot.client import HubSpotClient, hubspot_client
from cdc.hubspot.errors import HubSpotApiError, RequestError
from cdc.hubspot.errors import RetriableError as HubSpotRetriable
from cdc.hubspot.reconciler import object_properties, record_event
from cdc.hubspot.search import LAST_MODIFIED, MAX_PAGE, parse_ms
from cdc.metrics import Metrics
from cdc.ops.resync import ResyncError, resolve_object
from cdc.settings import Settings, require
from cdc.sources.publisher import ChangePublisher, PublishUnavailableError
from streams.events import ChangeEvent, Origin
from streams.exclusion_view import ExclusionsView, load_exclusions
from streams.exclusions import Exclusion, ExclusionReason
from streams.keys import RecordRef, SourceSystem

__all__ = [
    "RetryReport",
    "exclusion_json",
    "lines",
    "load",
    "parse_reason",
    "retry",
    "run_retry",
    "select",
]

RETRIED = "excluded_retry"
"""The ``source_event_type`` of a retry's change events (`cdc explain` shows it)."""


def parse_reason(text: str | None) -> ExclusionReason | None:
    """A reason named on the command line, or a usage error listing the known ones."""
    if text is None:
        return None
    try:
        return ExclusionReason(text.strip().lower())
    except ValueError:
        known = ", ".join(sorted(r.value for r in ExclusionReason))
        raise CliError(f"unknown reason {text!r}: use one of {known}", ExitCode.USAGE) from None


async def load(settings: Settings) -> ExclusionsView:
    return await load_exclusions(settings.kafka)


def select(
    view: ExclusionsView,
    *,
    keys: Sequence[str] = (),
    reason: ExclusionReason | None = None,
    step: str | None = None,
) -> list[Exclusion]:
    """The exclusions named by key (each must be excluded now: a usage error names those that are not),
    else those of ``reason`` and ``step``."""
    if keys:
        unknown = [k for k in keys if view.get(k) is None]
        if unknown:
            raise CliError(
                f"not excluded now: {', '.join(unknown)} (keys as `cdc excluded list` prints them, "
                "system/tenant/object/id)",
                ExitCode.USAGE,
            )
        return [e for k in dict.fromkeys(keys) if (e := view.get(k)) is not None]
    return view.select(reason=reason, step=step)


def _values(e: Exclusion, width: int = 60) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in e.values.items()) or "-"
    return text if len(text) <= width else text[: width - 1] + "…"


def lines(exclusions: Sequence[Exclusion]) -> list[str]:
    """A table: step, reason, record, counterpart, values, last seen, count."""
    head = ("STEP", "REASON", "RECORD", "COUNTERPART", "VALUES", "LAST SEEN", "COUNT")
    rows = [
        (
            e.step,
            str(e.reason) + (f" +{len(e.reasons) - 1}" if len(e.reasons) > 1 else ""),
            e.key,
            e.counterpart.key if e.counterpart is not None else "-",
            _values(e),
            e.last_seen.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            str(e.count),
        )
        for e in exclusions
    ]
    widths = [max(len(row[i]) for row in (head, *rows)) for i in range(len(head))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (head, *rows)
    ]


def exclusion_json(e: Exclusion) -> dict[str, Any]:
    out: dict[str, Any] = e.model_dump(mode="json", exclude_none=True)
    out["key"] = e.key
    return out


@dataclass
class RetryReport:
    """What a retry queued (published), and what it could not."""

    queued: list[tuple[Exclusion, ChangeEvent]] = field(default_factory=list)
    gone: list[Exclusion] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"queued {e.key} ({e.step}: {e.reason})" for e, _ in self.queued]
        out += [f"not found in {e.record.system}, nothing queued: {e.key}" for e in self.gone]
        out.append(f"{len(self.queued)} record(s) queued for sync, {len(self.gone)} not found")
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "queued": [{"key": e.key, "step": e.step, "reason": str(e.reason)} for e, _ in self.queued],
            "not_found": [e.key for e in self.gone],
        }


async def _hubspot(settings: Settings, refs: Sequence[RecordRef], metrics: Metrics) -> dict[str, ChangeEvent]:
    """Each record read by id (`Endpoints.read_object`, the properties `cdc resync` reads)."""
    require(settings.hubspot.portal_id, "hubspot.portal_id", "excluded retry")
    found: dict[str, ChangeEvent] = {}
    async with hubspot_client(settings.hubspot, metrics, command="excluded") as client:
        for ref in refs:
            event = await _hubspot_one(settings, client, ref)
            if event is not None:
                found[ref.key] = event
    return found


async def _hubspot_one(settings: Settings, client: HubSpotClient, ref: RecordRef) -> ChangeEvent | None:
    obj = resolve_object("hubspot", ref.object_type)
    properties = object_properties(settings, obj, MAX_PAGE)
    try:
        result = await client.call(
            client.api.read_object, obj, ref.object_id, query={"properties": ",".join(properties)}
        )
    except RequestError as error:
        if error.status == 404:  # noqa: PLR2004 -- deleted (or merged away and archived)
            return None
        raise
    received = datetime.now(UTC)
    modified = (result.get("properties") or {}).get(LAST_MODIFIED[obj]) or result.get("updatedAt")
    ms = parse_ms(None if modified is None else str(modified)) or int(received.timestamp() * 1000)
    event = record_event(ref.tenant, obj, ms, result, received=received, origin=Origin.RESYNC)
    return event.model_copy(update={"source_event_type": RETRIED})


async def _dataverse(
    settings: Settings, refs: Sequence[RecordRef], metrics: Metrics
) -> dict[str, ChangeEvent]:
    """Each row read by its key column with the `$select` `cdc resync` uses."""
    tokens = TokenProvider(settings.dataverse)
    client = DataverseClient(settings.dataverse, tokens, metrics)
    found: dict[str, ChangeEvent] = {}
    try:
        await tokens.token()
        await client.start()
        for ref in refs:
            table = resolve_object("dataverse", ref.object_type)
            where = f"{ref.object_type}id eq {_guid(ref.object_id)}"
            page = await client.get_json(
                table_url(client.api_root, table, settings.poll, where=where), endpoint=f"{table}:retry"
            )
            received = datetime.now(UTC)
            for row in page.get("value") or []:
                event = row_to_event(
                    row, tenant=ref.tenant, object_type=ref.object_type, received_at=received
                )
                found[ref.key] = event.model_copy(
                    update={"origin": Origin.RESYNC, "source_event_type": RETRIED}
                )
    finally:
        await client.close()
        tokens.close()
    return found


def _guid(text: str) -> str:
    """A Dataverse id as an OData GUID literal; a usage error for anything else (it goes into a URL)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise CliError(f"not a Dataverse id (a GUID): {text!r}", ExitCode.USAGE) from None


async def retry(
    settings: Settings, targets: Sequence[Exclusion], *, metrics: Metrics | None = None
) -> RetryReport:
    """Re-read each target's record from its source CRM and publish it as a change event.

    In order: check every object type and id (a usage error before anything is read), start the producer, read
    per system, publish what was found (acknowledged by Kafka before this returns), close the producer."""
    metrics = metrics or Metrics(CollectorRegistry())
    for e in targets:
        try:
            resolve_object(str(e.record.system), e.record.object_type)
        except ResyncError as error:
            raise CliError(f"{e.key}: {error}", ExitCode.USAGE) from None
        if e.record.system is SourceSystem.DATAVERSE:
            _guid(e.record.object_id)
    report = RetryReport()
    if not targets:
        return report
    publisher = ChangePublisher(settings.kafka, metrics, deadline_s=60.0)
    try:
        try:
            await publisher.start()
        except KafkaError as error:
            raise PublishUnavailableError(f"Kafka is not reachable: {error}") from None
        found: dict[str, ChangeEvent] = {}
        async with shared_budgets(settings, metrics, role="excluded"):
            hs = [e.record for e in targets if e.record.system is SourceSystem.HUBSPOT]
            dv = [e.record for e in targets if e.record.system is SourceSystem.DATAVERSE]
            if hs:
                found.update(await _hubspot(settings, hs, metrics))
            if dv:
                found.update(await _dataverse(settings, dv, metrics))
        events = [found[e.key] for e in targets if e.key in found]
        if events:
            await publisher.publish(events)
        report.queued = [(e, found[e.key]) for e in targets if e.key in found]
        report.gone = [e for e in targets if e.key not in found]
    finally:
        await publisher.stop()
    return report


def run_retry(settings: Settings, targets: Sequence[Exclusion]) -> RetryReport:
    """:func:`retry` on its own event loop, its failures as :class:`CliError` exit codes."""
    try:
        return asyncio.run(retry(settings, targets))
    except (PublishUnavailableError, DataverseRetriable, HubSpotRetriable) as error:
        raise CliError(f"{type(error).__name__}: {error}", ExitCode.UNAVAILABLE) from None
    except (DataverseApiError, HubSpotApiError) as error:
        raise CliError(f"{type(error).__name__}: {error}", ExitCode.CONFIG) from None
