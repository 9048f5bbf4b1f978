"""The application user's security role: which privileges it holds, the check every Web API operation makes
against them, and the functions a client reads them with.

Names and shapes (Learn, "Verifying access in code", security-access-checks; RolePrivilege ComplexType):

- a table privilege is named ``prv`` + verb + the table's SchemaName: ``prvCreateContact``,
  ``prvReadAccount``, ``prvAppendToAccount``; the verbs are Create, Read, Write, Delete, Append, AppendTo,
  Assign, Share. The system user table's are ``prv<Verb>User``. Metadata has its own: ``prvReadEntity``,
  ``prvWriteEntity``, ``prvCreateAttribute``, ``prvReadAttribute``, ``prvCreateEntityKey``,
  ``prvReadEntityKey`` ... (the names the Web API's metadata services check);
- ``GET systemusers(<id>)/Microsoft.Dynamics.CRM.RetrieveUserPrivileges`` answers
  ``{"RolePrivileges": [{"Depth": "Global", "PrivilegeId", "BusinessUnitId", "PrivilegeName"}]}``;
  ``RetrieveUserSetOfPrivilegesByNames(PrivilegeNames=@p)?@p=["prvReadAccount",...]`` the same for the
  named ones only (those the user holds, "through their roles, and inherited privileges from their team
  membership");
- ``Depth`` is Basic, Local, Deep or Global (PrivilegeDepth: user, business unit, parent-child business
  units, organization).

A call lacking a privilege is answered 403 with code ``0x80040220`` (PrivilegeDenied, -2147220960; fact
sheet §5) and the service's wording, e.g. ``Principal user (Id=<guid>, type=8, roleCount=1,
privilegeCount=465, accessMode=0), is missing prvReadincident privilege (Id=<guid>) on OTC=112 for entity
'incident'. context.Caller=<guid>`` (Dynamics 365 Customer Service, "FAQs and known issues about case
management"; KB 2619752 gives the code).

What each operation needs here: a read (query, by key, ``$count``, change tracking) ``prvRead``; a create
``prvCreate``; an update ``prvWrite`` (a PATCH that creates: ``prvCreate`` too); a delete ``prvDelete``;
binding a lookup ``prvAppend`` on the written table and ``prvAppendTo`` on the one it points to;
``UpsertMultiple`` both Create and Write. Change tracking needs organization-level read (fact sheet §1.5).
The sandbox models no owners and no business units, so a table privilege counts only at Global depth:
stricter than Dataverse for rows the app user owns, never kinder. By default the app user holds every
privilege at Global (a System Administrator, as on a developer org); the admin API takes some away.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.context import ApiRequest, Outcome, json_outcome
from cdc.sandbox.dataverse.tables import Table, metadata_id

__all__ = [
    "APP_USER_ID",
    "DEPTHS",
    "TABLE_VERBS",
    "USER_FUNCTION",
    "Privileges",
    "privilege_name",
    "schema_name",
    "user_function",
]

DEPTHS = ("Basic", "Local", "Deep", "Global")
TABLE_VERBS = ("Create", "Read", "Write", "Delete", "Append", "AppendTo", "Assign", "Share")
METADATA_PRIVILEGES = (
    *("prvCreateEntity", "prvReadEntity", "prvWriteEntity", "prvDeleteEntity"),
    *("prvCreateAttribute", "prvReadAttribute", "prvWriteAttribute", "prvDeleteAttribute"),
    *("prvCreateEntityKey", "prvReadEntityKey", "prvDeleteEntityKey"),
    *("prvCreateRelationship", "prvReadRelationship", "prvWriteRelationship", "prvDeleteRelationship"),
)
APP_USER_ID = metadata_id("applicationuser")
"""The application user's ``systemuserid`` (``WhoAmI``'s ``UserId``)."""
BUSINESS_UNIT_ID = metadata_id("businessunit")
USER_FUNCTION = re.compile(
    r"^systemusers\((?P<id>[^)]+)\)/Microsoft\.Dynamics\.CRM\."
    r"(?P<function>RetrieveUserPrivileges|RetrieveUserSetOfPrivilegesByNames)(?:\((?P<args>[^)]*)\))?$"
)
_SCHEMA_NAMES = {"systemuser": "User"}


def schema_name(table: Table) -> str:
    """The SchemaName privilege names are built from: ``Contact``, ``cdc_FormSubmission`` for a custom one."""
    return table.schema_name or _SCHEMA_NAMES.get(table.logical_name, table.logical_name.capitalize())


def privilege_name(verb: str, table: Table) -> str:
    return f"prv{verb}{schema_name(table)}"


def _catalog(tables: Iterable[Table]) -> dict[str, Table | None]:
    """Every privilege the org defines, with its table (None for the metadata ones)."""
    found: dict[str, Table | None] = dict.fromkeys(METADATA_PRIVILEGES)
    for table in tables:
        found.update({privilege_name(verb, table): table for verb in TABLE_VERBS})
    return found


class Privileges:
    """What the app user's roles hold: every privilege at Global unless the admin API changed it."""

    def __init__(self) -> None:
        self._changed: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def depth(self, name: str) -> str | None:
        with self._lock:
            return self._changed.get(name, "Global")

    def change(self, changes: Mapping[str, Any], tables: Iterable[Table]) -> None:
        """Set depths (``"Basic"`` ... ``"Global"``) or take privileges away (``None``); ValueError names an
        unknown privilege or depth (a typo in a test would otherwise test nothing)."""
        known = _catalog(tables)
        for name, depth in changes.items():
            if name not in known:
                raise ValueError(f"no privilege {name!r} in this org")
            if depth is not None and depth not in DEPTHS:
                raise ValueError(f"depth {depth!r} is not one of {', '.join(DEPTHS)}")
        with self._lock:
            self._changed.update(changes)

    def reset(self) -> None:
        with self._lock:
            self._changed.clear()

    def held(self, tables: Iterable[Table]) -> dict[str, str]:
        """Privilege name -> depth, for every privilege held."""
        return {name: depth for name in _catalog(tables) if (depth := self.depth(name)) is not None}

    def require(self, name: str, table: Table | None, tables: Iterable[Table]) -> None:
        """Raise the 403 a call without ``name`` at Global depth gets (module docstring)."""
        if self.depth(name) == "Global":
            return
        on = f" on OTC={table.object_type_code} for entity '{table.logical_name}'" if table else ""
        count = len(self.held(tables))
        raise errors.DataverseError(
            403,
            "0x80040220",
            f"Principal user (Id={APP_USER_ID}, type=8, roleCount=1, privilegeCount={count}, accessMode=0), "
            f"is missing {name} privilege (Id={metadata_id('privilege', name)}){on}. "
            f"context.Caller={APP_USER_ID}",
        )

    def require_verbs(self, table: Table, verbs: Iterable[str], tables: Iterable[Table]) -> None:
        for verb in verbs:
            self.require(privilege_name(verb, table), table, tables)


def _role_privileges(held: Mapping[str, str]) -> list[dict[str, str]]:
    return [
        {
            "Depth": depth,
            "PrivilegeId": metadata_id("privilege", name),
            "BusinessUnitId": BUSINESS_UNIT_ID,
            "PrivilegeName": name,
        }
        for name, depth in sorted(held.items())
    ]


def _names(request: ApiRequest, args: str | None) -> list[str]:
    """``PrivilegeNames`` of RetrieveUserSetOfPrivilegesByNames: inline or through a ``@p`` alias."""
    text = (args or "").partition("=")[2].strip()
    if text.startswith("@"):
        text = request.query.get(text, "")
    try:
        names = orjson.loads(text)
    except orjson.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise errors.bad_request("PrivilegeNames must be a collection of strings.", code="0x80040203")
    return names


def user_function(
    privileges: Privileges, tables: Iterable[Table], request: ApiRequest, match: re.Match[str]
) -> Outcome:
    """``RetrieveUserPrivileges`` / ``RetrieveUserSetOfPrivilegesByNames`` bound to the app user."""
    if request.method != "GET":
        raise errors.DataverseError(405, "0x80060888", "The requested method is not supported.")
    if match.group("id").lower() != APP_USER_ID:
        raise errors.not_found("systemuser", match.group("id"))
    held = privileges.held(tables)
    function = match.group("function")
    if function == "RetrieveUserSetOfPrivilegesByNames":
        wanted = set(_names(request, match.group("args")))
        held = {name: depth for name, depth in held.items() if name in wanted}
    context = f"{request.api}/$metadata#Microsoft.Dynamics.CRM.{function}Response"
    return json_outcome(200, {"@odata.context": context, "RolePrivileges": _role_privileges(held)})
