"""Sync configurations for tests that poll: the packaged default steps with only some enabled, so what
`cdc poll` reads (every table and object type an enabled step syncs, `cdc.sources.polled`) is what the test
means to poll."""

from __future__ import annotations

from consumers.config import SyncConfig
from consumers.loader import default_config

__all__ = ["CONTACT_STEPS", "LEAD_STEPS", "enabled_only"]

CONTACT_STEPS = ("s2_contacts_to_contacts", "s4_contacts_to_hubspot_contacts")
LEAD_STEPS = ("l1_hubspot_contacts_to_leads", "l2_leads_to_hubspot_contacts")


def enabled_only(*names: str) -> SyncConfig:
    """The default steps, only ``names`` enabled (validated again: lead and contact rules hold)."""
    raw = default_config().model_dump(mode="json")
    known = {step["name"] for step in raw["steps"]}
    assert set(names) <= known, sorted(set(names) - known)
    raw["steps"] = [{**step, "enabled": step["name"] in names} for step in raw["steps"]]
    return SyncConfig.model_validate(raw)
