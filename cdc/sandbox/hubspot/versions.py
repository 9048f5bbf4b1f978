"""The HubSpot API versions the emulator serves, where their routes live and where their answers differ.

One route table per API family (`cdc.sandbox.hubspot.crm`, ``associations_api``, ``properties_api``,
``owners``, ``webhooks_api``) is built once per :class:`ApiVersion` in :data:`SERVED`: ``legacy`` (CRM v3
objects, properties and owners, v4 associations, webhooks v3), ``2026-03`` and ``2026-09``. Sources: the
specs of HubSpot/HubSpot-public-api-spec-collection for each version (``CRM/Objects``, ``CRM/Associations``,
``CRM/Associations Schema``, ``CRM/Properties``, ``CRM/Crm Owners``, ``Webhooks/Webhooks``) and the fact sheet
(``reference/hubspot_2026.md`` §4). The stored 2026-09 specs are drafts of 2026-03-19, before 2026-09 shipped
(2026-09-08); where a draft is the only source, the harsher reading is served:

- batch answers: v3/v4 and 2026-03 answer a partial failure with a 207 (``...WithErrors``); the 2026-09
  draft documents no 207 and puts ``errors``/``numErrors`` in the 200/201 body, so 2026-09 answers 200/201
  with the errors folded in (a client that looks for a 207 misses them);
- association batch archive (``batch/archive``, ``batch/labels/archive``): 204 without a body in v4, 200
  with a batch body in 2026-03 and 2026-09; association batch create: 201 (207) in v4 and 2026-03, 200 in
  the 2026-09 draft;
- ``GET .../objects/{type}/{id}/associations/{toType}`` (one record's associations) is absent from the
  2026-09 draft: not served there (batch read is the way);
- association labels (``AssociationSpecWithLabel``) lose ``fromObjectTypeId``/``toObjectTypeId`` in 2026-09;
- property create: ``OptionInput.displayOrder`` is required from 2026-03; the 2026-09 draft drops
  ``currencyPropertyName``, ``numberDisplayHint``, ``textDisplayHint`` and ``showCurrencySymbol`` from
  ``PropertyCreate``, and a create that sends one is refused (whether HubSpot ignores or refuses an unknown
  field is not documented);
- admin-configured validation rules (`cdc.sandbox.hubspot.rules`) apply to API writes from 2026-09 only
  (hs:changelog/crm-api-write-validation-enforcement);
- the OAuth token endpoint (`cdc.sandbox.hubspot.oauth`): ``/oauth/v1/token`` (legacy) takes its
  parameters in the body or the query, the dated ones in the body only (hs:docs/api-reference/2026-03/
  authentication/manage-oauth-tokens); the 2026-09 draft's ``grant_type`` lists ``authorization_code`` and
  ``refresh_token`` alone, so 2026-09 refuses ``client_credentials``, which v1 and 2026-03 grant
  (spec:Auth/Oauth/Rollouts/279897/{2026-03,2026-09}/oauth.json, 155908/v1/oauth.json).

A version the emulator does not serve (``/crm/objects/2025-09/...``, the beta that preceded 2026-03, or any
other) gets :func:`not_served`: 404 with an HTML page, as HubSpot answers a path it does not route (an
unrouted ``/crm/v3/objects/notes/`` answered 404 with an HTML page, HubSpot/hubspot-api-nodejs issue 413;
a retired v2 API, "HubSpot - Page not found", HubspotCommunity/hubspot-ruby issue 21). What HubSpot answers
for an unknown date version in particular is not documented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

__all__ = ["SERVED", "ApiVersion", "not_served", "not_served_routes"]


@dataclass(frozen=True)
class ApiVersion:
    """Where one version's routes live (``{objectType}`` etc. are added by each route table) and how its
    answers differ from the others'."""

    name: str
    objects: str
    """``/crm/v3/objects``: records, batches, search, merge, and one record's associations (v4 and dated)."""
    object_associations: str
    """Root of one record's association routes (``/crm/v4/objects`` in v4, the objects root otherwise)."""
    associations: str
    properties: str
    owners: str
    webhooks: str
    labels: tuple[str, ...]
    """The association-labels routes (``{fromObjectType}/{toObjectType}/labels`` appended)."""
    oauth: str
    """The OAuth token endpoint (``/oauth/v1/token``, ``/oauth/<version>/token``)."""
    grants: frozenset[str] = frozenset({"authorization_code", "refresh_token", "client_credentials"})
    """The ``grant_type`` values its token endpoint takes."""
    folds_batch_errors: bool = False
    reads_one_record_associations: bool = True
    labels_name_object_types: bool = True
    option_display_order_required: bool = False
    removed_property_fields: frozenset[str] = frozenset()
    enforces_validation_rules: bool = False

    @property
    def dated(self) -> bool:
        return self.name != "legacy"

    def batch_status(self, ok: int, errors: list[dict[str, Any]]) -> int:
        """A batch answer's status: ``ok``, or 207 when some input failed (unless the version folds them)."""
        return 207 if errors and not self.folds_batch_errors else ok

    @property
    def association_create_status(self) -> int:
        """Association batch create: 201 in v4 and 2026-03, 200 in the 2026-09 draft."""
        return 200 if self.folds_batch_errors else 201


def _dated(name: str, webhooks: str, **shape: Any) -> ApiVersion:
    return ApiVersion(
        name=name,
        objects=f"/crm/objects/{name}",
        object_associations=f"/crm/objects/{name}",
        associations=f"/crm/associations/{name}",
        properties=f"/crm/properties/{name}",
        owners=f"/crm/owners/{name}",
        webhooks=webhooks,
        labels=(f"/crm/associations/{name}",),
        oauth=f"/oauth/{name}/token",
        option_display_order_required=True,
        **shape,
    )


LEGACY = ApiVersion(
    name="legacy",
    objects="/crm/v3/objects",
    object_associations="/crm/v4/objects",
    associations="/crm/v4/associations",
    properties="/crm/v3/properties",
    owners="/crm/v3/owners",
    webhooks="/webhooks/v3",
    labels=("/crm/associations/v4", "/crm/v4/associations"),
    oauth="/oauth/v1/token",
)
SERVED: dict[str, ApiVersion] = {
    version.name: version
    for version in (
        LEGACY,
        _dated("2026-03", "/webhooks/2026-03"),
        _dated(
            "2026-09",
            "/app-webhooks/2026-09",
            folds_batch_errors=True,
            reads_one_record_associations=False,
            labels_name_object_types=False,
            removed_property_fields=frozenset(
                {"currencyPropertyName", "numberDisplayHint", "textDisplayHint", "showCurrencySymbol"}
            ),
            enforces_validation_rules=True,
            grants=frozenset({"authorization_code", "refresh_token"}),
        ),
    )
}

NOT_FOUND_PAGE = (
    "<!DOCTYPE html><html><head><title>HubSpot - Page not found</title></head>"
    "<body><h1>Page not found</h1><p>The page you requested does not exist.</p></body></html>"
)


async def not_served(_: Request) -> Response:
    """A path no served version routes (an unknown version, or an endpoint the version lacks)."""
    return HTMLResponse(NOT_FOUND_PAGE, status_code=404)


def not_served_routes() -> list[Route]:
    """Catch-alls for the API families, after every served route: anything under them not served."""
    return [
        Route(path, not_served, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        for path in (
            "/crm/{rest:path}",
            "/webhooks/{rest:path}",
            "/app-webhooks/{rest:path}",
            "/oauth/{rest:path}",
        )
    ]
