"""The reconciler refuses a configuration it cannot run before it touches Kafka or HubSpot."""

from __future__ import annotations

import pytest

from cdc.hubspot.reconciler import DEFAULT_PROPERTIES, check_options
from cdc.settings import PollSettings, Settings, SettingsError


def settings(**poll: object) -> Settings:
    return Settings(poll=PollSettings.model_validate(poll))


def test_defaults_fit_hubspots_search_limits() -> None:
    chosen = check_options(settings(), 200)
    assert chosen == {obj: DEFAULT_PROPERTIES[obj] for obj in ("companies", "contacts", "deals")}


def test_configured_properties_replace_the_defaults_of_that_type_only() -> None:
    chosen = check_options(settings(hubspot_properties={"deals": ["dealname"]}), 200)
    assert chosen["deals"] == ("dealname", "hs_merged_object_ids")  # always read: it reveals lost merges
    assert chosen["contacts"] == DEFAULT_PROPERTIES["contacts"]


@pytest.mark.parametrize(
    ("poll", "page_size", "message"),
    [
        ({"hubspot_objects": ["tickets"]}, 200, "unsupported"),
        ({"hubspot_properties": {"contact": ["email"]}}, 200, "unsupported"),
        ({"hubspot_properties": {"contacts": [f"custom_{i:04d}" for i in range(400)]}}, 200, "3000"),
        ({}, 0, "page size"),
        ({}, 201, "page size"),
    ],
)
def test_bad_options_are_settings_errors(poll: dict[str, object], page_size: int, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        check_options(settings(**poll), page_size)
