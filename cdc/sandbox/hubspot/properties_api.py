"""Properties API, per API version: list a type's properties, read one, create custom ones (the daemon
provisions its own) and update their options, and the property groups they belong to.

A custom property may be ``hasUniqueValue`` (then it is an upsert/idProperty key and duplicates get 409);
a second property of the same name is a 409. A property names an existing group (``groupName``); each type
starts with its HubSpot-defined ``<type>information`` group, and ``POST .../groups`` adds one
(``{name, label, displayOrder?}`` -> 201 ``{name, label, displayOrder, archived}``; a taken name is a 409).
From 2026-03 every option of a create needs its ``displayOrder``; 2026-09 refuses the fields its spec
dropped from a create (`cdc.sandbox.hubspot.versions`).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.api import JSON, Context, endpoint, json_object, path_type
from cdc.sandbox.hubspot.objects import PropertyDef, PropertyGroup
from cdc.sandbox.hubspot.versions import ApiVersion

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


def _check_version_fields(version: ApiVersion, body: dict[str, Any], options: list[dict[str, Any]]) -> None:
    """What a create must (not) carry in ``version``: no field its spec dropped, every option's order."""
    removed = sorted(version.removed_property_fields & set(body))
    if removed:
        raise errors.bad_request(f"Unrecognized field(s) {', '.join(removed)} in a {version.name} property")
    if version.option_display_order_required and not all(
        isinstance(o.get("displayOrder"), int) and not isinstance(o.get("displayOrder"), bool)
        for o in options
    ):
        raise errors.bad_request(f"options[].displayOrder is required (an integer) in {version.name}")


def property_routes(ctx: Context, version: ApiVersion) -> list[Route]:  # noqa: C901, PLR0915 -- create checks each documented field in turn
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
        if body["groupName"] not in store.property_groups[ot.name]:
            raise errors.bad_request(f"Property group {body['groupName']} does not exist")
        options = body.get("options") or []
        if not isinstance(options, list) or not all(isinstance(o, dict) and "value" in o for o in options):
            raise errors.bad_request("options must be a list of {label, value}")
        _check_version_fields(version, body, options)
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

    async def update(request: Request) -> Response:
        # A partial update: the fields sent are overwritten, `options` as a whole list (developers.hubspot.com
        # api-reference crm/properties "Update a property"). A HubSpot-defined property's definition is
        # read-only here (`modificationMetadata.readOnlyDefinition`).
        ot = path_type(request)
        prop = store.properties[ot.name].get(request.path_params["propertyName"])
        if prop is None:
            raise errors.not_found(f"Unable to find property {request.path_params['propertyName']}")
        if not prop.custom:
            raise errors.bad_request(f"The definition of HubSpot-defined property {prop.name} is read-only")
        body = await json_object(request)
        options = body.get("options", prop.options)
        if not isinstance(options, list) or not all(isinstance(o, dict) and "value" in o for o in options):
            raise errors.bad_request("options must be a list of {label, value}")
        _check_version_fields(version, {}, options)
        prop.options = [dict(o) for o in options]
        prop.label = str(body.get("label") or prop.label)
        return JSON(prop.as_json())

    async def list_groups(request: Request) -> Response:
        ot = path_type(request)
        return JSON({"results": [g.as_json() for g in store.property_groups[ot.name].values()]})

    async def read_group(request: Request) -> Response:
        ot = path_type(request)
        group = store.property_groups[ot.name].get(request.path_params["groupName"])
        if group is None:
            raise errors.not_found(f"Unable to find property group {request.path_params['groupName']}")
        return JSON(group.as_json())

    async def create_group(request: Request) -> Response:
        ot = path_type(request)
        body = await json_object(request)
        name, label, order = body.get("name"), body.get("label"), body.get("displayOrder", -1)
        if not isinstance(name, str) or not NAME.match(name):
            raise errors.bad_request("name must be lowercase letters, digits and underscores")
        if not isinstance(label, str) or not label:
            raise errors.bad_request("label is required")
        if isinstance(order, bool) or not isinstance(order, int):
            raise errors.bad_request("displayOrder must be an integer")
        group = store.add_property_group(ot, PropertyGroup(name, label, order))
        return JSON(group.as_json(), 201)

    path = f"{version.properties}/{{objectType}}"
    return [
        Route(path, endpoint(ctx, list_properties), methods=["GET"]),
        Route(path, endpoint(ctx, create), methods=["POST"]),
        # Before `{propertyName}`: `.../groups` is not a property.
        Route(f"{path}/groups", endpoint(ctx, list_groups), methods=["GET"]),
        Route(f"{path}/groups", endpoint(ctx, create_group), methods=["POST"]),
        Route(f"{path}/groups/{{groupName}}", endpoint(ctx, read_group), methods=["GET"]),
        Route(f"{path}/{{propertyName}}", endpoint(ctx, read), methods=["GET"]),
        Route(f"{path}/{{propertyName}}", endpoint(ctx, update), methods=["PATCH"]),
    ]
