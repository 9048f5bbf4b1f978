"""Every HubSpot API endpoint the daemon calls, per API version: the one place its paths are written.

An :class:`Endpoint` is a method and a route template. Its :attr:`~Endpoint.label` (``POST
/crm/objects/2026-09/{type}/batch/read``) names the call in metrics (``cdc_api_*{endpoint}``), logs and
errors, never a record's URL; it is stable for a version and changes when ``hubspot.api_version`` does.
:meth:`~Endpoint.path` fills the template's names in order and adds a query. :func:`endpoints` gives the
:class:`Endpoints` of a version (`cdc.settings.HubSpotApiVersion`); the client (`cdc.hubspot.client`) holds
those of the version it was opened with, and callers name one of them and its values, so no other module
builds a path.

The versions (fact sheet ``reference/hubspot_2026.md`` §4; the specs of
HubSpot/HubSpot-public-api-spec-collection ``CRM/{Objects,Associations,Properties,Crm Owners}`` and
``Webhooks/Webhooks``, for v3/v4, 2026-03 and 2026-09):

- ``legacy``: ``/crm/v3/objects``, ``/crm/v3/properties``, ``/crm/v3/owners``, ``/crm/v4/associations`` and
  ``/webhooks/v3``. v4 is unsupported from 2027-03-30, v3 from September 2027.
- ``2026-03`` and ``2026-09``: the date-based paths, ``/crm/objects/<v>``, ``/crm/properties/<v>``,
  ``/crm/owners/<v>``, ``/crm/associations/<v>``; webhook subscriptions under ``/webhooks/2026-03`` and
  ``/app-webhooks/2026-09``; OAuth tokens from ``/oauth/<v>/token`` (legacy: ``/oauth/v1/token``). The
  request bodies the daemon sends are valid in every version (it sends no property field 2026-09 removed,
  and every option's ``displayOrder``, required since 2026-03); where the answers differ (a batch's errors
  in a 207 or folded into a 200) the readers read both.

Forms (`consumers.forms`): the form definitions (``/marketing/v3/forms``, ``/{formId}``) and a form's
submissions (``/form-integrations/v1/submissions/forms/{formId}``) have no date-based GA version: the spec
collection holds Forms only as ``v3`` and ``2026-09-beta``/``2027-03-beta``
(spec:Marketing/Forms/Rollouts/144909/...), and the submissions API only as the legacy v1 page
(hs:docs/api-reference/legacy/marketing/forms/v1/get-form-integrations-v1-submissions-forms-form_guid).
Every version therefore calls those paths (no beta path in production); they are unsupported from
September 2027 like the other v1-v3 APIs (README, "unverified").

Also here: the object-type names the paths take (``contacts``; the webhooks and the configuration say
``contact``). The sandbox serves these paths with routes of its own and does not import this module.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import get_args
from urllib.parse import quote, urlencode

from cdc.settings import DEFAULT_HUBSPOT_API_VERSION, HubSpotApiVersion

__all__ = [
    "API_VERSIONS",
    "DEFAULT_HUBSPOT_API_VERSION",
    "JOURNAL_EXEMPTIONS",
    "Endpoint",
    "Endpoints",
    "HubSpotApiVersion",
    "Query",
    "endpoints",
    "plural",
    "singular",
]

API_VERSIONS: tuple[HubSpotApiVersion, ...] = get_args(HubSpotApiVersion)
Query = Mapping[str, str | int]


@dataclass(frozen=True)
class Endpoint:
    """One API operation: ``method`` and ``route``, whose ``{names}`` :meth:`path` fills in."""

    method: str
    route: str
    exemptions: frozenset[str] = frozenset()
    """The rate limits the operation is exempt from, as HubSpot's specs mark them
    (``x-hubspot-rate-limit-exemptions``: ``ten-secondly``, ``daily``): `cdc.budget.windows.hubspot_kind`."""

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


@dataclass(frozen=True)
class Endpoints:
    """The operations the daemon uses, in one API version (every one exists in each version)."""

    version: HubSpotApiVersion
    # Records (batches of at most 100 inputs).
    list_objects: Endpoint
    read_object: Endpoint
    batch_read: Endpoint
    batch_create: Endpoint
    batch_upsert: Endpoint
    batch_update: Endpoint
    batch_archive: Endpoint
    search: Endpoint
    """Its own rate limit: 5 requests per second per account."""
    owners: Endpoint
    # Associations (batch read takes at most 1,000 inputs).
    associations_batch_read: Endpoint
    associate: Endpoint
    dissociate: Endpoint
    # Properties and property groups, and the app's webhook subscriptions: `cdc provision`.
    property: Endpoint
    list_properties: Endpoint
    create_property: Endpoint
    list_property_groups: Endpoint
    create_property_group: Endpoint
    list_subscriptions: Endpoint
    create_subscription: Endpoint
    # Forms and their submissions (`form_submissions`): the same paths in every version (module docstring).
    list_forms: Endpoint
    """``after``, ``limit``: the portal's forms."""
    read_form: Endpoint
    form_submissions: Endpoint
    """``after``, ``limit`` (1-50, default 20): one form's submissions, newest first."""
    # OAuth (`cdc.hubspot.tokens`): a form-encoded body, every parameter in it.
    token: Endpoint
    """Access tokens: the ``refresh_token`` (and ``authorization_code``) grant."""
    client_credentials_token: Endpoint
    """The ``client_credentials`` grant: the newest version that documents it (the 2026-09 draft's
    ``grant_type`` lists only ``authorization_code`` and ``refresh_token``)."""
    # The Webhooks Journal of one portal (``installPortalId``), read with a client-credentials token; every
    # operation is rate-limit exempt (`JOURNAL_EXEMPTIONS`).
    journal_earliest: Endpoint
    """``{count}`` (1-100): the oldest entries kept."""
    journal_next: Endpoint
    """``{offset}``, ``{count}`` (1-100): the entries after ``offset``; 404 once it expired."""
    journal_subscriptions: Endpoint
    journal_upsert_subscription: Endpoint
    journal_filters: Endpoint
    """``{subscriptionId}``: its filters."""
    journal_create_filter: Endpoint
    journal_delete_filter: Endpoint


_WEBHOOKS = {"legacy": "/webhooks/v3", "2026-03": "/webhooks/2026-03", "2026-09": "/app-webhooks/2026-09"}
"""The 2026-09 webhooks spec moved the subscriptions API to ``/app-webhooks`` (developer API key only)."""


_JOURNAL = {"legacy": "2026-03", "2026-03": "2026-03", "2026-09": "2026-09"}
"""The journal's version per API version: it has 2026-03 and 2026-09 (spec:Webhooks Journal/Webhooks Journal/
Rollouts/284944/{2026-03,2026-09}/webhooksJournal.json); a legacy portal reads 2026-03's."""


_FORMS, _SUBMISSIONS = "/marketing/v3/forms", "/form-integrations/v1/submissions/forms/{formId}"
"""No date-based GA path for either (module docstring): every version calls these."""


_CLIENT_CREDENTIALS = {"2026-09": "/oauth/2026-03/token"}
"""Where a version's client-credentials grant is asked for, when not at its own token path: the stored
2026-09 OAuth spec (a draft of 2026-03-19) lists no ``client_credentials`` grant, 2026-03 and v1 do
(spec:Auth/Oauth/Rollouts/279897/{2026-03,2026-09}/oauth.json, 155908/v1/oauth.json)."""


JOURNAL_EXEMPTIONS = frozenset({"daily", "ten-secondly"})
"""The Webhooks Journal's operations count against neither limit: ``x-hubspot-rate-limit-exemptions:
["daily", "ten-secondly"]`` in every journal spec (2026-03, 2026-09, 2027-03-beta)."""


def endpoints(version: HubSpotApiVersion = DEFAULT_HUBSPOT_API_VERSION) -> Endpoints:
    """The endpoints of ``version``; ValueError for a version this module does not know."""
    found = _TABLES.get(version)
    if found is None:
        raise ValueError(f"HubSpot API version {version!r} is not one of {', '.join(API_VERSIONS)}")
    return found


def _table(version: HubSpotApiVersion) -> Endpoints:
    if version == "legacy":
        objects, associations = "/crm/v3/objects/{type}", "/crm/v4/associations/{from}/{to}"
        properties, owners = "/crm/v3/properties/{type}", "/crm/v3/owners"
    else:
        objects, associations = (
            f"/crm/objects/{version}/{{type}}",
            f"/crm/associations/{version}/{{from}}/{{to}}",
        )
        properties, owners = f"/crm/properties/{version}/{{type}}", f"/crm/owners/{version}"
    subscriptions = f"{_WEBHOOKS[version]}/{{appId}}/subscriptions"
    token = "/oauth/v1/token" if version == "legacy" else f"/oauth/{version}/token"
    return Endpoints(
        version=version,
        list_objects=Endpoint("GET", objects),
        read_object=Endpoint("GET", f"{objects}/{{id}}"),
        batch_read=Endpoint("POST", f"{objects}/batch/read"),
        batch_create=Endpoint("POST", f"{objects}/batch/create"),
        batch_upsert=Endpoint("POST", f"{objects}/batch/upsert"),
        batch_update=Endpoint("POST", f"{objects}/batch/update"),
        batch_archive=Endpoint("POST", f"{objects}/batch/archive"),
        # The objects specs mark search exempt from the ten-secondly limit; it has its own 5 per second.
        search=Endpoint("POST", f"{objects}/search", frozenset({"ten-secondly"})),
        owners=Endpoint("GET", owners),
        associations_batch_read=Endpoint("POST", f"{associations}/batch/read"),
        associate=Endpoint("POST", f"{associations}/batch/create"),
        dissociate=Endpoint("POST", f"{associations}/batch/labels/archive"),
        property=Endpoint("GET", f"{properties}/{{name}}"),
        list_properties=Endpoint("GET", properties),
        create_property=Endpoint("POST", properties),
        list_property_groups=Endpoint("GET", f"{properties}/groups"),
        create_property_group=Endpoint("POST", f"{properties}/groups"),
        list_subscriptions=Endpoint("GET", subscriptions),
        create_subscription=Endpoint("POST", subscriptions),
        list_forms=Endpoint("GET", _FORMS),
        read_form=Endpoint("GET", f"{_FORMS}/{{formId}}"),
        form_submissions=Endpoint("GET", _SUBMISSIONS),
        token=Endpoint("POST", token),
        client_credentials_token=Endpoint("POST", _CLIENT_CREDENTIALS.get(version, token)),
        **_journal(_JOURNAL[version]),
    )


def _journal(version: str) -> dict[str, Endpoint]:
    local, subs = f"/webhooks-journal/journal-local/{version}", f"/webhooks-journal/subscriptions/{version}"
    FREE = JOURNAL_EXEMPTIONS  # noqa: N806 -- the name keeps the table's lines short
    return {
        "journal_earliest": Endpoint("GET", f"{local}/batch/earliest/{{count}}", exemptions=FREE),
        "journal_next": Endpoint("GET", f"{local}/batch/{{offset}}/next/{{count}}", exemptions=FREE),
        "journal_subscriptions": Endpoint("GET", subs, exemptions=FREE),
        "journal_upsert_subscription": Endpoint("POST", subs, exemptions=FREE),
        "journal_filters": Endpoint(
            "GET", f"{subs}/filters/subscription/{{subscriptionId}}", exemptions=FREE
        ),
        "journal_create_filter": Endpoint("POST", f"{subs}/filters", exemptions=FREE),
        "journal_delete_filter": Endpoint("DELETE", f"{subs}/filters/{{filterId}}", exemptions=FREE),
    }


_TABLES = {version: _table(version) for version in API_VERSIONS}


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
