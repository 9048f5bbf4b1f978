"""Every HubSpot path comes from `cdc.hubspot.paths`, per API version: each endpoint the daemon calls exists
in every version, at the path that version's spec documents (HubSpot/HubSpot-public-api-spec-collection, CRM
``Objects``, ``Associations``, ``Properties``, ``Crm Owners`` and ``Webhooks``, v3/v4, 2026-03, 2026-09;
fact sheet hubspot_2026.md §4), and a path cannot be built with the wrong number of names."""

from __future__ import annotations

import dataclasses

import pytest

from cdc.hubspot.paths import (
    API_VERSIONS,
    DEFAULT_HUBSPOT_API_VERSION,
    JOURNAL_EXEMPTIONS,
    Endpoint,
    Endpoints,
    endpoints,
    plural,
    singular,
)
from cdc.sandbox.hubspot.versions import SERVED
from cdc.settings import HubSpotSettings

ROOTS = {
    # version: (objects, associations, properties, owners, webhooks, token): the sandbox's routes, written
    # apart from the daemon's paths from the same specs (cdc.sandbox.hubspot.versions)
    name: (v.objects, v.associations, v.properties, v.owners, v.webhooks, v.oauth)
    for name, v in SERVED.items()
}


def client_credentials_path(version: str) -> str:
    """Where the client-credentials grant is asked for: the version's own token endpoint when it takes the
    grant, else the newest that does (2026-09's draft lists no such grant)."""
    if "client_credentials" in SERVED[version].grants:
        return SERVED[version].oauth
    return next(v.oauth for v in SERVED.values() if v.dated and "client_credentials" in v.grants)


def documented(version: str) -> dict[str, str]:
    """Each endpoint's ``<METHOD> <route>`` as the version's spec writes it (names aside)."""
    objects, associations, properties, owners, webhooks, token = ROOTS[version]
    return {
        "list_objects": f"GET {objects}/{{type}}",
        "read_object": f"GET {objects}/{{type}}/{{id}}",
        "batch_read": f"POST {objects}/{{type}}/batch/read",
        "batch_create": f"POST {objects}/{{type}}/batch/create",
        "batch_upsert": f"POST {objects}/{{type}}/batch/upsert",
        "batch_update": f"POST {objects}/{{type}}/batch/update",
        "batch_archive": f"POST {objects}/{{type}}/batch/archive",
        "search": f"POST {objects}/{{type}}/search",
        "owners": f"GET {owners}",
        "associations_batch_read": f"POST {associations}/{{from}}/{{to}}/batch/read",
        "associate": f"POST {associations}/{{from}}/{{to}}/batch/create",
        "dissociate": f"POST {associations}/{{from}}/{{to}}/batch/labels/archive",
        "property": f"GET {properties}/{{type}}/{{name}}",
        "list_properties": f"GET {properties}/{{type}}",
        "create_property": f"POST {properties}/{{type}}",
        "list_property_groups": f"GET {properties}/{{type}}/groups",
        "create_property_group": f"POST {properties}/{{type}}/groups",
        "list_subscriptions": f"GET {webhooks}/{{appId}}/subscriptions",
        "create_subscription": f"POST {webhooks}/{{appId}}/subscriptions",
        # No date-based GA forms or submissions API: the same paths in every version (spec Marketing/Forms
        # holds v3 and betas only; submissions: the legacy v1 reference page).
        "list_forms": "GET /marketing/v3/forms",
        "read_form": "GET /marketing/v3/forms/{formId}",
        "form_submissions": "GET /form-integrations/v1/submissions/forms/{formId}",
        "token": f"POST {token}",
        "client_credentials_token": f"POST {client_credentials_path(version)}",
        **journal_documented("2026-09" if version == "2026-09" else "2026-03"),
    }


def journal_documented(version: str) -> dict[str, str]:
    """The Webhooks Journal's operations (spec PublicApiSpecs/Webhooks Journal/Webhooks Journal/Rollouts/
    284944/{2026-03,2026-09}/webhooksJournal.json); a legacy portal reads 2026-03's."""
    local, subs = f"/webhooks-journal/journal-local/{version}", f"/webhooks-journal/subscriptions/{version}"
    return {
        "journal_earliest": f"GET {local}/batch/earliest/{{count}}",
        "journal_next": f"GET {local}/batch/{{offset}}/next/{{count}}",
        "journal_subscriptions": f"GET {subs}",
        "journal_upsert_subscription": f"POST {subs}",
        "journal_filters": f"GET {subs}/filters/subscription/{{subscriptionId}}",
        "journal_create_filter": f"POST {subs}/filters",
        "journal_delete_filter": f"DELETE {subs}/filters/{{filterId}}",
    }


@pytest.mark.parametrize("version", API_VERSIONS)
def test_journal_calls_and_only_they_are_marked_exempt_from_the_rate_limits(version: str) -> None:
    """Every journal operation is ``x-hubspot-rate-limit-exemptions: ["daily", "ten-secondly"]`` in its spec:
    a client-side limiter lets exactly these through."""
    table = endpoints(version)  # type: ignore[arg-type]
    exempt = {name for name, e in operations(table).items() if e.exemptions == JOURNAL_EXEMPTIONS}
    assert exempt == set(journal_documented(version))


def operations(api: Endpoints) -> dict[str, Endpoint]:
    return {f.name: getattr(api, f.name) for f in dataclasses.fields(api) if f.name != "version"}


@pytest.mark.parametrize("version", API_VERSIONS)
def test_every_endpoint_exists_in_every_version_at_its_documented_path(version: str) -> None:
    api = endpoints(version)  # type: ignore[arg-type]
    assert api.version == version
    assert {name: e.label for name, e in operations(api).items()} == documented(version)


def test_the_versions_are_the_three_the_setting_takes_and_2026_09_is_the_default() -> None:
    assert set(API_VERSIONS) == {"legacy", "2026-03", "2026-09"}
    assert DEFAULT_HUBSPOT_API_VERSION == "2026-09"
    assert HubSpotSettings().api_version == "2026-09"
    assert endpoints().version == "2026-09"


def test_an_unknown_version_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'2025-09' is not one of 2026-09, 2026-03, legacy"):
        endpoints("2025-09")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="api_version"):
        HubSpotSettings(api_version="v3")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("version", "name", "names", "query", "path"),
    [
        (
            "2026-09",
            "batch_read",
            ("contacts",),
            {"archived": "true"},
            "/crm/objects/2026-09/contacts/batch/read?archived=true",
        ),
        ("2026-03", "search", ("deals",), None, "/crm/objects/2026-03/deals/search"),
        (
            "2026-09",
            "list_objects",
            ("deals",),
            {"archived": "true", "limit": 100, "properties": "hs_object_id"},
            "/crm/objects/2026-09/deals?archived=true&limit=100&properties=hs_object_id",
        ),
        (
            "2026-09",
            "owners",
            (),
            {"limit": 500, "archived": "false"},
            "/crm/owners/2026-09?limit=500&archived=false",
        ),
        (
            "2026-09",
            "dissociate",
            ("deals", "contacts"),
            None,
            "/crm/associations/2026-09/deals/contacts/batch/labels/archive",
        ),
        (
            "2026-03",
            "property",
            ("contacts", "cdc_d365id"),
            None,
            "/crm/properties/2026-03/contacts/cdc_d365id",
        ),
        (
            "2026-09",
            "list_subscriptions",
            ("123",),
            {"hapikey": "k-1"},
            "/app-webhooks/2026-09/123/subscriptions?hapikey=k-1",
        ),
    ],
)
def test_paths_fill_the_names_and_the_query(
    version: str, name: str, names: tuple[str, ...], query: dict[str, str | int] | None, path: str
) -> None:
    endpoint: Endpoint = getattr(endpoints(version), name)  # type: ignore[arg-type]
    assert endpoint.path(*names, query=query) == path


def test_labels_name_the_route_never_a_record() -> None:
    """Metrics and alerts key on these (cdc_api_requests_total{endpoint}): one per route and version."""
    api = endpoints("2026-09")
    assert api.search.label == "POST /crm/objects/2026-09/{type}/search"
    assert api.associations_batch_read.label == "POST /crm/associations/2026-09/{from}/{to}/batch/read"
    assert "42" not in api.read_object.label
    assert endpoints("legacy").batch_update.label == f"POST {SERVED['legacy'].objects}/{{type}}/batch/update"
    assert endpoints("2026-09") is api  # one table per version


def test_a_name_is_one_path_segment() -> None:
    """An id that is not one (from a webhook, a link) cannot reach another endpoint or add a query."""
    assert (
        endpoints("2026-09").read_object.path("contacts", "1/../../owners?x=")
        == "/crm/objects/2026-09/contacts/1%2F..%2F..%2Fowners%3Fx%3D"
    )


def test_the_wrong_number_of_names_says_which_endpoint() -> None:
    match = r"POST /crm/associations/2026-09/\{from\}/\{to\}/batch/create takes 2"
    with pytest.raises(ValueError, match=match):
        endpoints("2026-09").associate.path("contacts")


@pytest.mark.parametrize(
    ("one", "many"), [("contact", "contacts"), ("company", "companies"), ("deal", "deals")]
)
def test_object_names_both_ways(one: str, many: str) -> None:
    assert plural(one) == many
    assert singular(many) == one
    assert plural(many) == many  # paths take either
    assert singular("2-123") == plural("2-123") == "2-123"
