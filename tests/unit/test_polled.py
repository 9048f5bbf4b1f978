"""What `cdc poll` polls follows from the enabled sync steps; an override must name all of it."""

from __future__ import annotations

import pytest

from cdc.dataverse.poller import dataverse_tables
from cdc.hubspot.reconciler import hubspot_objects
from cdc.settings import PollSettings, Settings, SettingsError
from consumers.loader import default_config
from tests.sync_configs import CONTACT_STEPS, LEAD_STEPS, enabled_only


def settings(**poll: object) -> Settings:
    return Settings(poll=PollSettings.model_validate(poll))


def test_the_default_steps_poll_what_they_always_did() -> None:
    assert dataverse_tables(settings(), default_config()) == ("accounts", "contacts", "opportunities")
    assert hubspot_objects(settings(), default_config()) == ("companies", "contacts", "deals")


def test_lead_steps_poll_leads() -> None:
    leads = enabled_only(*LEAD_STEPS, "s1_companies_to_accounts", "s5_opportunities_to_deals")
    assert dataverse_tables(settings(), leads) == ("leads", "accounts", "opportunities")
    assert hubspot_objects(settings(), leads) == ("contacts", "companies", "deals")


def test_an_override_may_add_tables_and_an_empty_one_turns_the_part_off() -> None:
    contacts = enabled_only(*CONTACT_STEPS)
    assert dataverse_tables(settings(dataverse_tables=["contacts", "leads"]), contacts) == (
        "contacts",
        "leads",
    )
    assert dataverse_tables(settings(dataverse_tables=[]), contacts) == ()
    assert hubspot_objects(settings(hubspot_objects=[]), contacts) == ()


def test_an_override_that_leaves_out_a_synced_table_names_it_and_its_steps() -> None:
    with pytest.raises(SettingsError) as caught:
        dataverse_tables(settings(dataverse_tables=["contacts"]), enabled_only(*LEAD_STEPS))
    assert str(caught.value) == (
        "poll.dataverse_tables (CDC_POLL__DATAVERSE_TABLES) leaves out what the sync configuration syncs: "
        "'lead' (enabled steps l1_hubspot_contacts_to_leads, l2_leads_to_hubspot_contacts); add it, or drop "
        "the setting to poll what the enabled steps sync"
    )
    with pytest.raises(SettingsError, match=r"poll.hubspot_objects .* 'deal' \(enabled step s5_"):
        hubspot_objects(settings(hubspot_objects=["companies", "contacts"]), default_config())
