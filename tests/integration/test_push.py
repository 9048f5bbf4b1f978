"""`cdc push` and `cdc pull` on the whole pipeline: sandbox CRMs, a real broker, a running `cdc sync`.

What an admin checks: a value somebody changed by hand on the side a field is only synced *to* stays wrong
under the ordinary sync (the source did not change), and one push of the record puts it right, printing
what it wrote; a pull does the same the other way; a record that cannot be pushed gets a clear usage error.
The CLI runs in a worker thread (it owns its event loop) while the pipeline runs on this one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from cdc.exits import ExitCode
from tests.cli_thread import cdc
from tests.integration.sync_stack import Stack, eventually, quiet, running_stack, small_config
from tests.kafka_reading import read_topic
from tests.settings_files import settings_file

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def config_of(stack: Stack, tmp_path: Path) -> str:
    include = {"kafka", "hubspot", "dataverse", "poll", "sync"}
    return str(settings_file(stack.settings, tmp_path / "cdc.yaml", include=include))


async def linked_contact(stack: Stack) -> tuple[str, dict[str, Any]]:
    hs_id = await stack.hs_create(
        "contacts", {"email": "ada@example.com", "firstname": "Ada", "jobtitle": "Engineer"}
    )

    async def landed() -> dict[str, Any] | None:
        rows = [r for r in await stack.dv_all("contact") if r.get("emailaddress1") == "ada@example.com"]
        return rows[0] if rows and rows[0].get("jobtitle") == "Engineer" else None

    row = await eventually(landed, what="the HubSpot contact in Dataverse")
    await quiet(stack)
    return hs_id, row


async def dv_row(stack: Stack, row_id: str) -> dict[str, Any]:
    return next(r for r in await stack.dv_all("contact") if r["contactid"] == row_id)


async def hs_props(stack: Stack, hs_id: str) -> dict[str, Any]:
    found = next(r for r in await stack.hs_all("contacts") if str(r["id"]) == hs_id)
    return dict(found["properties"])


async def test_a_push_repairs_a_value_changed_by_hand_on_the_target_and_prints_the_write(
    kafka_settings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        hs_id, row = await linked_contact(stack)
        # jobtitle is synced HubSpot -> Dataverse only: a hand edit in Dataverse is not synced back, and
        # the ordinary sync leaves it (HubSpot's value did not change).
        await stack.dv_update("contact", row["contactid"], {"jobtitle": "Intern"})
        await quiet(stack)
        assert (await dv_row(stack, row["contactid"]))["jobtitle"] == "Intern"
        config = config_of(stack, tmp_path)
        capsys.readouterr()

        assert await cdc("--config", config, "push", "hubspot", "contacts", "--id", hs_id, "--json") == 0

        out = orjson.loads(capsys.readouterr().out)
        assert out["taken"] is True
        assert out["records"] == 1
        assert out["pulled_into"] is None
        [write] = out["writes"]
        assert write["target"]["object_id"] == row["contactid"]
        assert {"field": "jobtitle", "old": "Intern", "new": "Engineer", "rule": "push"}.items() <= next(
            f for f in write["fields"] if f["field"] == "jobtitle"
        ).items()
        assert (await dv_row(stack, row["contactid"]))["jobtitle"] == "Engineer"

        # Pushed again, nothing is left to write, and the plain output says so.
        assert await cdc("--config", config, "push", "hubspot", "contacts", "--email", "ADA@example.com") == 0
        printed = capsys.readouterr().out
        assert printed.startswith("pushed from hubspot contacts: 1 record(s) in ")
        assert "nothing to write: the other side already holds these values" in printed


async def test_a_pull_makes_hubspot_match_its_dataverse_counterpart(
    kafka_settings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        hs_id, row = await linked_contact(stack)
        await stack.dv_update("contact", row["contactid"], {"telephone1": "+44 20 7946 0000"})

        async def phoned() -> bool:
            return (await hs_props(stack, hs_id)).get("phone") == "+44 20 7946 0000"

        await eventually(phoned, what="the Dataverse phone in HubSpot")
        await quiet(stack)
        # phone is synced Dataverse -> HubSpot only: a hand edit in HubSpot stays under the ordinary sync.
        await stack.hs_update("contacts", hs_id, {"phone": "+1 555 0100"})
        await quiet(stack)
        assert (await hs_props(stack, hs_id))["phone"] == "+1 555 0100"
        capsys.readouterr()

        config = config_of(stack, tmp_path)
        assert await cdc("--config", config, "pull", "hubspot", "contacts", "--id", hs_id) == 0

        printed = capsys.readouterr().out
        assert printed.startswith("pulled into hubspot from dataverse contacts: 1 record(s) in "), printed
        assert "phone: '+1 555 0100' -> '+44 20 7946 0000' [push]" in printed
        assert (await hs_props(stack, hs_id))["phone"] == "+44 20 7946 0000"


BAD = [
    (("push", "hubspot", "contacts", "--id", "999999"), "hubspot contacts: no such record: 999999"),
    (("push", "hubspot", "contacts", "--id", "abc"), "not a HubSpot record id (digits): abc"),
    (("push", "dataverse", "contacts", "--id", "42"), "not a Dataverse id (a GUID): 42"),
    (("push", "hubspot", "companies", "--email", "a@b.c"), "hubspot companies cannot be found by email"),
    (("push", "hubspot", "contacts"), "say which records: --id, --email (each may repeat), or --all"),
    (("pull", "hubspot", "contacts", "--id", "CREATED"), "not linked to a record in the other system yet"),
    (("push", "hubspot", "widgets", "--all"), "hubspot has no object 'widgets'"),
    (("push", "hubspot", "deals", "--id", "1"), "no enabled sync step takes hubspot deals anywhere"),
]


async def test_a_record_that_cannot_be_pushed_is_a_usage_error_and_nothing_is_published(
    kafka_settings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        await stack.stop_sync()
        created = await stack.hs_create("contacts", {"email": "new@example.com"})
        config = config_of(stack, tmp_path)
        for args, expected in BAD:
            argv = [a.replace("CREATED", created) for a in args]
            capsys.readouterr()
            assert await cdc("--config", config, *argv) == ExitCode.USAGE, argv
            err = capsys.readouterr().err
            assert err.startswith("cdc: error: "), err
            assert expected in err, (argv, err)
        published = await read_topic(kafka_settings, "changes.hubspot")
        assert not [e for e in published if e.get("pushed")]
