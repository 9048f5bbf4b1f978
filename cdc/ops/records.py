"""Records read again from their CRM, by id or by email, as the change events a poller would publish.

`cdc push` / `cdc pull` publish them marked ``pushed``; the admin page's "sync now" and `cdc excluded
retry` publish them as they are. HubSpot: one batch read (``idProperty=email`` for emails) with the
properties the reconciler reads, and the records' associations to the other configured objects; Dataverse:
one query by key or ``emailaddress1`` with the configured ``$select``. The ids and emails its CRM does
not have are returned beside the events; nothing is published by this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
from cdc.ops.resync import ResyncError
from cdc.settings import Settings, require
from cdc.sources.polled import sync_config
from streams.events import ChangeEvent, Origin

__all__ = ["EMAIL_OBJECTS", "Found", "RecordsError", "Selection", "read_events"]

EMAIL_OBJECTS = {"hubspot": ("contacts",), "dataverse": ("contacts", "leads")}
"""Objects that can be found by email (HubSpot: ``email`` is a unique property of contacts only)."""
HUBSPOT_BATCH = 100
"""Inputs per batch read (HubSpot's limit for objects' batch endpoints)."""
DATAVERSE_BATCH = 50
"""Conditions per query: a ``$filter`` of 50 keys stays far below the 32 KB URL limit."""
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class RecordsError(ResyncError):
    """A usage error: records asked for in a way that cannot work, or that their CRM does not have."""


@dataclass(frozen=True)
class Selection:
    """Which records: ids, emails, or all of them."""

    ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    every: bool = False

    def check(self, system: str, obj: str) -> None:
        if self.every == bool(self.ids or self.emails):
            raise RecordsError("say which records: --id, --email (each may repeat), or --all")
        if self.emails and obj not in EMAIL_OBJECTS[system]:
            can = ", ".join(EMAIL_OBJECTS[system])
            raise RecordsError(f"{system} {obj} cannot be found by email: use --id (by email: {can})")
        if system == "dataverse":
            bad = [i for i in self.ids if not _GUID.match(i)]
            if bad:
                raise RecordsError(f"not a Dataverse id (a GUID): {', '.join(bad)}")
        elif bad := [i for i in self.ids if not i.isdigit()]:
            raise RecordsError(f"not a HubSpot record id (digits): {', '.join(bad)}")


@dataclass(frozen=True)
class Found:
    """What a read found: the events, and the ids and emails asked for that the CRM does not have."""

    events: list[ChangeEvent]
    missing: list[str]


async def read_events(
    settings: Settings, system: str, obj: str, chosen: Selection, metrics: Metrics
) -> Found:
    """The ids and emails of ``chosen`` (checked first) read from ``system``'s ``obj`` (its API name, as
    `cdc.ops.resync.resolve_object` gives it), as ``origin=resync`` events: a full-record UPSERT each,
    and for HubSpot an ASSOCIATION event per association to the other configured objects."""
    chosen.check(system, obj)
    read = _read_hubspot if system == "hubspot" else _read_dataverse
    return await read(settings, obj, chosen, metrics)


def _chunks(values: Sequence[str], size: int) -> list[Sequence[str]]:
    return [values[n : n + size] for n in range(0, len(values), size)]


def _missing(chosen: Selection, ids: set[str], emails: set[str]) -> list[str]:
    return [i for i in chosen.ids if i.lower() not in ids] + [
        e for e in chosen.emails if e.lower() not in emails
    ]


async def _read_hubspot(settings: Settings, obj: str, chosen: Selection, metrics: Metrics) -> Found:
    """The records by id or email (batch reads of 100), with their associations to the configured objects."""
    require(settings.hubspot.portal_id, "hubspot.portal_id", "reading records again")
    portal = str(settings.hubspot.portal_id)
    properties = list(object_properties(settings, obj, MAX_PAGE))
    configured = settings.poll.hubspot_objects or hubspot_objects(settings, sync_config(settings))
    others = tuple(o for o in configured if o != obj and o in RECONCILED)
    received = datetime.now(UTC)
    ms = int(received.timestamp() * 1000)
    async with hubspot_client(settings.hubspot, metrics, command="reread") as client:
        rows: list[dict[str, Any]] = []
        for values, id_property in ((chosen.ids, None), (chosen.emails, "email")):
            for chunk in _chunks(values, HUBSPOT_BATCH):
                body: dict[str, Any] = {"properties": properties, "inputs": [{"id": v} for v in chunk]}
                if id_property:
                    body["idProperty"] = id_property
                answer = await client.call(client.api.batch_read, obj, body=body)
                rows += [r for r in answer.get("results") or [] if isinstance(r, dict)]
        found_ids = {str(r["id"]) for r in rows}
        events = [record_event(portal, obj, ms, r, received=received, origin=Origin.RESYNC) for r in rows]
        edges = await read_edges(client, obj, others, sorted(found_ids)) if others and found_ids else {}
    for record_id, found in edges.items():
        events += association_events(
            portal, singular(obj), record_id, found, before=None, received=received, origin=Origin.RESYNC
        )
    emails = {str((r.get("properties") or {}).get("email") or "").lower() for r in rows}
    return Found(events, _missing(chosen, found_ids, emails))


async def _read_dataverse(settings: Settings, table: str, chosen: Selection, metrics: Metrics) -> Found:
    """The rows by key or by ``emailaddress1``, 50 to a query (plain queries with the configured
    ``$select``)."""
    tokens = TokenProvider(settings.dataverse)
    client = DataverseClient(settings.dataverse, tokens, metrics)
    logical = entity_logical_name(table)
    key = f"{logical}id"
    wanted = [f"{key} eq {i}" for i in chosen.ids]  # GUIDs, checked: no quoting needed
    wanted += ["emailaddress1 eq '" + e.replace("'", "''") + "'" for e in chosen.emails]
    rows: list[dict[str, Any]] = []
    try:
        await tokens.token()
        await client.start()
        for chunk in _chunks(wanted, DATAVERSE_BATCH):
            url = table_url(client.api_root, table, settings.poll, where=" or ".join(chunk))
            page = await client.get_json(url, endpoint=f"{table}:reread")
            rows += [r for r in page.get("value") or [] if isinstance(r, dict)]
    finally:
        await client.close()
        tokens.close()
    received = datetime.now(UTC)
    events = [
        row_to_event(r, tenant=tokens.org_host, object_type=logical, received_at=received).model_copy(
            update={"origin": Origin.RESYNC, "occurred_at": received}
        )
        for r in rows
    ]
    ids = {str(r.get(key, "")).lower() for r in rows}
    return Found(events, _missing(chosen, ids, {str(r.get("emailaddress1") or "").lower() for r in rows}))
