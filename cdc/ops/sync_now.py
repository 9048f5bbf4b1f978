"""One record's "sync now" (the admin page's button): read it again from its CRM and publish it as a
change event with ``origin=resync``, as `cdc resync` does for every record of an object type.

The sync stage then applies it as any change: a record already in step writes nothing (guarantee 5). One
read: HubSpot's ``GET objects/{type}/{id}`` with the properties the reconciler asks for; Dataverse's
``GET entityset(id)`` with the configured ``$select``. A record the CRM no longer has is a clear
:class:`RecordGoneError`, nothing published.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from cdc.dataverse import DataverseApiError, DataverseClient, TokenProvider, row_to_event
from cdc.dataverse import paths as dataverse_paths
from cdc.hubspot.client import hubspot_client
from cdc.hubspot.errors import HubSpotApiError
from cdc.hubspot.reconciler import object_properties, record_event
from cdc.hubspot.search import LAST_MODIFIED, MAX_PAGE, parse_ms
from cdc.metrics import Metrics
from cdc.ops.resync import resolve_object
from cdc.settings import Settings
from cdc.sources.publisher import ChangePublisher
from streams.events import ChangeEvent, Origin
from streams.keys import RecordRef, SourceSystem

__all__ = ["RecordGoneError", "read_record", "sync_now"]

NOT_FOUND = 404


class RecordGoneError(LookupError):
    """The CRM has no such record (deleted, merged away, or a wrong id)."""


async def read_record(settings: Settings, ref: RecordRef, metrics: Metrics) -> ChangeEvent:
    """The record as its CRM has it now, as a full-record UPSERT event (``origin=resync``)."""
    name = resolve_object(str(ref.system), ref.object_type)
    if ref.system is SourceSystem.HUBSPOT:
        return await _hubspot(settings, ref, name, metrics)
    return await _dataverse(settings, ref, name, metrics)


async def _hubspot(settings: Settings, ref: RecordRef, name: str, metrics: Metrics) -> ChangeEvent:
    received = datetime.now(UTC)
    properties = object_properties(settings, name, MAX_PAGE)
    async with hubspot_client(settings.hubspot, metrics, command="sync-now") as client:
        try:
            found = await client.call(
                client.api.read_object, name, ref.object_id, query={"properties": ",".join(properties)}
            )
        except HubSpotApiError as error:
            if error.status == NOT_FOUND:
                raise RecordGoneError(f"HubSpot has no {ref.object_type} {ref.object_id}") from None
            raise
    modified = (found.get("properties") or {}).get(LAST_MODIFIED[name]) or found.get("updatedAt")
    ms = parse_ms(None if modified is None else str(modified)) or int(received.timestamp() * 1000)
    return record_event(ref.tenant, name, ms, found, received=received, origin=Origin.RESYNC)


async def _dataverse(settings: Settings, ref: RecordRef, name: str, metrics: Metrics) -> ChangeEvent:
    received = datetime.now(UTC)
    tokens = TokenProvider(settings.dataverse)
    client = DataverseClient(settings.dataverse, tokens, metrics)
    columns = list(settings.poll.dataverse_select.get(name, ()))
    url = dataverse_paths.with_options(
        dataverse_paths.row(client.api_root, name, ref.object_id), select=columns
    )
    try:
        await tokens.token()
        await client.start()
        try:
            row = await client.get_json(url, endpoint=f"{name}:sync-now")
        except DataverseApiError as error:
            if error.status == NOT_FOUND:
                raise RecordGoneError(f"Dataverse has no {ref.object_type} {ref.object_id}") from None
            raise
    finally:
        await client.close()
        tokens.close()
    event = row_to_event(row, tenant=tokens.org_host, object_type=ref.object_type, received_at=received)
    return event.model_copy(update={"origin": Origin.RESYNC})


async def sync_now(
    settings: Settings, ref: RecordRef, publisher: ChangePublisher, *, metrics: Metrics | None = None
) -> ChangeEvent:
    """Read ``ref`` again and publish it through the caller's started ``publisher``; returns the event once
    Kafka acknowledged it. One read, so it takes a budget of its own (a click is one call; the roles'
    shared budget counts it through HubSpot's rate-limit headers). Raises :class:`RecordGoneError`, the
    CRM clients' errors, and `cdc.sources.publisher.PublishUnavailableError`.
    """
    event = await read_record(settings, ref, metrics or Metrics(CollectorRegistry()))
    await publisher.publish([event])
    return event
