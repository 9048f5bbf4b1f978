"""CreateMultiple / UpdateMultiple / UpsertMultiple (fact sheet §2.8): all-or-nothing on standard
tables, every target naming its ``@odata.type``; UpsertMultiple targets name their row with ``@odata.id``
(an alternate key) or the primary key.
"""

from __future__ import annotations

from typing import Any

from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.context import ApiRequest, Outcome, json_outcome
from cdc.sandbox.dataverse.entities import write_row
from cdc.sandbox.dataverse.odata import FilterSyntaxError, parse_key
from cdc.sandbox.dataverse.records import key_values
from cdc.sandbox.dataverse.store import Row, Store
from cdc.sandbox.dataverse.tables import Table

__all__ = ["ACTIONS", "run_action"]

ACTIONS = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")


def _targets(table: Table, body: Any) -> list[dict[str, Any]]:
    targets = body.get("Targets") if isinstance(body, dict) else None
    if not isinstance(targets, list) or not targets:
        raise errors.bad_request("The Targets parameter must be a non-empty collection.", code="0x80048d19")
    expected = f"Microsoft.Dynamics.CRM.{table.logical_name}"
    for target in targets:
        if not isinstance(target, dict) or str(target.get("@odata.type", "")).lstrip("#") != expected:
            raise errors.bad_request(
                f'Every target must be an object with "@odata.type": "{expected}".', code="0x80048d19"
            )
    return targets


def _upsert_target(store: Store, table: Table, target: dict[str, Any]) -> tuple[Row | None, dict[str, Any]]:
    reference = target.get("@odata.id")
    if isinstance(reference, str):
        prefix = f"{table.entity_set}("
        tail = reference.rsplit("/", 1)[-1]
        if not tail.startswith(prefix) or not tail.endswith(")"):
            raise errors.invalid_key(table.logical_name)
        try:
            key = parse_key(tail[len(prefix) : -1])
        except FilterSyntaxError as exc:
            raise errors.invalid_key(table.logical_name) from exc
        return key_values(store, table, key)
    record_id = target.get(table.primary_id)
    if isinstance(record_id, str):
        return key_values(store, table, record_id.lower())
    return None, {}


def run_action(store: Store, table: Table, request: ApiRequest, action: str) -> Outcome:
    targets = _targets(table, request.json())
    ids: list[str] = []
    with store.transaction():
        for target in targets:
            body = {k: v for k, v in target.items() if k != "@odata.id"}
            if action == "CreateMultiple":
                ids.append(write_row(store, table, body, None, {}).id)
            elif action == "UpdateMultiple":
                record_id = str(target.get(table.primary_id, "")).lower()
                row = store.get(table.logical_name, record_id) if record_id else None
                if row is None:
                    name = table.logical_name.capitalize()
                    raise errors.DataverseError(
                        404, "0x80040217", f"{name} With Ids = {record_id} Do Not Exist"
                    )
                write_row(store, table, body, row, {})
            else:
                row, key = _upsert_target(store, table, target)
                write_row(store, table, body, row, key)
    if action == "CreateMultiple":
        context = f"{request.api}/$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse"
        return json_outcome(200, {"@odata.context": context, "Ids": ids})
    return Outcome(204, {"OData-Version": "4.0"})
