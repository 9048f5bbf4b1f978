"""Records as the CRM objects API shows them (``SimplePublicObject``, fact sheet §3.3) and batch envelopes."""

from __future__ import annotations

from typing import Any

from cdc.sandbox.hubspot.associations import label_of
from cdc.sandbox.hubspot.objects import OBJECT_TYPES
from cdc.sandbox.hubspot.store import Record, Store, iso

__all__ = ["batch_envelope", "record_json"]


def record_json(
    store: Store,
    record: Record,
    properties: list[str] | None = None,
    *,
    with_history: list[str] | None = None,
    associations: list[str] | None = None,
    everything: bool = False,
) -> dict[str, Any]:
    """``properties`` None: the type's defaults. System properties always come along; unknown names are
    left out (HubSpot ignores them on reads), known but empty ones come as null."""
    ot = record.type
    known = store.properties[ot.name]
    if everything:
        names = list(record.properties)
    else:
        wanted = list(ot.defaults) if properties is None else properties
        names = [n for n in [*wanted, "createdate", "hs_object_id", ot.last_modified] if n in known]
    body: dict[str, Any] = {
        "id": record.id,
        "properties": {name: record.properties.get(name) for name in dict.fromkeys(names)},
        "createdAt": iso(record.created_ms),
        "updatedAt": iso(record.updated_ms),
        "archived": record.archived,
    }
    if record.archived_ms is not None:
        body["archivedAt"] = iso(record.archived_ms)
    if with_history:
        body["propertiesWithHistory"] = {
            name: record.history.get(name, []) for name in with_history if name in known
        }
    if associations:
        body["associations"] = _associations(store, record, associations)
    return body


def _associations(store: Store, record: Record, targets: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for target_name in targets:
        target = next(
            (t for t in OBJECT_TYPES.values() if target_name in {t.name, t.singular, t.type_id}), None
        )
        if target is None:
            continue
        results = []
        for target_id, type_ids in sorted(store.associations_of(record.type, record.id, target).items()):
            base = f"{record.type.singular}_to_{target.singular}"
            for type_id in sorted(type_ids):
                labelled = label_of(type_id) is not None
                # v3 reads name the primary "contact_to_company", the plain link "..._unlabeled".
                kind = base if labelled or type_id in {4, 3} else f"{base}_unlabeled"
                results.append({"id": target_id, "type": kind})
        if results:
            found[target.name] = {"results": results}
    return found


def batch_envelope(
    results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str, completed: str
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results}
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
    body["startedAt"] = started
    body["completedAt"] = completed
    return body
