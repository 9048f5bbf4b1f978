"""Every HubSpot path comes from `cdc.hubspot.paths`: the paths and labels the daemon sent before the module
existed are what it sends now, and a path cannot be built with the wrong number of names."""

from __future__ import annotations

import pytest

from cdc.hubspot import paths
from cdc.hubspot.paths import Endpoint, plural, singular


@pytest.mark.parametrize(
    ("endpoint", "names", "query", "path"),
    [
        (
            paths.BATCH_READ,
            ("contacts",),
            {"archived": "true"},
            "/crm/v3/objects/contacts/batch/read?archived=true",
        ),
        (paths.BATCH_UPSERT, ("companies",), None, "/crm/v3/objects/companies/batch/upsert"),
        (paths.SEARCH, ("deals",), None, "/crm/v3/objects/deals/search"),
        (
            paths.READ_OBJECT,
            ("contacts", "42"),
            {"properties": "hs_object_id"},
            "/crm/v3/objects/contacts/42?properties=hs_object_id",
        ),
        (
            paths.LIST_OBJECTS,
            ("deals",),
            {"archived": "true", "limit": 100, "properties": "hs_object_id"},
            "/crm/v3/objects/deals?archived=true&limit=100&properties=hs_object_id",
        ),
        (paths.OWNERS, (), {"limit": 500, "archived": "false"}, "/crm/v3/owners?limit=500&archived=false"),
        (
            paths.ASSOCIATE,
            ("contacts", "companies"),
            None,
            "/crm/v4/associations/contacts/companies/batch/create",
        ),
        (
            paths.DISSOCIATE,
            ("deals", "contacts"),
            None,
            "/crm/v4/associations/deals/contacts/batch/labels/archive",
        ),
        (paths.PROPERTY, ("contacts", "cdc_d365id"), None, "/crm/v3/properties/contacts/cdc_d365id"),
        (paths.CREATE_PROPERTY_GROUP, ("deals",), None, "/crm/v3/properties/deals/groups"),
        (
            paths.LIST_SUBSCRIPTIONS,
            ("123",),
            {"hapikey": "k-1"},
            "/webhooks/v3/123/subscriptions?hapikey=k-1",
        ),
    ],
)
def test_paths_are_the_ones_the_api_documents(
    endpoint: Endpoint, names: tuple[str, ...], query: dict[str, str | int] | None, path: str
) -> None:
    assert endpoint.path(*names, query=query) == path


def test_labels_name_the_route_never_a_record() -> None:
    """Metrics and alerts key on these values (cdc_api_requests_total{endpoint})."""
    assert paths.SEARCH.label == "POST /crm/v3/objects/{type}/search"
    assert paths.BATCH_UPDATE.label == "POST /crm/v3/objects/{type}/batch/update"
    assert paths.ASSOCIATIONS_BATCH_READ.label == "POST /crm/v4/associations/{from}/{to}/batch/read"
    assert paths.OWNERS.label == "GET /crm/v3/owners"
    assert "42" not in paths.READ_OBJECT.label


def test_a_name_is_one_path_segment() -> None:
    """An id that is not one (from a webhook, a link) cannot reach another endpoint or add a query."""
    assert (
        paths.READ_OBJECT.path("contacts", "1/../../owners?x=")
        == "/crm/v3/objects/contacts/1%2F..%2F..%2Fowners%3Fx%3D"
    )


def test_the_wrong_number_of_names_says_which_endpoint() -> None:
    with pytest.raises(ValueError, match=r"POST /crm/v4/associations/\{from\}/\{to\}/batch/create takes 2"):
        paths.ASSOCIATE.path("contacts")


@pytest.mark.parametrize(
    ("one", "many"), [("contact", "contacts"), ("company", "companies"), ("deal", "deals")]
)
def test_object_names_both_ways(one: str, many: str) -> None:
    assert plural(one) == many
    assert singular(many) == one
    assert plural(many) == many  # paths take either
    assert singular("2-123") == plural("2-123") == "2-123"
