"""The form-submissions table (`consumers.forms`), as `cdc provision --dataverse` makes it.

In order: the table itself when the org lacks it (``POST EntityDefinitions``: a user-owned table whose
primary name column is ``<columns.name>``; Learn, create-update-entity-definitions-using-web-api), then its
contact-or-lead lookup (``POST CreatePolymorphicLookupAttribute``, relationships to ``contact`` and
``lead``; Learn, webapi/multitable-lookup), then the plain columns and the alternate key on the submission
key, which `cdc.dataverse.provisioning.ensure_columns` checks and makes like every other column
(:func:`form_columns` lists them). Without ``create`` (or with ``--dry-run``) a missing table is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from cdc.dataverse import paths
from cdc.dataverse.client import DataverseClient
from cdc.dataverse.errors import FatalError
from cdc.provisioning.report import Item, Section
from cdc.provisioning.specs import ColumnSpec
from consumers.forms import NAME_LENGTH, FormSubmissions

__all__ = ["ensure_form_table", "form_columns"]

STEP = "form_submissions"
_NOT_FOUND = 404
_JSON = {"Content-Type": "application/json; charset=utf-8"}
KEY_LENGTH = 200
"""form GUID (36) + contact id + epoch ms: far under it."""


def _label(text: str) -> dict[str, Any]:
    return {"LocalizedLabels": [{"Label": text, "LanguageCode": 1033}]}


def form_columns(config: FormSubmissions) -> tuple[ColumnSpec, ...]:
    """The table's columns besides its primary name and lookup: fixed ones, then the mapped fields."""
    cols, table, steps = config.columns, config.table, (STEP,)
    fixed = (
        ColumnSpec(table, cols.form_id, "Form Id", "String", max_length=100, steps=steps),
        ColumnSpec(table, cols.form_name, "Form Name", "String", max_length=400, steps=steps),
        ColumnSpec(table, cols.page_url, "Page URL", "String", max_length=2000, steps=steps),
        ColumnSpec(table, cols.submitted_at, "Submitted At", "DateTime", steps=steps),
        ColumnSpec(
            table,
            cols.key,
            "Submission Key",
            "String",
            max_length=KEY_LENGTH,
            steps=steps,
            alternate_key=True,
        ),
    )
    mapped = tuple(
        ColumnSpec(table, column, field, "String", max_length=4000, steps=steps)
        for field, column in sorted(config.fields.items())
    )
    return fixed + mapped


def _schema(logical: str) -> str:
    prefix, _, rest = logical.partition("_")
    return f"{prefix}_{rest.title().replace('_', '')}"


def table_body(config: FormSubmissions) -> dict[str, Any]:
    return {
        "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata",
        "SchemaName": _schema(config.table),
        "DisplayName": _label("Form Submission"),
        "DisplayCollectionName": _label("Form Submissions"),
        "Description": _label("HubSpot form submissions, written by the sync daemon."),
        "OwnershipType": "UserOwned",
        "IsActivity": False,
        "HasActivities": False,
        "HasNotes": False,
        "Attributes": [
            {
                "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
                "SchemaName": _schema(config.columns.name),
                "IsPrimaryName": True,
                "MaxLength": NAME_LENGTH,
                "DisplayName": _label("Name"),
                "RequiredLevel": {"Value": "None"},
                "FormatName": {"Value": "Text"},
            }
        ],
    }


def lookup_body(config: FormSubmissions) -> dict[str, Any]:
    return {
        "OneToManyRelationships": [
            {"SchemaName": f"{config.table}_{t}", "ReferencedEntity": t, "ReferencingEntity": config.table}
            for t in ("contact", "lead")
        ],
        "Lookup": {
            "@odata.type": "Microsoft.Dynamics.CRM.ComplexLookupAttributeMetadata",
            "AttributeType": "Lookup",
            "SchemaName": config.columns.customer,
            "DisplayName": _label("Contact or lead"),
        },
    }


async def ensure_form_table(
    client: DataverseClient,
    config: FormSubmissions,
    section: Section,
    *,
    create: bool,
    dry_run: bool,
    say: Callable[[str], None],
) -> None:
    """The table and its lookup (the columns and key follow through `ensure_columns`)."""
    item = Item("table", config.table, config.table, "Table", "form submissions")
    try:
        await client.get_json(paths.definition(client.api_root, config.table), endpoint=paths.METADATA_ENTITY)
    except FatalError as error:
        if error.status != _NOT_FOUND:
            raise
    else:
        section.present.append(item)
        return
    if not create or dry_run:
        section.missing.append(item)
        say(f"{'would create' if create else 'missing'} {item}")
        return
    root = client.api_root
    for url, body, label in (
        (f"{root}/EntityDefinitions", table_body(config), "metadata:entity:create"),
        (f"{root}/CreatePolymorphicLookupAttribute", lookup_body(config), "metadata:lookup:create"),
    ):
        await client.send("POST", url, endpoint=label, body=orjson.dumps(body), headers=_JSON)
    section.created.append(item)
    say(f"created {item}")
