"""Tables and multi-table lookups made through the metadata API, as a solution (or `cdc provision`) makes
them on a real org.

``POST EntityDefinitions`` (Learn, create-update-entity-definitions-using-web-api, "Create table
definitions"): an EntityMetadata with ``SchemaName`` (with the publisher's customization prefix),
``DisplayName``, ``DisplayCollectionName``, ``OwnershipType`` (``UserOwned`` / ``OrganizationOwned``) and, in
``Attributes``, exactly one ``StringAttributeMetadata`` with ``IsPrimaryName: true``; answered ``204`` with
``OData-EntityId: [org]/api/data/v9.2/EntityDefinitions(<MetadataId>)``. The table gets what a new table
has: ``<logicalname>id``, the primary name column, owner (user-owned), state and status (Active /
Inactive), created/modified on and ``versionnumber``; an object type code from 10000; privileges named
after its SchemaName (``prvCreatecdc_FormSubmission``, as the page's PUT example lists them); change
tracking off.

``POST CreatePolymorphicLookupAttribute`` (Learn, webapi/multitable-lookup): ``OneToManyRelationships``
(``SchemaName``, ``ReferencedEntity``, ``ReferencingEntity``) and a ``Lookup``
(``ComplexLookupAttributeMetadata`` with a ``SchemaName``) make one lookup column on the referencing table
that may point at any referenced table; a row binds it per target as ``<Lookup SchemaName>_<table>
@odata.bind`` and reads it back as ``_<name>_value`` with its ``lookuplogicalname``. Answered ``200`` with
``RelationshipIds`` and ``AttributeId``. This is how a "customer" lookup to a contact *or* a lead is made
(the standard Customer type points at account and contact only; fact sheet §3).

The refusals' codes and texts are the emulator's (the pages name the rules, not the answers).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.context import ApiRequest, Outcome, json_outcome
from cdc.sandbox.dataverse.store import Store
from cdc.sandbox.dataverse.tables import Choice, Column, Table, metadata_id

__all__ = ["SCHEMA_NAME", "create_polymorphic_lookup", "create_table"]

SCHEMA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+$")
"""A customization prefix, ``_``, then the name (``cdc_FormSubmission``)."""
FIRST_CUSTOM_OBJECT_TYPE_CODE = 10000
_OWNERSHIP = ("UserOwned", "OrganizationOwned")


def _label(body: Any, member: str) -> str | None:
    labels = ((body.get(member) or {}) if isinstance(body, dict) else {}).get("LocalizedLabels") or []
    return next((str(x.get("Label", "")) for x in labels if isinstance(x, dict) and x.get("Label")), None)


def _schema(value: Any, what: str) -> str:
    if not isinstance(value, str) or not SCHEMA_NAME.match(value):
        raise errors.bad_request(f"The {what} '{value}' must start with a customization prefix and '_'.")
    return value


def _plural(logical_name: str) -> str:
    """The entity set of a new table (``cdc_formsubmission`` -> ``cdc_formsubmissions``)."""
    if logical_name.endswith(("s", "x", "ch", "sh")):
        return logical_name + "es"
    if logical_name.endswith("y") and logical_name[-2:-1] not in set("aeiou"):
        return logical_name[:-1] + "ies"
    return logical_name + "s"


def _primary_name(body: dict[str, Any]) -> tuple[str, str, int]:
    primaries = [
        a for a in body.get("Attributes") or [] if isinstance(a, dict) and a.get("IsPrimaryName") is True
    ]
    if len(primaries) != 1 or not str(primaries[0].get("@odata.type", "")).endswith(
        "StringAttributeMetadata"
    ):
        raise errors.bad_request(
            "The Attributes of a new table must hold exactly one StringAttributeMetadata with IsPrimaryName "
            "true."
        )
    primary = primaries[0]
    schema = _schema(primary.get("SchemaName"), "primary name attribute's schema name")
    length = primary.get("MaxLength", 100)
    if not isinstance(length, int) or not 1 <= length <= 4000:  # noqa: PLR2004 -- String MaxLength range
        raise errors.bad_request(f"MaxLength {length!r} of {schema} is not within 1..4000.")
    return schema, _label(primary, "DisplayName") or schema, length


def create_table(store: Store, request: ApiRequest) -> Outcome:
    body = request.json()
    if not isinstance(body, dict):
        raise errors.bad_request("The request body must be an EntityMetadata object.")
    schema = _schema(body.get("SchemaName"), "schema name")
    display, collection = _label(body, "DisplayName"), _label(body, "DisplayCollectionName")
    if display is None or collection is None:
        raise errors.bad_request("A new table needs a DisplayName and a DisplayCollectionName.")
    ownership = body.get("OwnershipType")
    if ownership not in _OWNERSHIP:
        raise errors.bad_request(f"OwnershipType must be one of {', '.join(_OWNERSHIP)}, not {ownership!r}.")
    if body.get("IsActivity") is True:
        raise errors.bad_request("Activity tables are not emulated.")
    primary, primary_label, length = _primary_name(body)
    logical = schema.lower()
    with store.lock:
        if logical in store.tables:
            raise errors.bad_request(f"An entity with the specified name {logical} already exists.")
        custom = sum(1 for t in store.tables.values() if t.schema_name is not None)
        table = Table(
            logical,
            _plural(logical),
            f"{logical}id",
            primary.lower(),
            FIRST_CUSTOM_OBJECT_TYPE_CODE + custom,
            display_name=display,
            schema_name=schema,
        )
        for column in _standard_columns(
            table, primary, primary_label, length, owned=ownership == "UserOwned"
        ):
            table.add(column)
        store.add_table(table)
    url = f"{request.api}/EntityDefinitions({metadata_id(logical)})"
    return Outcome(204, {"OData-Version": "4.0", "OData-EntityId": url})


def _standard_columns(table: Table, primary: str, label: str, length: int, *, owned: bool) -> list[Column]:
    state = (Choice(0, "Active", default_status=1), Choice(1, "Inactive", default_status=2))
    status = (Choice(1, "Active", state=0), Choice(2, "Inactive", state=1))
    return [
        Column(table.primary_id, "Uniqueidentifier"),
        Column(primary.lower(), "String", label=label, max_length=length, custom=True, schema_name=primary),
        *([Column("ownerid", "Owner", label="Owner", targets=("systemuser", "team"))] if owned else []),
        Column("statecode", "State", choices=state),
        Column("statuscode", "Status", choices=status),
        Column("createdon", "DateTime", writable=False),
        Column("modifiedon", "DateTime", writable=False),
        Column("versionnumber", "BigInt", writable=False),
    ]


def create_polymorphic_lookup(store: Store, request: ApiRequest) -> Outcome:
    body = request.json()
    relationships = body.get("OneToManyRelationships") if isinstance(body, dict) else None
    lookup = body.get("Lookup") if isinstance(body, dict) else None
    if not isinstance(relationships, list) or not relationships or not isinstance(lookup, dict):
        raise errors.bad_request("OneToManyRelationships (a non-empty collection) and Lookup are required.")
    referencing = {str(r.get("ReferencingEntity")) for r in relationships if isinstance(r, dict)}
    if len(referencing) != 1 or len(relationships) != sum(isinstance(r, dict) for r in relationships):
        raise errors.bad_request("Every relationship must name the same ReferencingEntity.")
    table = store.tables.get(referencing.pop())
    if table is None:
        raise errors.DataverseError(404, "0x80040217", "Could not find the referencing entity.")
    targets: list[str] = []
    names: list[str] = []
    for relationship in relationships:
        names.append(_schema(relationship.get("SchemaName"), "relationship schema name"))
        target = str(relationship.get("ReferencedEntity"))
        if target not in store.tables:
            raise errors.DataverseError(404, "0x80040217", f"Could not find entity with name {target}.")
        targets.append(target)
    schema = _schema(lookup.get("SchemaName"), "lookup's schema name")
    name = schema.lower()
    if name in table.columns:
        raise errors.bad_request(
            f"An attribute with the specified name {name} already exists in {table.logical_name}."
        )
    column = Column(
        name,
        "Lookup",
        label=_label(lookup, "DisplayName") or schema,
        targets=tuple(dict.fromkeys(targets)),
        custom=True,
        schema_name=schema,
    )
    store.add_column(table, column)
    context = f"{request.api}/$metadata#Microsoft.Dynamics.CRM.CreatePolymorphicLookupAttributeResponse"
    return json_outcome(
        200,
        {
            "@odata.context": context,
            "RelationshipIds": [metadata_id("relationship", n.lower()) for n in names],
            "AttributeId": metadata_id(table.logical_name, name),
        },
    )


def insert_option_value(store: Store, request: ApiRequest) -> Outcome:
    """``InsertOptionValue``: a new option in a table's local choice column (``EntityLogicalName``,
    ``AttributeLogicalName``, ``Label`` as ``LocalizedLabels``, ``Value`` optional) -> ``NewOptionValue``
    (Learn, Web API reference "InsertOptionValue Action" and "InsertOptionValueResponse ComplexType")."""
    body = request.json()
    body = body if isinstance(body, dict) else {}
    table = store.tables.get(str(body.get("EntityLogicalName")))
    column = table.columns.get(str(body.get("AttributeLogicalName"))) if table is not None else None
    if table is None or column is None or column.kind != "Picklist":
        raise errors.DataverseError(404, "0x80040217", "Could not find a local option set to insert into.")
    label = _label(body, "Label")
    if label is None:
        raise errors.bad_request("Label is required.")
    taken = {c.value for c in column.choices}
    value = body.get("Value")
    if value is None:
        value = max([*taken, 100_000_000 - 1]) + 1  # the default publisher's option value prefix
    if isinstance(value, bool) or not isinstance(value, int) or value in taken:
        raise errors.bad_request(f"Value {value} is not a new integer option value.")
    table.add(replace(column, choices=(*column.choices, Choice(value, label))))
    context = f"{request.api}/$metadata#Microsoft.Dynamics.CRM.InsertOptionValueResponse"
    return json_outcome(200, {"@odata.context": context, "NewOptionValue": value})
