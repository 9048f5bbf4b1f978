"""`cdc provision` reports the privileges the Dataverse application user lacks, read from Dataverse
(``WhoAmI``, then ``RetrieveUserSetOfPrivilegesByNames`` on that user) against what the sync configuration
needs; the sandbox's app user loses privileges through its admin API, as a Dataverse admin edits a
security role. No Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from cdc.provisioning.run import provision
from cdc.sandbox.runner import Sandbox, run_sandbox
from consumers.loader import default_config
from streams.config import KafkaSettings
from tests.cli_thread import cdc
from tests.integration.test_provision import _settings_file


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with run_sandbox(seed=12) as sandbox:
        yield sandbox


def change_role(box: Sandbox, **changes: str | None) -> None:
    """As a Dataverse admin edits the app user's security role (``/_admin/privileges``)."""
    box.dataverse.privileges.change(changes, box.dataverse.store.tables.values())


async def test_a_dry_run_names_each_privilege_the_app_user_lacks_and_what_needs_it(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change_role(box, prvCreateAttribute=None, prvReadContact="Basic", prvAppendToAccount=None)
    config = str(_settings_file(box, tmp_path))
    assert await cdc("--config", config, "provision", "--dataverse", "--dry-run") == 3
    out, err = capsys.readouterr()
    assert (
        "missing privilege metadata.prvCreateAttribute: needed at Organization level: "
        "cdc provision --dataverse creates the columns" in err
    )
    assert (
        "missing privilege contact.prvReadContact: needed at Organization level, held at User level only: "
        "cdc poll follows its changes (organization-level read)" in err
    )
    assert (
        "missing privilege account.prvAppendToAccount: needed at Organization level: point "
        "contact.parentcustomerid at its records (step s2_contacts_to_contacts)" in err
    )
    assert "privileges held " in out
    assert out.strip().endswith("missing 3")
    assert "a Dataverse admin grants the missing privileges to the application user's role" in err
    # Nothing was changed: it was a dry run.
    assert "cdc_hubspotid" not in box.dataverse.store.tables["account"].columns


async def test_json_lists_present_and_missing_privileges(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change_role(box, prvWriteOpportunity=None)
    config = str(_settings_file(box, tmp_path))
    assert await cdc("--config", config, "provision", "--json") == 3
    report = orjson.loads(capsys.readouterr().out)
    missing = report["privileges"]["missing"]
    assert missing == [
        {
            "kind": "privilege",
            "object": "opportunity",
            "name": "prvWriteOpportunity",
            "detail": "needed at Organization level: update records and stamp the counterpart id (step "
            "s5_opportunities_to_deals)",
        }
    ]
    present = {i["name"] for i in report["privileges"]["present"]}
    assert {"prvReadOpportunity", "prvCreateContact", "prvReadEntityKey"} <= present
    assert "prvCreateAttribute" not in present  # without --dataverse nothing would be made


async def test_without_metadata_read_the_refusal_is_reported_and_the_missing_privilege_named(
    box: Sandbox,
) -> None:
    """The app user cannot read table definitions: change tracking and columns cannot be checked (one
    problem quoting Dataverse), and the privilege check names prvReadEntity as missing."""
    change_role(box, prvReadEntity=None)
    report = await provision(box.daemon_settings(KafkaSettings()), default_config(), create_columns=True)
    assert not report.ok
    (refused,) = report.dataverse.problems
    assert "is missing prvReadEntity privilege" in refused.detail
    assert [(i.object, i.name) for i in report.privileges.missing] == [("metadata", "prvReadEntity")]
    unreadable = {i.object for i in report.privileges.problems}
    assert unreadable == {"account", "contact", "opportunity"}


async def test_a_missing_customization_privilege_fails_the_item_it_would_make(box: Sandbox) -> None:
    """Not a dry run: the columns Dataverse refuses to create are problems quoting its 403."""
    change_role(box, prvCreateAttribute=None)
    report = await provision(
        box.daemon_settings(KafkaSettings()), default_config(), create_columns=True, key_wait_s=0
    )
    refused = [i for i in report.dataverse.problems if i.kind == "column"]
    assert refused
    assert all("is missing prvCreateAttribute privilege" in i.detail for i in refused)
    assert all(i.kind != "column" for i in report.dataverse.created)
