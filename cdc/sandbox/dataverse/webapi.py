"""The Web API below ``/api/data/v9.2/``: one dispatcher from a path to the operation it names, used by
the HTTP routes and by each part of a ``$batch`` alike. Every operation runs without awaiting, under the
store's lock, so concurrent requests never interleave inside a write. Before it runs, the app user's
privileges are checked for it (`cdc.sandbox.dataverse.privileges`): a ``$batch`` part is refused on its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from cdc.sandbox.dataverse import entities, errors, metadata, queries
from cdc.sandbox.dataverse.bulk import ACTIONS, run_action
from cdc.sandbox.dataverse.context import ApiRequest, Outcome, json_outcome
from cdc.sandbox.dataverse.customization import create_polymorphic_lookup, insert_option_value
from cdc.sandbox.dataverse.privileges import APP_USER_ID, USER_FUNCTION, Privileges, user_function
from cdc.sandbox.dataverse.records import parse_write
from cdc.sandbox.dataverse.store import Store
from cdc.sandbox.dataverse.tables import Table, metadata_id

__all__ = ["WebApi", "error_outcome"]

_ACTION = re.compile(r"^(?P<set>\w+)/Microsoft\.Dynamics\.CRM\.(?P<action>\w+)$")
_ENTITY = re.compile(r"^(?P<set>\w+)\((?P<key>.+)\)$")
_COLLECTION = re.compile(r"^(?P<set>\w+)$")
_COUNT = re.compile(r"^(?P<set>\w+)/\$count$")
_COLUMN = re.compile(r"^(?P<set>\w+)\((?P<key>[^/]+)\)/(?P<column>\w+)$")


def _method_not_allowed(request: ApiRequest) -> errors.DataverseError:
    return errors.DataverseError(
        405,
        "0x80060888",
        f"The HTTP method '{request.method}' is not allowed for the resource '{request.path}'.",
    )


def _no_segment(segment: str) -> errors.DataverseError:
    return errors.DataverseError(404, "0x8006088a", f"Resource not found for the segment '{segment}'.")


def error_outcome(error: errors.DataverseError) -> Outcome:
    headers = {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0"}
    return Outcome(error.status, {**headers, **error.headers}, error.body())


_ACTION_VERBS = {
    "CreateMultiple": ("Create",),
    "UpdateMultiple": ("Write",),
    "UpsertMultiple": ("Create", "Write"),
}
_RECORD_VERBS = {
    "GET": ("Read",),
    "POST": ("Create",),
    "PATCH": ("Write",),
    "PUT": ("Write",),
    "DELETE": ("Delete",),
}


_UNBOUND_ACTIONS: dict[str, tuple[Callable[[Store, ApiRequest], Outcome], tuple[str, ...]]] = {
    # A new index job for a key (UNVERIFIED: which privilege it checks).
    "ReactivateEntityKey": (metadata.reactivate_key, ("prvCreateEntityKey",)),
    # A lookup column and a relationship per target (the metadata services check both privileges).
    "CreatePolymorphicLookupAttribute": (
        create_polymorphic_lookup,
        ("prvCreateAttribute", "prvCreateRelationship"),
    ),
    # An option added to a choice column (UNVERIFIED: that prvWriteAttribute is the privilege it checks).
    "InsertOptionValue": (insert_option_value, ("prvWriteAttribute",)),
}
"""Unbound actions of the metadata API: what answers them, and the privileges they need."""


class WebApi:
    def __init__(
        self,
        store: Store,
        *,
        organization_id: str,
        expire_days: Callable[[], float],
        privileges: Privileges | None = None,
    ) -> None:
        self.store = store
        self.organization_id = organization_id
        self.expire_days = expire_days
        self.privileges = privileges or Privileges()

    def _require(self, name: str, table: Table | None = None) -> None:
        self.privileges.require(name, table, self.store.tables.values())

    def _require_binds(self, table: Table, body: Any) -> None:
        """A lookup bound in ``body``: Append on ``table``, AppendTo on the table it points to; Assign on
        ``table`` for its owner."""
        lookups = parse_write(self.store, table, body).lookups
        if lookups:
            self.privileges.require_verbs(table, ("Append",), self.store.tables.values())
        if "ownerid" in lookups:  # an assignment: prvAssign<Table> (Learn AssignRequest: "use Update")
            self.privileges.require_verbs(table, ("Assign",), self.store.tables.values())
        for target in dict.fromkeys(lookups.values()):
            if (pointed := self.store.tables.get(target)) is not None:
                self.privileges.require_verbs(pointed, ("AppendTo",), self.store.tables.values())

    def _require_for_record(
        self, request: ApiRequest, table: Table, key: str | None, column: str | None
    ) -> None:
        verbs = (
            ("Write",)
            if column is not None and request.method != "GET"
            else _RECORD_VERBS.get(request.method, ())
        )
        if (
            request.method == "PATCH"
            and key is not None
            and entities.locate(self.store, table, key)[0] is None
        ):
            verbs = ("Create", *verbs)  # an upsert that creates the row
        self.privileges.require_verbs(table, verbs, self.store.tables.values())
        if request.method in {"POST", "PATCH"} and column is None:
            self._require_binds(table, request.json())

    def execute(self, request: ApiRequest) -> Outcome:
        """Answer one request; Dataverse errors become their JSON envelope."""
        try:
            return self._dispatch(request)
        except errors.DataverseError as error:
            return error_outcome(error)

    def _table(self, entity_set: str) -> Table:
        table = self.store.table_by_set(entity_set)
        if table is None:
            raise _no_segment(entity_set)
        return table

    def _dispatch(self, request: ApiRequest) -> Outcome:  # noqa: PLR0911 -- one answer per kind of path
        path, method = request.path, request.method
        if path.startswith("EntityDefinitions") or path in _UNBOUND_ACTIONS:
            return self._metadata(request)
        if path in {"WhoAmI", "WhoAmI()"} and method == "GET":
            return self._who_am_i(request)
        if path == "organizations" and method == "GET":
            return self._organizations(request)
        if match := USER_FUNCTION.match(path):
            return user_function(self.privileges, self.store.tables.values(), request, match)
        if match := _ACTION.match(path):
            return self._action(request, match.group("set"), match.group("action"))
        if match := _COUNT.match(path):
            table = self._table(match.group("set"))
            self.privileges.require_verbs(table, ("Read",), self.store.tables.values())
            count = len(self.store.rows(table.logical_name))
            return Outcome(
                200, {"Content-Type": "text/plain", "OData-Version": "4.0"}, str(min(count, 5000)).encode()
            )
        return self._records(request)

    def _metadata(self, request: ApiRequest) -> Outcome:
        """``EntityDefinitions...`` and the metadata API's unbound actions, each after its privileges."""
        if request.path not in _UNBOUND_ACTIONS:
            if (privilege := metadata.required_privilege(request)) is not None:
                self._require(privilege)
            return metadata.handle_metadata(self.store, request)
        if request.method != "POST":
            raise _method_not_allowed(request)
        action, needed = _UNBOUND_ACTIONS[request.path]
        for name in needed:
            self._require(name)
        return action(self.store, request)

    def _action(self, request: ApiRequest, entity_set: str, action: str) -> Outcome:
        """``<set>/Microsoft.Dynamics.CRM.CreateMultiple`` and its siblings."""
        if action not in ACTIONS:
            raise _no_segment(f"Microsoft.Dynamics.CRM.{action}")
        if request.method != "POST":
            raise _method_not_allowed(request)
        table = self._table(entity_set)
        self.privileges.require_verbs(table, _ACTION_VERBS[action], self.store.tables.values())
        body = request.json()
        for target in (body.get("Targets") if isinstance(body, dict) else None) or []:
            if isinstance(target, dict):
                self._require_binds(table, {k: v for k, v in target.items() if k != "@odata.id"})
        return run_action(self.store, table, request, action)

    def _records(self, request: ApiRequest) -> Outcome:
        """``<set>``, ``<set>(<key>)`` and ``<set>(<key>)/<column>``."""
        path, method = request.path, request.method
        if match := _COLUMN.match(path):
            if method not in {"GET", "PUT", "DELETE"}:
                raise _method_not_allowed(request)
            table = self._table(match.group("set"))
            self._require_for_record(request, table, match.group("key"), match.group("column"))
            return entities.single_column(
                self.store, table, request, match.group("key"), match.group("column")
            )
        if match := _ENTITY.match(path):
            table, key = self._table(match.group("set")), match.group("key")
            handlers = {"GET": entities.read, "PATCH": entities.upsert, "DELETE": entities.delete}
            if method not in handlers:
                raise _method_not_allowed(request)
            self._require_for_record(request, table, key, None)
            return handlers[method](self.store, table, request, key)
        if match := _COLLECTION.match(path):
            table = self._table(match.group("set"))
            if method not in {"GET", "POST"}:
                raise _method_not_allowed(request)
            self._require_for_record(request, table, None, None)
            if method == "GET":
                return queries.read_collection(self.store, table, request, self.expire_days())
            return entities.create(self.store, table, request)
        raise _no_segment(path)

    def _who_am_i(self, request: ApiRequest) -> Outcome:
        return json_outcome(
            200,
            {
                "@odata.context": f"{request.api}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                "BusinessUnitId": metadata_id("businessunit"),
                "UserId": APP_USER_ID,
                "OrganizationId": self.organization_id,
            },
        )

    def _organizations(self, request: ApiRequest) -> Outcome:
        row = {
            "@odata.etag": 'W/"1"',
            "organizationid": self.organization_id,
            "name": "sandbox",
            "expirechangetrackingindays": math.ceil(self.expire_days()),  # an Integer column (fact sheet 1.6)
        }
        return json_outcome(200, {"@odata.context": f"{request.api}/$metadata#organizations", "value": [row]})
