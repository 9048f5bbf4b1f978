"""Every Dataverse Web API URL the daemon requests, and the labels its metrics carry: the one place they
are written.

URLs are absolute, under the org's API root (``https://<org>/api/data/v9.2``, `api_root`; the version is
``dataverse.api_version``). Query options go through :func:`with_options`, one encoding for all of them.
Labels (``cdc_api_*{endpoint}``) name what a call is for, never a URL or a record: ``$batch``,
``metadata:<what>``, or ``<entity set>:<purpose>`` (`rows_label`).

Also here: the naming rule between a table's logical name (``contact``, the configuration's and the
events' object type) and its entity set (``contacts``, the URL's). The sandbox serves these URLs with
routes of its own and does not import this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote, urlencode

__all__ = [
    "BATCH",
    "METADATA_ATTRIBUTES",
    "METADATA_ATTRIBUTE_OPTIONS",
    "METADATA_CREATE_ATTRIBUTE",
    "METADATA_CREATE_KEY",
    "METADATA_ENTITY",
    "METADATA_KEYS",
    "METADATA_REACTIVATE_KEY",
    "METADATA_UPDATE_ENTITY",
    "USER_PRIVILEGES",
    "WHO_AM_I",
    "api_root",
    "attribute_options",
    "attributes",
    "batch",
    "definition",
    "entity_logical_name",
    "entity_set_name",
    "keys",
    "literal",
    "reactivate_key",
    "reference",
    "row",
    "row_by_key",
    "rows",
    "rows_label",
    "user_privileges",
    "who_am_i",
    "with_options",
]

BATCH = "$batch"
METADATA_ENTITY = "metadata:entity"
METADATA_UPDATE_ENTITY = "metadata:entity:update"
METADATA_ATTRIBUTES = "metadata:attributes"
METADATA_ATTRIBUTE_OPTIONS = "metadata:attribute:options"
METADATA_CREATE_ATTRIBUTE = "metadata:attributes:create"
METADATA_KEYS = "metadata:keys"
METADATA_CREATE_KEY = "metadata:keys:create"
METADATA_REACTIVATE_KEY = "metadata:keys:reactivate"
WHO_AM_I = "whoami"
USER_PRIVILEGES = "privileges:user"

_SAFE = "$,()'"
"""Left as they are in query options: OData's own syntax reads better unescaped, and servers take both."""
_QUOTE = "'"
_IRREGULAR = {"opportunity": "opportunities", "activity": "activities", "territory": "territories"}
_IRREGULAR_SETS = {entity_set: logical for logical, entity_set in _IRREGULAR.items()}


def entity_set_name(logical_name: str) -> str:
    """``contact`` -> ``contacts``, ``opportunity`` -> ``opportunities``: the standard tables' plural."""
    if logical_name in _IRREGULAR:
        return _IRREGULAR[logical_name]
    if logical_name.endswith("y") and logical_name[-2:-1] not in {"a", "e", "i", "o", "u"}:
        return logical_name[:-1] + "ies"
    if logical_name.endswith(("s", "x")):
        return logical_name + "es"
    return logical_name + "s"


def entity_logical_name(entity_set: str) -> str:
    """``contacts`` -> ``contact``: the inverse of `entity_set_name` (the key column is ``<name>id``)."""
    if entity_set in _IRREGULAR_SETS:
        return _IRREGULAR_SETS[entity_set]
    if entity_set.endswith("ies"):
        return entity_set[:-3] + "y"
    if entity_set.endswith(("sses", "xes")):
        return entity_set[:-2]
    return entity_set.removesuffix("s")


def rows_label(entity_set: str, purpose: str) -> str:
    """The label of a query of a table's rows: ``contacts:track``, ``contacts:read``, ..."""
    return f"{entity_set}:{purpose}"


def literal(value: str) -> str:
    """A string literal of OData's query and key syntax: quoted, its quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def with_options(
    url: str, *, select: Sequence[str] = (), where: str | None = None, expand: str | None = None
) -> str:
    """``url`` with ``$select`` (columns, in order), ``$filter`` and ``$expand`` when given."""
    options = {"$select": ",".join(select)} if select else {}
    if where is not None:
        options["$filter"] = where
    if expand is not None:
        options["$expand"] = expand
    return f"{url}?{urlencode(options, quote_via=quote, safe=_SAFE)}" if options else url


def api_root(base_url: str, version: str) -> str:
    """``https://<org>/api/data/<version>``, from ``dataverse.base_url`` and ``dataverse.api_version``."""
    return f"{base_url.rstrip('/')}/api/data/{version}"


def rows(root: str, entity_set: str) -> str:
    """A table's rows (queries, change tracking, creates)."""
    return f"{root}/{entity_set}"


def row(root: str, entity_set: str, row_id: str) -> str:
    """One row by its id (a GUID)."""
    return f"{root}/{entity_set}({row_id})"


def row_by_key(root: str, entity_set: str, column: str, value: str) -> str:
    """One row by an alternate key of one column (``contacts(cdc_hubspotid='123')``): an upsert's address."""
    return f"{root}/{entity_set}({column}={quote(literal(value), safe=_QUOTE)})"


def reference(entity_set: str, row_id: str) -> str:
    """A row as the value of a lookup (``<navigation>@odata.bind``): ``/accounts(<id>)``."""
    return f"/{entity_set}({row_id})"


def batch(root: str) -> str:
    return f"{root}/$batch"


def definition(root: str, table: str) -> str:
    """A table's definition (``EntityDefinitions``, by logical name): change tracking, its columns, keys."""
    return f"{root}/EntityDefinitions(LogicalName={literal(quote(table))})"


def attributes(root: str, table: str) -> str:
    """A table's columns (``AttributeMetadata``): listed, or created by a POST."""
    return f"{definition(root, table)}/Attributes"


def attribute_options(root: str, table: str, column: str) -> str:
    """A choice column's definition, cast to ``PicklistAttributeMetadata`` (its ``OptionSet`` expands)."""
    name = literal(quote(column))
    return f"{attributes(root, table)}(LogicalName={name})/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"


def keys(root: str, table: str) -> str:
    """A table's alternate keys (``EntityKeyMetadata``): listed, or created by a POST."""
    return f"{definition(root, table)}/Keys"


def reactivate_key(root: str) -> str:
    """The ``ReactivateEntityKey`` action: rebuilds a key whose index build failed."""
    return f"{root}/ReactivateEntityKey"


def who_am_i(root: str) -> str:
    """The ``WhoAmI`` function: the calling user's ``UserId`` (the application user)."""
    return f"{root}/WhoAmI"


def user_privileges(root: str, user_id: str, names: Sequence[str]) -> str:
    """``RetrieveUserSetOfPrivilegesByNames`` bound to a system user: which of ``names`` it holds (through
    its roles and its teams), the names passed as a parameter alias (``@p``)."""
    function = "Microsoft.Dynamics.CRM.RetrieveUserSetOfPrivilegesByNames(PrivilegeNames=@p)"
    alias = urlencode({"@p": "[" + ",".join(f'"{n}"' for n in names) + "]"}, quote_via=quote, safe="@,[]")
    return f"{root}/systemusers({user_id})/{function}?{alias}"
