"""Every HubSpot API endpoint the daemon calls: the one place its paths are written.

An :class:`Endpoint` is a method and a route template. Its :attr:`~Endpoint.label` (``POST
/crm/v3/objects/{type}/batch/read``) names the call in metrics (``cdc_api_*{endpoint}``), logs and errors,
never a record's URL; :meth:`~Endpoint.path` fills the template's names in order and adds a query. The
client (`cdc.hubspot.client`) takes the endpoint and the names, so no other module builds a path: moving
to other API versions (the 2026 date-based paths, ``reference/hubspot_2026.md``) changes this module only.

Also here: the object-type names the paths take (``contacts``; the webhooks and the configuration say
``contact``). The sandbox serves these paths with routes of its own and does not import this module.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

__all__ = [
    "ASSOCIATE",
    "ASSOCIATIONS_BATCH_READ",
    "BATCH_ARCHIVE",
    "BATCH_CREATE",
    "BATCH_READ",
    "BATCH_UPDATE",
    "BATCH_UPSERT",
    "CREATE_PROPERTY",
    "CREATE_PROPERTY_GROUP",
    "CREATE_SUBSCRIPTION",
    "DISSOCIATE",
    "LIST_OBJECTS",
    "LIST_PROPERTIES",
    "LIST_PROPERTY_GROUPS",
    "LIST_SUBSCRIPTIONS",
    "OWNERS",
    "PROPERTY",
    "READ_OBJECT",
    "SEARCH",
    "Endpoint",
    "Query",
    "plural",
    "singular",
]

Query = Mapping[str, str | int]


@dataclass(frozen=True)
class Endpoint:
    """One API operation: ``method`` and ``route``, whose ``{names}`` :meth:`path` fills in."""

    method: str
    route: str

    @property
    def label(self) -> str:
        """``<METHOD> <route template>``: what metrics, logs and errors call it."""
        return f"{self.method} {self.route}"

    def path(self, *names: str, query: Query | None = None) -> str:
        """The route with ``names`` in the template's order (each quoted as one path segment), then
        ``query`` in its order. ValueError when the count of names is not the template's."""
        fields = [field for _, field, _, _ in string.Formatter().parse(self.route) if field is not None]
        if len(names) != len(fields):
            raise ValueError(f"{self.label} takes {len(fields)} names, not {len(names)}")
        path = self.route.format_map({f: quote(n, safe="") for f, n in zip(fields, names, strict=True)})
        return f"{path}?{urlencode(query)}" if query else path


_OBJECTS = "/crm/v3/objects/{type}"
_ASSOCIATIONS = "/crm/v4/associations/{from}/{to}"
_PROPERTIES = "/crm/v3/properties/{type}"
_SUBSCRIPTIONS = "/webhooks/v3/{appId}/subscriptions"

# Records (CRM objects API v3; fact sheet §3.1, §3.2: batches of at most 100 inputs).
LIST_OBJECTS = Endpoint("GET", _OBJECTS)
READ_OBJECT = Endpoint("GET", f"{_OBJECTS}/{{id}}")
BATCH_READ = Endpoint("POST", f"{_OBJECTS}/batch/read")
BATCH_CREATE = Endpoint("POST", f"{_OBJECTS}/batch/create")
BATCH_UPSERT = Endpoint("POST", f"{_OBJECTS}/batch/upsert")
BATCH_UPDATE = Endpoint("POST", f"{_OBJECTS}/batch/update")
BATCH_ARCHIVE = Endpoint("POST", f"{_OBJECTS}/batch/archive")
SEARCH = Endpoint("POST", f"{_OBJECTS}/search")
"""Its own rate limit: 5 requests per second per account (§3.5)."""
OWNERS = Endpoint("GET", "/crm/v3/owners")

# Associations (v4).
ASSOCIATIONS_BATCH_READ = Endpoint("POST", f"{_ASSOCIATIONS}/batch/read")
ASSOCIATE = Endpoint("POST", f"{_ASSOCIATIONS}/batch/create")
DISSOCIATE = Endpoint("POST", f"{_ASSOCIATIONS}/batch/labels/archive")

# Properties and property groups (v3), and the app's webhook subscriptions (webhooks v3): `cdc provision`.
PROPERTY = Endpoint("GET", f"{_PROPERTIES}/{{name}}")
LIST_PROPERTIES = Endpoint("GET", _PROPERTIES)
CREATE_PROPERTY = Endpoint("POST", _PROPERTIES)
LIST_PROPERTY_GROUPS = Endpoint("GET", f"{_PROPERTIES}/groups")
CREATE_PROPERTY_GROUP = Endpoint("POST", f"{_PROPERTIES}/groups")
LIST_SUBSCRIPTIONS = Endpoint("GET", _SUBSCRIPTIONS)
CREATE_SUBSCRIPTION = Endpoint("POST", _SUBSCRIPTIONS)

_PLURAL = {"contact": "contacts", "company": "companies", "deal": "deals", "ticket": "tickets"}
_SINGULAR = {name: object_type for object_type, name in _PLURAL.items()}


def plural(object_type: str) -> str:
    """``contact`` -> ``contacts``: the name the paths take (they take either; the association APIs answer
    with the plural); other names (``2-123``, a custom object) pass through."""
    return _PLURAL.get(object_type, object_type)


def singular(name: str) -> str:
    """``contacts`` -> ``contact``: the name webhooks, events and the configuration use; others pass
    through."""
    return _SINGULAR.get(name, name)
