"""`cdc excluded`: the records the sync refuses or skips now (`streams.exclusions`), and their retry.

``list`` and ``show`` read the `exclusions` topic to its end. ``retry`` re-reads each record from its
source CRM, as `cdc resync` does for a whole object (the same properties and columns, the same event
builders), and publishes it as a change event (``origin=resync``) through the normal pipeline: the sync
plans it again, and clears its exclusion when it syncs, or records it again with what still stops it. A
record its CRM no longer has is reported, not published (its exclusion clears when its delete arrives).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from cdc.budget import shared_budgets
from cdc.dataverse import DataverseApiError
from cdc.dataverse import RetriableError as DataverseRetriable
from cdc.exits import CliError, ExitCode
from cdc.hubspot.errors import HubSpotApiError
from cdc.hubspot.errors import RetriableError as HubSpotRetriable
from cdc.metrics import Metrics
from cdc.ops.records import Selection, read_events
from cdc.ops.resync import ResyncError, resolve_object
from cdc.settings import Settings
from cdc.sources.publisher import ChangePublisher, PublishUnavailableError
from streams.events import ChangeEvent
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


async def _read(
    settings: Settings, refs: Sequence[RecordRef], metrics: Metrics
) -> tuple[dict[str, ChangeEvent], list[ChangeEvent]]:
    """Each record read again (`cdc.ops.records`), by system and object: source record key -> its event,
    and the association events read with HubSpot records (published after them)."""
    found: dict[str, ChangeEvent] = {}
    associations: list[ChangeEvent] = []
    groups: dict[tuple[SourceSystem, str], list[RecordRef]] = {}
    for ref in refs:
        groups.setdefault((ref.system, ref.object_type), []).append(ref)
    for (system, object_type), group in groups.items():
        obj = resolve_object(str(system), object_type)
        chosen = Selection(ids=tuple(dict.fromkeys(ref.object_id for ref in group)))
        read = await read_events(settings, str(system), obj, chosen, metrics)
        marked = [e.model_copy(update={"source_event_type": RETRIED}) for e in read.events]
        by_id = {e.object_id: e for e in marked if e.record is not None}
        found.update((ref.key, by_id[ref.object_id]) for ref in group if ref.object_id in by_id)
        associations += [e for e in marked if e.record is None]
    return found, associations


async def retry(
    settings: Settings, targets: Sequence[Exclusion], *, metrics: Metrics | None = None
) -> RetryReport:
    """Re-read each target's record from its source CRM and publish it as a change event.

    In order: check every object type and id (a usage error before anything is read), start the producer, read
    per system, publish what was found (acknowledged by Kafka before this returns), close the producer."""
    metrics = metrics or Metrics(CollectorRegistry())
    for e in targets:
        try:
            obj = resolve_object(str(e.record.system), e.record.object_type)
            Selection(ids=(e.record.object_id,)).check(str(e.record.system), obj)
        except ResyncError as error:
            raise CliError(f"{e.key}: {error}", ExitCode.USAGE) from None
    report = RetryReport()
    if not targets:
        return report
    publisher = ChangePublisher(settings.kafka, metrics, deadline_s=60.0)
    try:
        try:
            await publisher.start()
        except KafkaError as error:
            raise PublishUnavailableError(f"Kafka is not reachable: {error}") from None
        async with shared_budgets(settings, metrics, role="excluded"):
            found, associations = await _read(settings, [e.record for e in targets], metrics)
        events = [found[e.key] for e in targets if e.key in found] + associations
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
