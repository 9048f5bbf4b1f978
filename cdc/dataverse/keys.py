"""Dataverse alternate keys for provisioning: each column spec with ``alternate_key`` is a key of its own
(``<column>_key``), which the daemon's creates upsert by.

A key is not usable the moment it is made: Dataverse builds its index in a background system job, and its
``EntityKeyIndexStatus`` goes Pending -> InProgress -> Active, or Failed (Learn, define-alternate-keys-entity,
"Monitor index creation for alternate keys"; maker page define-alternate-keys-portal: "The alternate key
will not be immediately available"). A Failed build (typically rows already holding duplicate values) is
retried, once the data is corrected, with the action ``ReactivateEntityKey`` (Learn,
webapi/reference/reactivateentitykey). Microsoft's own upsert sample waits for Active the same way
(PowerApps-Samples, ProductUpsertSample ``WaitForEntityAndKeysToBeActive``).

Order, per run: (1) `check_keys` per table: list the table's keys; an Active one is present, a missing one
is created (when asked to create) or listed as missing, a Pending or InProgress one is being built, a
Failed one is a problem, or (when asked to create) resubmitted with ReactivateEntityKey; (2) `settle_keys`
once for all tables: poll the keys being built, bounded by ``wait_s``, then file each as created/present
(Active), pending (still being built: not an error, and nothing to re-create) or a problem (Failed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from cdc.dataverse import paths
from cdc.dataverse.client import DataverseClient
from cdc.dataverse.errors import FatalError, UnauthorizedError
from cdc.provisioning.report import Item, Section
from cdc.provisioning.specs import ColumnSpec

__all__ = ["KEY_WAIT_S", "Building", "check_keys", "failed_detail", "settle_keys"]

Say = Callable[[str], None]
KEY_WAIT_S = 120.0
"""How long `cdc provision --dataverse` waits, by default, for the keys it made to become Active."""
POLL_S = (0.25, 0.5, 1.0, 2.0, 5.0)
"""Pauses between polls of the key metadata (the last repeats): quick for a small org, gentle after."""
PROGRESS_S = 15.0
_BUILDING = frozenset({"Pending", "InProgress"})
_JSON = {"Content-Type": "application/json; charset=utf-8"}


@dataclass(frozen=True)
class Building:
    """A key whose index is not Active yet: made now (``created``), resubmitted after a failure
    (``reactivated``), or found being built."""

    item: Item
    table: str
    column: str
    created: bool = False
    reactivated: bool = False


async def _statuses(client: DataverseClient, table: str) -> dict[str, tuple[str, str]]:
    """Single-column keys of ``table``: column -> (key logical name, EntityKeyIndexStatus)."""
    select = ["LogicalName", "KeyAttributes", "EntityKeyIndexStatus"]
    url = paths.with_options(paths.keys(client.api_root, table), select=select)
    listed = await client.get_json(url, endpoint=paths.METADATA_KEYS)
    found: dict[str, tuple[str, str]] = {}
    for key in listed.get("value") or []:
        columns = list(key.get("KeyAttributes") or ()) if isinstance(key, dict) else []
        if len(columns) == 1:
            found[str(columns[0])] = (str(key.get("LogicalName")), str(key.get("EntityKeyIndexStatus")))
    return found


def failed_detail(table: str, column: str, *, again: bool = False) -> str:
    """What a Failed key means and what to do, for the report and the daemon's log."""
    when = "failed again after it was reactivated" if again else "failed"
    return (
        f"Dataverse's index build for this key {when} (EntityKeyIndexStatus Failed), most likely because "
        f"rows of {table} hold duplicate values of {column}: remove or merge the duplicates, then run "
        "`cdc provision --dataverse` again (it reactivates the key with ReactivateEntityKey); until then "
        "creates cannot upsert by it"
    )


def _pending_detail(status: str) -> str:
    return (
        f"index {status}: Dataverse is still building it; creates upsert by it once it is Active "
        "(the daemon checks again every minute)"
    )


async def check_keys(
    client: DataverseClient,
    table: str,
    specs: Sequence[ColumnSpec],
    section: Section,
    *,
    create: bool,
    say: Say,
) -> list[Building]:
    """Step (1) of the module docstring for one table; returns the keys being built."""
    have = await _statuses(client, table)
    building: list[Building] = []
    for spec in specs:
        item = Item("key", spec.table, f"{spec.name}_key", f"alternate key on {spec.name}")
        found = have.get(spec.name)
        status = found[1] if found else None
        if status == "Active":
            section.present.append(item)
        elif status in _BUILDING:
            building.append(Building(item, table, spec.name))
        elif found is not None and status == "Failed":
            if create and await _reactivate(client, table, found[0], item, section=section, say=say):
                building.append(Building(item, table, spec.name, reactivated=True))
            elif not create:
                section.problems.append(dataclasses.replace(item, detail=failed_detail(table, spec.name)))
                say(f"problem: {section.problems[-1]}")
        elif found is not None:
            section.problems.append(dataclasses.replace(item, detail=f"unknown index status {status!r}"))
            say(f"problem: {section.problems[-1]}")
        elif not create:
            section.missing.append(item)
            say(f"missing {item}")
        elif await _create(client, table, spec, item, section=section, say=say):
            building.append(Building(item, table, spec.name, created=True))
    return building


async def _create(
    client: DataverseClient, table: str, spec: ColumnSpec, item: Item, *, section: Section, say: Say
) -> bool:
    try:
        body = orjson.dumps(spec.key_body())
        url = paths.keys(client.api_root, table)
        await client.send("POST", url, endpoint=paths.METADATA_CREATE_KEY, body=body, headers=_JSON)
    except UnauthorizedError:
        raise
    except FatalError as error:
        section.problems.append(dataclasses.replace(item, detail=f"Dataverse refused it: {error.message}"))
        say(f"problem: {section.problems[-1]}")
        return False
    say(f"created {item}")
    return True


async def _reactivate(
    client: DataverseClient, table: str, name: str, item: Item, *, section: Section, say: Say
) -> bool:
    body = orjson.dumps({"EntityLogicalName": table, "EntityKeyLogicalName": name})
    try:
        await client.send(
            "POST",
            paths.reactivate_key(client.api_root),
            endpoint=paths.METADATA_REACTIVATE_KEY,
            body=body,
            headers=_JSON,
        )
    except UnauthorizedError:
        raise
    except FatalError as error:
        refused = f"reactivating it was refused: {error.message}"
        why = f"{failed_detail(table, item.name.removesuffix('_key'))}; {refused}"
        section.problems.append(dataclasses.replace(item, detail=why))
        say(f"problem: {section.problems[-1]}")
        return False
    say(f"reactivated {item}: its index build had failed")
    return True


async def settle_keys(
    client: DataverseClient,
    building: Sequence[Building],
    section: Section,
    *,
    wait_s: float,
    say: Say,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Step (2) of the module docstring: wait (at most ``wait_s``) for the keys being built, then file
    each by the status it ended with."""
    if not building:
        return
    started = clock()
    tables = sorted({b.table for b in building})
    if wait_s > 0:
        say(f"waiting up to {wait_s:.0f} s for Dataverse to build {len(building)} alternate key index(es)")
    pauses, last_said = iter(POLL_S), started
    statuses: dict[str, dict[str, tuple[str, str]]] = {}

    def status_of(entry: Building) -> str | None:
        found = statuses[entry.table].get(entry.column)
        return found[1] if found else None

    while True:
        statuses = {table: await _statuses(client, table) for table in tables}
        left = [b for b in building if status_of(b) in _BUILDING]
        remaining = started + wait_s - clock()
        if not left or remaining <= 0:
            break
        if clock() - last_said >= PROGRESS_S:
            last_said = clock()
            say(
                "still building: "
                + ", ".join(f"{b.item.object}.{b.item.name} ({status_of(b)})" for b in left)
            )
        await asyncio.sleep(min(next(pauses, POLL_S[-1]), remaining))
    for entry in building:
        _file(entry, status_of(entry), section, say)
    if wait_s > 0:
        active = sum(1 for entry in building if status_of(entry) == "Active")
        say(f"{active} of {len(building)} alternate key index(es) Active after {clock() - started:.1f} s")


def _file(entry: Building, status: str | None, section: Section, say: Say) -> None:
    """Where a key ends in the report, by the status it ended with."""
    if status == "Active":
        (section.created if entry.created else section.present).append(entry.item)
        return
    if status in _BUILDING:
        section.pending.append(dataclasses.replace(entry.item, detail=_pending_detail(str(status))))
        say(f"pending {section.pending[-1]}")
        return
    if status == "Failed":
        why = failed_detail(entry.table, entry.column, again=entry.reactivated)
    else:
        why = f"the key is gone (index status {status!r}) while Dataverse was building it"
    section.problems.append(dataclasses.replace(entry.item, detail=why))
    say(f"problem: {section.problems[-1]}")
