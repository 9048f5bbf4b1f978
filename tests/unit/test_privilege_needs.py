"""The least-privilege role the daemon needs, derived from the enabled steps (pure): what the README's table
of the application user's security role says, for the defaults and for the options that change it."""

from __future__ import annotations

from cdc.provisioning.privileges import CUSTOMIZATION, METADATA, privilege_needs
from consumers.config import SyncConfig
from consumers.loader import default_config
from tests.sync_configs import LEAD_STEPS, enabled_only

DEFAULT_POLLED = ("account", "contact", "opportunity")


def table_needs(config: SyncConfig, polled: tuple[str, ...]) -> set[tuple[str, str]]:
    return {(n.table, n.verb) for n in privilege_needs(config, polled) if n.table is not None}


def test_the_default_steps_need_this_role() -> None:
    assert table_needs(default_config(), DEFAULT_POLLED) == {
        *(("account", v) for v in ("Read", "Write", "Create", "AppendTo")),
        *(("contact", v) for v in ("Read", "Write", "Create", "Append")),
        ("opportunity", "Read"),
        ("opportunity", "Write"),  # the counterpart id is stamped on the source too
    }
    names = [n.privilege() for n in privilege_needs(default_config(), DEFAULT_POLLED) if n.table is None]
    assert names == ["prvReadEntity", "prvReadAttribute", "prvReadEntityKey"]


def test_each_need_says_which_steps_need_it_and_why() -> None:
    needs = {(n.table, n.verb): n.why for n in privilege_needs(default_config(), DEFAULT_POLLED)}
    assert needs["contact", "Append"] == "set contact.parentcustomerid (step s2_contacts_to_contacts)"
    assert needs["account", "Read"] == (
        "cdc poll follows its changes (organization-level read); read and match records "
        "(steps s1_companies_to_accounts, s3_accounts_to_companies)"
    )


def test_the_lead_steps_need_leads_and_no_lookups() -> None:
    assert table_needs(enabled_only(*LEAD_STEPS), ("lead",)) == {
        ("lead", "Read"),
        ("lead", "Write"),
        ("lead", "Create"),
    }


def test_propagated_deletes_need_delete_and_a_step_that_never_creates_needs_no_create() -> None:
    raw = enabled_only("s1_companies_to_accounts").model_dump(mode="json")
    for step in raw["steps"]:
        if step["name"] == "s1_companies_to_accounts":
            step.update(deletes="propagate", create=False)
    needs = table_needs(SyncConfig.model_validate(raw), ("account",))
    assert needs == {("account", "Read"), ("account", "Write"), ("account", "Delete")}


def test_a_polled_table_no_step_syncs_needs_read_only_and_nothing_enabled_needs_metadata_only() -> None:
    raw = default_config().model_dump(mode="json")
    raw["steps"] = [{**step, "enabled": False} for step in raw["steps"]]
    nothing = SyncConfig.model_validate(raw)
    assert table_needs(nothing, ("cdc_formsubmission",)) == {("cdc_formsubmission", "Read")}
    assert privilege_needs(nothing, ()) == METADATA


def test_provisioning_needs_one_customization_privilege_per_kind_it_makes() -> None:
    assert {kind: need.privilege() for kind, need in CUSTOMIZATION.items()} == {
        "table": "prvWriteEntity",
        "column": "prvCreateAttribute",
        "key": "prvCreateEntityKey",
    }
