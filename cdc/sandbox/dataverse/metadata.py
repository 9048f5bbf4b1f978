"""The metadata API the daemon uses: ``EntityDefinitions`` (read, and update with PUT), their ``Attributes``
(list and create custom columns) and ``Keys`` (list and create alternate keys). Shapes follow
EntityMetadata / AttributeMetadata / EntityKeyMetadata; only the members a client reads are filled.

A new key is accepted (204) and its index built by a background job: ``EntityKeyIndexStatus`` is Pending,
then InProgress, then Active, or Failed when rows hold duplicate values (Learn, define-alternate-keys-entity,
"Monitor index creation for alternate keys"; the job's timing is `Store.settle_keys`). Creating a key on
columns that already hold duplicates is therefore not refused: the job fails, and the documented way out
is to correct the data and submit a new job with the unbound action ``ReactivateEntityKey``
(``EntityLogicalName``, ``EntityKeyLogicalName``; Learn, webapi/reference/reactivateentitykey). A table
takes at most ten keys (same page, "Maximum number of alternate key table definitions").

Change tracking is per table and off until enabled (fact sheet §1.1): ``ChangeTrackingEnabled`` and the
managed property ``CanChangeTrackingBeEnabled`` are in every definition, and the one way to turn it on is
the documented table update: ``PUT EntityDefinitions(...)`` with the whole definition (PATCH is refused:
"You can't use the PATCH method to update data model entities", Learn page
create-update-entity-definitions-using-web-api, "Update table definitions"). A PUT replaces the
definition, so an omitted ``ChangeTrackingEnabled`` means false, and labels it leaves out are lost
unless ``MSCRM.MergeLabels: true`` is sent (same page). Once on, tracking cannot be turned off (CT); a
table whose ``CanChangeTrackingBeEnabled`` is false refuses it.
"""

from __future__ import annotations

import re
from typing import Any

from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.context import ApiRequest, Outcome, json_outcome
from cdc.sandbox.dataverse.customization import SCHEMA_NAME, create_table
from cdc.sandbox.dataverse.odata import FilterSyntaxError, evaluate, parse_filter, parse_key, parse_select
from cdc.sandbox.dataverse.privileges import TABLE_VERBS, privilege_name, schema_name
from cdc.sandbox.dataverse.store import Store
from cdc.sandbox.dataverse.tables import Choice, Column, Key, Table, metadata_id

__all__ = ["create_key", "handle_metadata", "reactivate_key", "required_privilege"]

MAX_KEYS = 10

_PATH = re.compile(
    r"^EntityDefinitions(?:\((?P<entity>[^)]*)\))?"
    r"(?:/(?P<child>Attributes|Keys)(?:\((?P<item>[^)]*)\))?(?:/Microsoft\.Dynamics\.CRM\.(?P<cast>\w+))?)?$"
)
_TYPES = {
    "String": "StringAttributeMetadata",
    "Memo": "MemoAttributeMetadata",
    "Integer": "IntegerAttributeMetadata",
    "BigInt": "BigIntAttributeMetadata",
    "Decimal": "DecimalAttributeMetadata",
    "Double": "DoubleAttributeMetadata",
    "Money": "MoneyAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "DateTime": "DateTimeAttributeMetadata",
    "Picklist": "PicklistAttributeMetadata",
    "State": "StateAttributeMetadata",
    "Status": "StatusAttributeMetadata",
    "Lookup": "LookupAttributeMetadata",
    "Customer": "LookupAttributeMetadata",
    "Owner": "LookupAttributeMetadata",
    "Uniqueidentifier": "UniqueIdentifierAttributeMetadata",
}
_NOT_CREATABLE = {"State", "Status", "Lookup", "Customer", "Owner", "Uniqueidentifier"}
_CREATABLE = {v: k for k, v in _TYPES.items() if k not in _NOT_CREATABLE}


def _label(text: str) -> dict[str, Any]:
    label = {"Label": text, "LanguageCode": 1033}
    return {"LocalizedLabels": [label], "UserLocalizedLabel": label}


def _entity(table: Table) -> dict[str, Any]:
    label = table.logical_name.capitalize() if table.display_name is None else table.display_name
    return {
        "MetadataId": metadata_id(table.logical_name),
        "LogicalName": table.logical_name,
        "SchemaName": schema_name(table),
        "EntitySetName": table.entity_set,
        "LogicalCollectionName": table.entity_set,
        "PrimaryIdAttribute": table.primary_id,
        "PrimaryNameAttribute": table.primary_name,
        "ObjectTypeCode": table.object_type_code,
        "ChangeTrackingEnabled": table.change_tracking,
        "CanChangeTrackingBeEnabled": {
            "Value": table.can_change_tracking,
            "CanBeChanged": False,
            "ManagedPropertyLogicalName": "canchangetrackingbeenabled",
        },
        "IsCustomEntity": table.schema_name is not None,
        "DisplayName": _label(label) if label else {"LocalizedLabels": [], "UserLocalizedLabel": None},
        "Privileges": [
            {
                "Name": privilege_name(verb, table),
                "PrivilegeId": metadata_id("privilege", privilege_name(verb, table)),
                "PrivilegeType": verb,
            }
            for verb in TABLE_VERBS
        ],
    }


def _options(choices: tuple[Choice, ...]) -> dict[str, Any]:
    options = []
    for choice in choices:
        option: dict[str, Any] = {"Value": choice.value, "Label": _label(choice.label)}
        if choice.state is not None:
            option["State"] = choice.state
        if choice.default_status is not None:
            option["DefaultStatus"] = choice.default_status
        options.append(option)
    return {"Options": options}


def _attribute(table: Table, column: Column, *, expand: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{_TYPES.get(column.kind, 'AttributeMetadata')}",
        "MetadataId": metadata_id(table.logical_name, column.name),
        "LogicalName": column.name,
        "SchemaName": column.schema_name or (column.name if column.custom else column.name.capitalize()),
        "EntityLogicalName": table.logical_name,
        "AttributeType": column.kind,
        "AttributeTypeName": {"Value": f"{column.kind}Type"},
        "IsCustomAttribute": column.custom,
        "IsPrimaryId": column.name == table.primary_id,
        "IsPrimaryName": column.name == table.primary_name,
        "IsValidForCreate": column.writable and column.kind != "Uniqueidentifier",
        "IsValidForUpdate": column.writable and column.kind != "Uniqueidentifier",
        "IsValidForRead": True,
        "RequiredLevel": {"Value": "None", "CanBeChanged": True},
        "DisplayName": _label(column.label or column.name),
    }
    if column.max_length is not None:
        out["MaxLength"] = column.max_length
    if column.is_lookup:
        out["Targets"] = list(column.targets)
    if column.kind == "DateTime":
        out["Format"] = "DateOnly" if column.date_only else "DateAndTime"
        out["DateTimeBehavior"] = {"Value": "DateOnly" if column.date_only else "UserLocal"}
    if column.is_choice and expand:
        out["OptionSet"] = _options(column.choices)
    if column.kind == "Boolean" and expand:
        labels = {c.value: c.label for c in column.choices}
        out["OptionSet"] = {
            "OptionSetType": "Boolean",
            "TrueOption": {"Value": 1, "Label": _label(labels.get(1, "Yes"))},
            "FalseOption": {"Value": 0, "Label": _label(labels.get(0, "No"))},
        }
    return out


def _listing(request: ApiRequest, context: str, items: list[dict[str, Any]]) -> Outcome:
    select = parse_select(request.query.get("$select"))
    if request.query.get("$filter"):
        try:
            expression = parse_filter(request.query["$filter"])
        except FilterSyntaxError as exc:
            raise errors.query_error(str(exc)) from exc
        items = [item for item in items if evaluate(expression, item)]
    if select:
        keep = {*select, "MetadataId", "@odata.type"}
        items = [{k: v for k, v in item.items() if k in keep} for item in items]
    return json_outcome(200, {"@odata.context": context, "value": items})


def _table(store: Store, text: str | None) -> Table:
    try:
        key = parse_key(text or "")
    except FilterSyntaxError as exc:
        raise errors.bad_request(f"Invalid entity key '{text}'.", code="0x80060888") from exc
    for table in store.tables.values():
        if (isinstance(key, str) and key == metadata_id(table.logical_name)) or (
            isinstance(key, dict) and key.get("LogicalName") == table.logical_name
        ):
            return table
    raise errors.DataverseError(404, "0x80040217", f"Could not find entity with key {text}.")


def _create_attribute(store: Store, table: Table, request: ApiRequest) -> Outcome:
    body = request.json()
    kind = _CREATABLE.get(str(body.get("@odata.type", "")).rsplit(".", 1)[-1])
    schema = str(body.get("SchemaName", ""))
    if kind is None:
        raise errors.bad_request(f"Unsupported attribute type '{body.get('@odata.type')}'.")
    if not SCHEMA_NAME.match(schema):
        raise errors.bad_request(
            f"The schema name '{schema}' must start with a customization prefix and '_'."
        )
    name = schema.lower()
    if name in table.columns:
        raise errors.bad_request(
            f"An attribute with the specified name {name} already exists in {table.logical_name}."
        )
    option_set = body.get("OptionSet") or {}
    options = option_set.get("Options") or []
    if kind == "Boolean":  # TrueOption / FalseOption
        options = [o for o in (option_set.get("FalseOption"), option_set.get("TrueOption")) if o]
    choices = tuple(
        Choice(
            int(o["Value"]), ((o.get("Label") or {}).get("LocalizedLabels") or [{"Label": ""}])[0]["Label"]
        )
        for o in options
    )
    behavior = (body.get("DateTimeBehavior") or {}).get("Value")
    labels = (body.get("DisplayName") or {}).get("LocalizedLabels") or [{"Label": schema}]
    column = Column(
        name,
        kind,
        label=str(labels[0].get("Label", schema)),
        max_length=body.get("MaxLength") if kind in {"String", "Memo"} else None,
        choices=choices,
        date_only=behavior == "DateOnly" or body.get("Format") == "DateOnly",
        custom=True,
    )
    store.add_column(table, column)
    entity = f"{request.api}/EntityDefinitions({metadata_id(table.logical_name)})"
    url = f"{entity}/Attributes({metadata_id(table.logical_name, name)})"
    return Outcome(204, {"OData-Version": "4.0", "OData-EntityId": url})


def _update_entity(store: Store, table: Table, request: ApiRequest) -> Outcome:
    """PUT of a whole table definition: what it says replaces what was (module docstring). The refusals'
    codes and texts are the emulator's: the documentation names the rules, not the answers."""
    body = request.json()
    if not isinstance(body, dict):
        raise errors.bad_request("The request body must be an EntityMetadata object.")
    for member, expected in (
        ("LogicalName", table.logical_name),
        ("MetadataId", metadata_id(table.logical_name)),
    ):
        if member in body and body[member] != expected:
            raise errors.bad_request(f"The {member} in the body does not match the entity being updated.")
    wanted = body.get("ChangeTrackingEnabled", False)
    if not isinstance(wanted, bool):
        raise errors.bad_request("ChangeTrackingEnabled must be a boolean.")
    if table.change_tracking and not wanted:
        raise errors.bad_request(
            f"Change tracking cannot be disabled for the entity '{table.logical_name}' once it is enabled."
        )
    if wanted and not table.change_tracking and not table.can_change_tracking:
        raise errors.bad_request(
            f"Change tracking cannot be enabled for the entity '{table.logical_name}': "
            "its CanChangeTrackingBeEnabled managed property is false."
        )
    labels = (body.get("DisplayName") or {}).get("LocalizedLabels") or []
    given = next((str(x.get("Label", "")) for x in labels if x.get("LanguageCode") == 1033), None)  # noqa: PLR2004 -- English
    merge = request.headers.get("mscrm.mergelabels", "").strip().lower() == "true"
    with store.lock:
        table.change_tracking = wanted
        if given is not None:
            table.display_name = given
        elif not merge:
            table.display_name = ""  # not sent and not merged: the label is lost (update page)
    return Outcome(204, {"OData-Version": "4.0"})


def _definition(store: Store, table: Table, request: ApiRequest, context: str) -> Outcome:
    if request.method == "PUT":
        return _update_entity(store, table, request)
    if request.method != "GET":  # PATCH cannot update a table definition (module docstring)
        raise errors.DataverseError(405, "0x80060888", "The requested method is not supported.")
    return json_outcome(200, {"@odata.context": f"{context}/$entity", **_entity(table)})


def _key(table: Table, key: Key) -> dict[str, Any]:
    return {
        "MetadataId": metadata_id(table.logical_name, "key", key.name),
        "LogicalName": key.name,
        "SchemaName": key.name,
        "EntityLogicalName": table.logical_name,
        "KeyAttributes": list(key.columns),
        "EntityKeyIndexStatus": key.status,
    }


def create_key(store: Store, table: Table, name: str, columns: list[str]) -> Key:
    """Define the key and submit its index job (module docstring); the refusals' texts are the emulator's."""
    if not columns or any(c not in table.columns or table.columns[c].is_lookup for c in columns):
        raise errors.bad_request(f"Invalid key attributes {columns} for {table.logical_name}.")
    with store.lock:
        if any(k.name == name.lower() for k in table.keys):
            raise errors.bad_request(f"A key named {name} already exists on {table.logical_name}.")
        if len(table.keys) >= MAX_KEYS:
            raise errors.bad_request(
                f"The entity {table.logical_name} already has the maximum of {MAX_KEYS} alternate keys."
            )
        return store.add_key(table, Key(name.lower(), tuple(columns)))


def reactivate_key(store: Store, request: ApiRequest) -> Outcome:
    """The unbound action ``ReactivateEntityKey``: a new index job for a key that is not Active."""
    body = request.json()
    if not isinstance(body, dict):
        raise errors.bad_request("The request body must be a JSON object.")
    entity, name = str(body.get("EntityLogicalName", "")), str(body.get("EntityKeyLogicalName", ""))
    table = store.tables.get(entity)
    if table is None:
        raise errors.DataverseError(404, "0x80040217", f"Could not find entity with name {entity}.")
    if store.reactivate_key(table, name) is None:
        raise errors.DataverseError(404, "0x80040217", f"Could not find key {name} on entity {entity}.")
    return Outcome(204, {"OData-Version": "4.0"})


_VERBS = {"GET": "Read", "POST": "Create", "PUT": "Write", "PATCH": "Write"}
_NOUNS = {"Attributes": "Attribute", "Keys": "EntityKey"}


def required_privilege(request: ApiRequest) -> str | None:
    """The privilege an ``EntityDefinitions`` request needs (`cdc.sandbox.dataverse.privileges`):
    ``prvReadEntity`` to read a definition, ``prvWriteEntity`` to update one, ``prvCreateAttribute`` for a
    new column, ``prvReadEntityKey`` to list keys ...; None for a path or method nothing answers."""
    match = _PATH.match(request.path)
    verb = _VERBS.get(request.method)
    if match is None or verb is None:
        return None
    return f"prv{verb}{_NOUNS.get(match.group('child') or '', 'Entity')}"


def _definitions(store: Store, request: ApiRequest, context: str, *, child: str | None) -> Outcome:
    """``EntityDefinitions`` itself: the tables listed, or a new one created (`create_table`)."""
    if request.method == "POST" and not child:
        return create_table(store, request)
    if request.method != "GET" or child:
        raise errors.DataverseError(405, "0x80060888", "The requested method is not supported.")
    return _listing(request, context, [_entity(t) for t in store.tables.values()])


def handle_metadata(store: Store, request: ApiRequest) -> Outcome:  # noqa: PLR0911 -- one answer per route
    match = _PATH.match(request.path)
    if match is None:
        raise errors.DataverseError(
            404, "0x8006088a", f"Resource not found for the segment '{request.path}'."
        )
    context = f"{request.api}/$metadata#EntityDefinitions"
    if match.group("entity") is None:
        return _definitions(store, request, context, child=match.group("child"))
    table = _table(store, match.group("entity"))
    child, item = match.group("child"), match.group("item")
    expand = "OptionSet" in (request.query.get("$expand") or "")
    if child is None:
        return _definition(store, table, request, context)
    if child == "Keys":
        if request.method == "POST":
            body = request.json()
            key = create_key(
                store, table, str(body.get("SchemaName", "")), list(body.get("KeyAttributes") or [])
            )
            entity = f"{request.api}/EntityDefinitions({metadata_id(table.logical_name)})"
            url = f"{entity}/Keys({metadata_id(table.logical_name, 'key', key.name)})"
            return Outcome(204, {"OData-Version": "4.0", "OData-EntityId": url})
        keys = store.settle_keys(table)
        return _listing(request, f"{context}('{table.logical_name}')/Keys", [_key(table, k) for k in keys])
    if request.method == "POST" and item is None:
        return _create_attribute(store, table, request)
    if item is None:
        attributes = [_attribute(table, c, expand=expand) for c in table.columns.values()]
        return _listing(request, f"{context}('{table.logical_name}')/Attributes", attributes)
    item_key = parse_key(item)
    name = item_key.get("LogicalName") if isinstance(item_key, dict) else None
    column = next(
        (
            c
            for c in table.columns.values()
            if name == c.name or item_key == metadata_id(table.logical_name, c.name)
        ),
        None,
    )
    if column is None:
        raise errors.DataverseError(404, "0x80040217", f"Could not find attribute with key {item}.")
    payload = _attribute(table, column, expand=expand)
    return json_outcome(
        200, {"@odata.context": f"{context}('{table.logical_name}')/Attributes/$entity", **payload}
    )
