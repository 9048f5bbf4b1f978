"""Dataverse side of provisioning: change tracking on the polled tables, and the custom columns (metadata
API, ``EntityDefinitions`` and ``EntityDefinitions/Attributes``).

Change tracking (fact sheet §1.1) is per table and off unless enabled; `cdc poll` reads nothing of a table
without it. Per table: read its definition; ``ChangeTrackingEnabled`` true is present; else, when
``CanChangeTrackingBeEnabled`` is false, a problem (it can never be tracked); else, only when asked to
create, turn it on the documented way: PUT the whole definition back with ``ChangeTrackingEnabled: true``
and ``MSCRM.MergeLabels: true`` (a table definition cannot be PATCHed, and a PUT without the header drops
the labels it does not carry; Learn, create-update-entity-definitions-using-web-api, "Update table
definitions"). It cannot be turned off again (CT).

Per table, in order: list its attributes (``LogicalName``, ``AttributeType``); compare the needed columns by
logical name (another attribute type, or a choice column lacking option values the sync writes, is a
problem: never modified); then, only when asked to create (``cdc provision --dataverse``), create the
missing ones one by one. Without it they are listed as missing, so a CI check can fail on them. A table
the org does not have makes each of its columns a problem. The alternate keys some columns carry are
`cdc.dataverse.keys`' (their indexes are built in the background).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from itertools import groupby
from typing import Any

import orjson

from cdc.dataverse import paths
from cdc.dataverse.client import DataverseClient
from cdc.dataverse.errors import FatalError, UnauthorizedError
from cdc.dataverse.keys import KEY_WAIT_S, Building, check_keys, settle_keys
from cdc.provisioning.report import Item, Section
from cdc.provisioning.specs import ColumnSpec

__all__ = ["ensure_change_tracking", "ensure_columns"]

Say = Callable[[str], None]
_NOT_FOUND = 404
_JSON = {"Content-Type": "application/json; charset=utf-8"}
TRACKING = "ChangeTrackingEnabled"


def _item(spec: ColumnSpec, detail: str = "") -> Item:
    return Item("column", spec.table, spec.name, spec.kind, detail)


async def _options(client: DataverseClient, table: str, name: str) -> set[int]:
    url = paths.attribute_options(client.api_root, table, name)
    url = paths.with_options(url, select=["LogicalName"], expand="OptionSet")
    answer = await client.get_json(url, endpoint=paths.METADATA_ATTRIBUTE_OPTIONS)
    options = (answer.get("OptionSet") or {}).get("Options") or []
    return {int(o["Value"]) for o in options if isinstance(o, dict) and isinstance(o.get("Value"), int)}


async def _mismatch(client: DataverseClient, spec: ColumnSpec, existing: dict[str, Any]) -> str:
    kind = existing.get("AttributeType")
    if kind != spec.kind:
        return f"is type {kind}, the sync needs {spec.kind} ({', '.join(spec.steps)})"
    if spec.kind == "Picklist" and spec.options:
        have = await _options(client, spec.table, spec.name)
        lacking = [str(value) for value, _ in spec.options if value not in have]
        if lacking:
            return f"lacks option value(s) {', '.join(lacking)} the sync writes"
    return ""


async def ensure_columns(
    client: DataverseClient,
    specs: Sequence[ColumnSpec],
    section: Section,
    *,
    create: bool,
    dry_run: bool,
    say: Say,
    key_wait_s: float = KEY_WAIT_S,
) -> None:
    """Check every column of ``specs``; create the missing ones when ``create`` and not ``dry_run``. Then
    the alternate keys (`cdc.dataverse.keys`): after creating, wait up to ``key_wait_s`` for their
    indexes."""
    ordered = sorted(specs, key=lambda s: s.table)
    building: list[Building] = []
    for table, group in groupby(ordered, key=lambda s: s.table):
        columns = list(group)
        url = paths.with_options(
            paths.attributes(client.api_root, table), select=["LogicalName", "AttributeType"]
        )
        try:
            listed = await client.get_json(url, endpoint=paths.METADATA_ATTRIBUTES)
        except FatalError as error:
            if error.status != _NOT_FOUND:
                raise
            for spec in columns:
                section.problems.append(_item(spec, f"the org has no table {table!r}"))
                say(f"problem: {section.problems[-1]}")
            continue
        existing = {str(a.get("LogicalName")): a for a in listed.get("value") or [] if isinstance(a, dict)}
        for spec in columns:
            found = existing.get(spec.name)
            if found is not None:
                why = await _mismatch(client, spec, found)
                if why:
                    section.problems.append(_item(spec, why))
                    say(f"problem: {section.problems[-1]}")
                else:
                    section.present.append(_item(spec))
            elif create and not dry_run:
                await _create(client, spec, section, say)
            else:
                section.missing.append(_item(spec))
                say(f"{'would create' if create else 'missing'} {section.missing[-1]}")
        unusable = {(p.object, p.name) for p in section.problems}
        keyed = [s for s in columns if s.alternate_key and (s.table, s.name) not in unusable]
        if keyed:
            making = create and not dry_run
            building += await check_keys(client, table, keyed, section, create=making, say=say)
    wait = key_wait_s if create and not dry_run else 0.0
    await settle_keys(client, building, section, wait_s=wait, say=say)


async def ensure_change_tracking(
    client: DataverseClient,
    tables: Sequence[str],
    section: Section,
    *,
    create: bool,
    dry_run: bool,
    say: Say,
) -> None:
    """Check change tracking on every table of ``tables`` (logical names); turn it on where it is off when
    ``create`` and not ``dry_run`` (module docstring)."""
    for table in tables:
        item, url = Item("table", table, TRACKING, detail=""), paths.definition(client.api_root, table)
        try:
            definition = await client.get_json(url, endpoint=paths.METADATA_ENTITY)
        except FatalError as error:
            if error.status != _NOT_FOUND:
                raise
            section.problems.append(dataclasses.replace(item, detail=f"the org has no table {table!r}"))
            say(f"problem: {section.problems[-1]}")
            continue
        if definition.get(TRACKING) is True:
            section.present.append(item)
            continue
        if (definition.get("CanChangeTrackingBeEnabled") or {}).get("Value") is False:
            why = (
                "change tracking cannot be enabled on this table (CanChangeTrackingBeEnabled is false): "
                "`cdc poll` cannot follow it; disable the sync steps that sync it"
            )
            section.problems.append(dataclasses.replace(item, detail=why))
            say(f"problem: {section.problems[-1]}")
            continue
        if not create or dry_run:
            off = dataclasses.replace(item, detail="change tracking is off: `cdc poll` reads nothing of it")
            section.missing.append(off)
            say(f"{'would enable' if create else 'missing'} {off}")
            continue
        definition.pop("@odata.context", None)
        body = orjson.dumps({**definition, TRACKING: True})
        headers = {**_JSON, "MSCRM.MergeLabels": "true"}
        try:
            await client.send("PUT", url, endpoint=paths.METADATA_UPDATE_ENTITY, body=body, headers=headers)
        except UnauthorizedError:
            raise
        except FatalError as error:
            section.problems.append(
                dataclasses.replace(item, detail=f"Dataverse refused it: {error.message}")
            )
            say(f"problem: {section.problems[-1]}")
            continue
        section.created.append(dataclasses.replace(item, detail="change tracking turned on"))
        say(f"enabled change tracking on table {table}")


async def _create(client: DataverseClient, spec: ColumnSpec, section: Section, say: Say) -> None:
    url = paths.attributes(client.api_root, spec.table)
    try:
        await client.send(
            "POST",
            url,
            endpoint=paths.METADATA_CREATE_ATTRIBUTE,
            body=orjson.dumps(spec.body()),
            headers=_JSON,
        )
    except UnauthorizedError:
        raise
    except FatalError as error:
        if "already exists" in error.message:
            section.present.append(_item(spec))
            return
        section.problems.append(_item(spec, f"Dataverse refused it: {error.message}"))
        say(f"problem: {section.problems[-1]}")
        return
    section.created.append(_item(spec))
    say(f"created {section.created[-1]}")
