"""Properties API: list a type's properties, read one, create custom ones (the daemon provisions its own).

A custom property may be ``hasUniqueValue`` (then it is an upsert/idProperty key and duplicates get 409);
a second property of the same name is a 409.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.api import JSON, Context, endpoint, json_object, path_type
from cdc.sandbox.hubspot.objects import PropertyDef

__all__ = ["property_routes"]

TYPES = {"string", "number", "enumeration", "datetime", "date", "bool"}
FIELD_TYPES = {
    "text",
    "textarea",
    "number",
    "select",
    "radio",
    "checkbox",
    "booleancheckbox",
    "date",
    "file",
    "phonenumber",
    "calculation_equation",
    "html",
}
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_UNIQUE = 10


def property_routes(ctx: Context) -> list[Route]:  # noqa: C901 -- create checks each documented field in turn
    store = ctx.store

    async def list_properties(request: Request) -> Response:
        ot = path_type(request)
        return JSON({"results": [p.as_json() for p in store.properties[ot.name].values()]})

    async def read(request: Request) -> Response:
        ot = path_type(request)
        prop = store.properties[ot.name].get(request.path_params["propertyName"])
        if prop is None:
            raise errors.not_found(f"Unable to find property {request.path_params['propertyName']}")
        return JSON(prop.as_json())

    async def create(request: Request) -> Response:
        ot = path_type(request)
        body = await json_object(request)
        name, kind, field_type = body.get("name"), body.get("type"), body.get("fieldType")
        if not isinstance(name, str) or not NAME.match(name):
            raise errors.bad_request("name must be lowercase letters, digits and underscores")
        if kind not in TYPES or field_type not in FIELD_TYPES:
            raise errors.bad_request(
                f"type must be one of {sorted(TYPES)} and fieldType one of {sorted(FIELD_TYPES)}"
            )
        if not body.get("label") or not body.get("groupName"):
            raise errors.bad_request("label and groupName are required")
        options = body.get("options") or []
        if not isinstance(options, list) or not all(isinstance(o, dict) and "value" in o for o in options):
            raise errors.bad_request("options must be a list of {label, value}")
        unique = bool(body.get("hasUniqueValue", False))
        if (
            unique
            and sum(p.has_unique_value and p.custom for p in store.properties[ot.name].values()) >= MAX_UNIQUE
        ):
            raise errors.bad_request(f"At most {MAX_UNIQUE} custom unique properties per object")
        if kind == "bool" and not options:
            options = [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ]
        prop = PropertyDef(
            name=name,
            label=str(body["label"]),
            type=kind,
            field_type=field_type,
            group_name=str(body["groupName"]),
            options=options,
            has_unique_value=unique,
            custom=True,
            description=str(body.get("description", "")),
        )
        return JSON(store.add_property(ot, prop).as_json(), 201)

    path = "/crm/v3/properties/{objectType}"
    return [
        Route(path, endpoint(ctx, list_properties), methods=["GET"]),
        Route(path, endpoint(ctx, create), methods=["POST"]),
        Route(f"{path}/{{propertyName}}", endpoint(ctx, read), methods=["GET"]),
    ]
