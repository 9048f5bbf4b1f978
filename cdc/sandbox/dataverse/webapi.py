"""The Web API below ``/api/data/v9.2/``: one dispatcher from a path to the operation it names, used by
the HTTP routes and by each part of a ``$batch`` alike. Every operation runs without awaiting, under the
store's lock, so concurrent requests never interleave inside a write.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from cdc.sandbox.dataverse import entities, errors, metadata, queries
from cdc.sandbox.dataverse.bulk import ACTIONS, run_action
from cdc.sandbox.dataverse.context import ApiRequest, Outcome, json_outcome
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


class WebApi:
    def __init__(self, store: Store, *, organization_id: str, expire_days: Callable[[], float]) -> None:
        self.store = store
        self.organization_id = organization_id
        self.expire_days = expire_days

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
        if path.startswith("EntityDefinitions"):
            return metadata.handle_metadata(self.store, request)
        if path in {"WhoAmI", "WhoAmI()"} and method == "GET":
            return self._who_am_i(request)
        if path == "organizations" and method == "GET":
            return self._organizations(request)
        if path == "ReactivateEntityKey":
            if method != "POST":
                raise _method_not_allowed(request)
            return metadata.reactivate_key(self.store, request)
        if match := _ACTION.match(path):
            if match.group("action") not in ACTIONS:
                raise _no_segment(f"Microsoft.Dynamics.CRM.{match.group('action')}")
            if method != "POST":
                raise _method_not_allowed(request)
            return run_action(self.store, self._table(match.group("set")), request, match.group("action"))
        if match := _COUNT.match(path):
            count = len(self.store.rows(self._table(match.group("set")).logical_name))
            return Outcome(
                200, {"Content-Type": "text/plain", "OData-Version": "4.0"}, str(min(count, 5000)).encode()
            )
        return self._records(request)

    def _records(self, request: ApiRequest) -> Outcome:
        """``<set>``, ``<set>(<key>)`` and ``<set>(<key>)/<column>``."""
        path, method = request.path, request.method
        if match := _COLUMN.match(path):
            if method not in {"GET", "PUT", "DELETE"}:
                raise _method_not_allowed(request)
            table = self._table(match.group("set"))
            return entities.single_column(
                self.store, table, request, match.group("key"), match.group("column")
            )
        if match := _ENTITY.match(path):
            table, key = self._table(match.group("set")), match.group("key")
            handlers = {"GET": entities.read, "PATCH": entities.upsert, "DELETE": entities.delete}
            if method not in handlers:
                raise _method_not_allowed(request)
            return handlers[method](self.store, table, request, key)
        if match := _COLLECTION.match(path):
            table = self._table(match.group("set"))
            if method == "GET":
                return queries.read_collection(self.store, table, request, self.expire_days())
            if method == "POST":
                return entities.create(self.store, table, request)
            raise _method_not_allowed(request)
        raise _no_segment(path)

    def _who_am_i(self, request: ApiRequest) -> Outcome:
        return json_outcome(
            200,
            {
                "@odata.context": f"{request.api}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                "BusinessUnitId": metadata_id("businessunit"),
                "UserId": metadata_id("applicationuser"),
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
