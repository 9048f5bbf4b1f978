"""Sync configurations for tests that poll: the packaged default steps with only some enabled, so what
`cdc poll` reads (every table and object type an enabled step syncs, `cdc.sources.polled`) is what the test
means to poll."""

from __future__ import annotations

from consumers.config import SyncConfig
from consumers.loader import default_config

__all__ = ["CONTACT_STEPS", "DEAL_STEP", "LEAD_STEPS", "WON_RULE", "enabled_only"]

CONTACT_STEPS = ("s2_contacts_to_contacts", "s4_contacts_to_hubspot_contacts")
LEAD_STEPS = ("l1_hubspot_contacts_to_leads", "l2_leads_to_hubspot_contacts")


def enabled_only(*names: str) -> SyncConfig:
    """The default steps, only ``names`` enabled (validated again: lead and contact rules hold)."""
    raw = default_config().model_dump(mode="json")
    known = {step["name"] for step in raw["steps"]}
    assert set(names) <= known, sorted(set(names) - known)
    raw["steps"] = [{**step, "enabled": step["name"] in names} for step in raw["steps"]]
    return SyncConfig.model_validate(raw)


DEAL_STEP = {
    "name": "opportunities_to_deals",
    "source": {"system": "dataverse", "object": "opportunity"},
    "target": {"system": "hubspot", "object": "deal"},
    "match": {"source": "name", "target": "dealname", "kind": "name"},
    "associations": [
        {"hubspot": "contact:3", "dataverse": "parentcontactid:contact"},
        {"hubspot": "company:5", "dataverse": "parentaccountid:account"},
    ],
    "fields": [{"source": "name", "target": "dealname"}],
    "on_create": {"pipeline": "default", "dealstage": "appointmentscheduled"},
}
"""Opportunities -> deals with their contact and account associations; deals created in the first stage."""
WON_RULE = {
    "name": "won_makes_customers",
    "when": {"system": "dataverse", "object": "opportunity", "field": "statecode", "equals": 1},
    "on": {"system": "hubspot", "associations": ["contact:3", "company:5"]},
    "set": {"lifecyclestage": "customer"},
}
"""A won opportunity makes the deal's contact and company customers."""
