"""The Dataverse privileges the daemon's application user needs for a sync configuration: the least-privilege
security role, derived from the enabled steps. Pure: no I/O (`cdc.dataverse.privileges` checks them).

Privileges are named ``prv`` + verb + the table's SchemaName (``prvCreateContact``; Learn, "Verifying access
in code"), so a need names the verb and the table's logical name and the check reads the SchemaName. Every
table privilege is needed at Organization depth (``Global``): change tracking needs organization-level
read (fact sheet §1.5), and the daemon reads and writes records whoever owns them.

Per table an enabled step touches (its Dataverse side, whatever the direction):

1. **Read**: `cdc poll` follows the table's changes; the gateway reads and matches records;
2. **Write**: updates, and the counterpart id (``cdc_hubspotid``) stamped on both sides of a pair, so
   also on the source table of a Dataverse -> HubSpot step;
3. **Create**: a step writing to the table that may create (``create: true``, the default);
4. **Delete**: a step writing to the table with ``deletes: propagate``;
5. **Append** on a table a step writes lookups to (its ``associations``, e.g. ``parentcustomerid``), and
   **AppendTo** on the tables those lookups point to (``account``);
6. ``lookup: owner``: **Read** on ``systemuser`` (the users owners map to) and, where a step writes the
   owner, **Assign** on the table, Append on it and AppendTo on ``systemuser``.

And, for every run, metadata reads: ``prvReadEntity`` (table definitions: change tracking, SchemaName),
``prvReadAttribute`` (columns) and ``prvReadEntityKey`` (alternate keys the creates upsert by). Provisioning
(`cdc provision --dataverse`) needs more, for what it would make: ``prvWriteEntity`` to turn change
tracking on, ``prvCreateAttribute`` for columns, ``prvCreateEntityKey`` for keys (`CUSTOMIZATION`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from consumers.config import OWNER, Step, SyncConfig
from streams.keys import SourceSystem

__all__ = ["CUSTOMIZATION", "METADATA", "PrivilegeNeed", "privilege_needs"]


@dataclass(frozen=True)
class PrivilegeNeed:
    """A privilege the app user needs at Organization depth: ``verb`` on ``table`` (a logical name), or a
    privilege ``name`` of its own (metadata); ``why`` says what needs it, for the person granting it."""

    why: str
    verb: str = ""
    table: str | None = None
    name: str | None = None

    def privilege(self, schema_name: str | None = None) -> str:
        """The privilege's name, given the table's SchemaName (``Contact``) for a table privilege."""
        return self.name or f"prv{self.verb}{schema_name}"


METADATA = (
    PrivilegeNeed("table definitions: change tracking, names", name="prvReadEntity"),
    PrivilegeNeed("column metadata: lookups, choices, columns that exist", name="prvReadAttribute"),
    PrivilegeNeed("alternate keys: creates upsert by cdc_hubspotid", name="prvReadEntityKey"),
)
CUSTOMIZATION = {
    "table": PrivilegeNeed("cdc provision --dataverse turns change tracking on", name="prvWriteEntity"),
    "column": PrivilegeNeed("cdc provision --dataverse creates the columns", name="prvCreateAttribute"),
    "key": PrivilegeNeed("cdc provision --dataverse creates the alternate keys", name="prvCreateEntityKey"),
}
"""What provisioning needs per kind of item it would make (`cdc.provisioning.report.Item.kind`)."""


def _steps(names: Iterable[str]) -> str:
    listed = list(dict.fromkeys(names))
    return f"step{'s' if len(listed) > 1 else ''} {', '.join(listed)}"


def privilege_needs(config: SyncConfig, polled: Sequence[str]) -> tuple[PrivilegeNeed, ...]:
    """What the enabled steps of ``config`` and the tables `cdc poll` polls (``polled``, logical names)
    need, per table in a stable order, then the metadata reads (module docstring)."""
    reasons: dict[tuple[str, str], dict[str, list[str]]] = {}

    def need(verb: str, table: str, what: str, step: str | None = None) -> None:
        steps = reasons.setdefault((table, verb), {}).setdefault(what, [])
        if step is not None and step not in steps:
            steps.append(step)

    for table in polled:
        need("Read", table, "cdc poll follows its changes (organization-level read)")
    for step in config.enabled_steps():
        table = step.pair.dataverse
        _owner_needs(step, need)
        need("Read", table, "read and match records", step.name)
        need("Write", table, "update records and stamp the counterpart id", step.name)
        if step.target.system is not SourceSystem.DATAVERSE:
            continue
        if step.create:
            need("Create", table, "create records", step.name)
        if step.deletes == "propagate":
            need("Delete", table, "delete records", step.name)
        for association in step.associations:
            need("Append", table, f"set {table}.{association.dataverse_lookup}", step.name)
            need(
                "AppendTo",
                association.dataverse_table,
                f"point {table}.{association.dataverse_lookup} at its records",
                step.name,
            )
    order = ("Read", "Write", "Create", "Delete", "Append", "AppendTo", "Assign")
    table_needs = tuple(
        PrivilegeNeed(_why(reasons[key]), verb=key[1], table=key[0])
        for key in sorted(reasons, key=lambda key: (key[0], order.index(key[1])))
    )
    return (*table_needs, *METADATA)


def _owner_needs(step: Step, need: Callable[[str, str, str, str], None]) -> None:
    """``lookup: owner`` (item 6): the users read; the owner assigned where the step writes Dataverse."""
    if not any(f.lookup == OWNER for f in step.active_fields()):
        return
    table = step.pair.dataverse
    need("Read", "systemuser", "list the users owners map to (lookup: owner)", step.name)
    if step.target.system is SourceSystem.DATAVERSE:
        need("Assign", table, "give records to their owners (lookup: owner)", step.name)
        need("Append", table, f"set {table}.ownerid", step.name)
        need("AppendTo", "systemuser", f"point {table}.ownerid at its records", step.name)


def _why(reasons: dict[str, list[str]]) -> str:
    """``cdc poll follows its changes ...; read and match records (steps s2_..., s4_...)``."""
    return "; ".join(f"{what} ({_steps(steps)})" if steps else what for what, steps in reasons.items())
