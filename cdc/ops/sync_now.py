"""One record's "sync now" (the admin page's button): read it again from its CRM and publish it as a
change event with ``origin=resync``, as `cdc resync` does for every record of an object type.

The sync stage then applies it as any change: a record already in step writes nothing (guarantee 5). The
read is `cdc.ops.records` (the one `cdc push` and `cdc excluded retry` use): the record with the
properties the reconciler asks for, or the configured ``$select``, and a HubSpot record's associations. A
record the CRM no longer has is a clear :class:`RecordGoneError`, nothing published.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from cdc.metrics import Metrics
from cdc.ops.records import Selection, read_events
from cdc.ops.resync import resolve_object
from cdc.settings import Settings
from cdc.sources.publisher import ChangePublisher
from streams.events import ChangeEvent
from streams.keys import RecordRef, SourceSystem

__all__ = ["RecordGoneError", "sync_now"]

CRM_NAMES = {SourceSystem.HUBSPOT: "HubSpot", SourceSystem.DATAVERSE: "Dataverse"}


class RecordGoneError(LookupError):
    """The CRM has no such record (deleted, merged away, or a wrong id)."""


async def sync_now(
    settings: Settings, ref: RecordRef, publisher: ChangePublisher, *, metrics: Metrics | None = None
) -> ChangeEvent:
    """Read ``ref`` again and publish it through the caller's started ``publisher``; returns the record's
    event once Kafka acknowledged it. One read, so it takes a budget of its own (a click is one call; the
    roles' shared budget counts it through HubSpot's rate-limit headers). Raises :class:`RecordGoneError`,
    `cdc.ops.resync.ResyncError` for an unknown object or an id of the wrong shape, the CRM clients'
    errors, and `cdc.sources.publisher.PublishUnavailableError`.
    """
    name = resolve_object(str(ref.system), ref.object_type)
    chosen = Selection(ids=(ref.object_id,))
    found = await read_events(
        settings, str(ref.system), name, chosen, metrics or Metrics(CollectorRegistry())
    )
    record = next((e for e in found.events if e.record is not None), None)
    if record is None:
        raise RecordGoneError(f"{CRM_NAMES[ref.system]} has no {ref.object_type} {ref.object_id}")
    await publisher.publish(found.events)
    return record
