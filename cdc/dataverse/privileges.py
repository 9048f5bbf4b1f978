"""Whether the daemon's application user holds the privileges a sync configuration needs
(`cdc.provisioning.privileges`), asked of Dataverse the way the documentation shows (Learn, "Verifying access
in code"):

1. ``WhoAmI``: the application user's ``UserId``;
2. per table, its definition's ``SchemaName`` (privilege names are ``prv`` + verb + SchemaName);
3. ``systemusers(<UserId>)/Microsoft.Dynamics.CRM.RetrieveUserSetOfPrivilegesByNames(PrivilegeNames=@p)``:
   which of the names the user holds, "through their roles, and inherited privileges from their team
   membership" (RetrieveUserSetOfPrivilegesByNamesRequest), each with its ``Depth``.

A privilege held at Organization depth (``Global``) is present; one not held, or held at a lower depth, is
missing, with what needs it. A table whose definition cannot be read (not in the org: reported by the
change-tracking check; or unreadable) is a problem rather than a guess at its SchemaName.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cdc.dataverse import paths
from cdc.dataverse.client import DataverseClient
from cdc.dataverse.errors import FatalError, UnauthorizedError
from cdc.provisioning.privileges import PrivilegeNeed
from cdc.provisioning.report import Item, Section

__all__ = ["LEVELS", "check_privileges"]

Say = Callable[[str], None]
LEVELS = {
    "Basic": "User",
    "Local": "Business Unit",
    "Deep": "Parent: Child Business Units",
    "Global": "Organization",
}
"""PrivilegeDepth as the security role editor names its levels."""
_ORDER = tuple(LEVELS)
_NOT_FOUND = 404


async def _schema_names(
    client: DataverseClient, tables: Sequence[str], section: Section, say: Say
) -> dict[str, str]:
    found: dict[str, str] = {}
    for table in tables:
        url = paths.with_options(paths.definition(client.api_root, table), select=["SchemaName"])
        try:
            definition = await client.get_json(url, endpoint=paths.METADATA_ENTITY)
        except UnauthorizedError:
            raise
        except FatalError as error:
            if error.status != _NOT_FOUND:  # a missing table is the change-tracking check's problem
                section.problems.append(
                    Item(
                        "privilege",
                        table,
                        "*",
                        detail=f"not checked: its definition is unreadable: {error.message}",
                    )
                )
                say(f"problem: {section.problems[-1]}")
            continue
        if isinstance(definition.get("SchemaName"), str):
            found[table] = definition["SchemaName"]
    return found


def _deepest(privileges: Any) -> dict[str, str]:
    """Name -> the deepest ``Depth`` it is held at (one entry per role or team that grants it)."""
    held: dict[str, str] = {}
    for entry in privileges if isinstance(privileges, list) else []:
        if not isinstance(entry, dict):
            continue
        name, depth = entry.get("PrivilegeName"), entry.get("Depth")
        if not isinstance(name, str) or depth not in _ORDER:
            continue
        if name not in held or _ORDER.index(depth) > _ORDER.index(held[name]):
            held[name] = depth
    return held


async def check_privileges(
    client: DataverseClient, needs: Sequence[PrivilegeNeed], section: Section, *, say: Say
) -> None:
    """Put each of ``needs`` in ``section`` as present (held at Organization depth) or missing (module
    docstring). Refused credentials (401) propagate; any other refusal is one problem."""
    try:
        who = await client.get_json(paths.who_am_i(client.api_root), endpoint=paths.WHO_AM_I)
        user = str(who.get("UserId") or "")
        tables = list(dict.fromkeys(n.table for n in needs if n.table is not None))
        schema = await _schema_names(client, tables, section, say)
        named = {
            n: n.privilege(schema.get(n.table or "")) for n in needs if n.table is None or n.table in schema
        }
        url = paths.user_privileges(client.api_root, user, sorted(set(named.values())))
        answer = await client.get_json(url, endpoint=paths.USER_PRIVILEGES)
    except UnauthorizedError:
        raise
    except FatalError as error:
        detail = f"the application user's privileges could not be read: {error.message}"
        section.problems.append(
            Item("privilege", "systemuser", "RetrieveUserSetOfPrivilegesByNames", detail=detail)
        )
        say(f"problem: {section.problems[-1]}")
        return
    held = _deepest(answer.get("RolePrivileges"))
    for need, name in named.items():
        item = Item("privilege", need.table or "metadata", name, detail=need.why)
        depth = held.get(name)
        if depth == "Global":
            section.present.append(item)
            continue
        only = f", held at {LEVELS[depth]} level only" if depth else ""
        section.missing.append(
            Item(item.kind, item.object, name, detail=f"needed at Organization level{only}: {need.why}")
        )
        say(f"missing {section.missing[-1]}")
