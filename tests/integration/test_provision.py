"""`cdc provision` against the sandbox over HTTP (no Kafka): what the default configuration needs, created
once, usable by writes, idempotent; the CLI's exit codes and ``--json``; mismatches reported, not fixed."""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from prometheus_client import CollectorRegistry

from cdc.dataverse import DataverseClient, TokenProvider
from cdc.hubspot.gateway import DATAVERSE_ID_PROPERTY
from cdc.hubspot.paths import endpoints, plural
from cdc.metrics import Metrics
from cdc.provisioning.needs import HUBSPOT_ID_COLUMN, needs_of
from cdc.provisioning.report import ProvisionReport
from cdc.provisioning.run import ProvisionError, provision, provision_sandbox
from cdc.provisioning.specs import ColumnSpec, PropertySpec
from cdc.sandbox.runner import Sandbox, run_sandbox
from cdc.settings import Settings
from consumers.config import SyncConfig
from consumers.loader import default_config
from streams.config import KafkaSettings
from tests.cli_thread import cdc
from tests.settings_files import settings_file
from tests.sync_configs import LEAD_STEPS, enabled_only

FLAGS = {"sync_to_d365", "sync_to_d365_lead", "cdc_synctohubspot", HUBSPOT_ID_COLUMN, DATAVERSE_ID_PROPERTY}
ENTITY_SETS = {"contact": "contacts", "account": "accounts", "opportunity": "opportunities", "lead": "leads"}
NEW_ROWS: dict[str, dict[str, str]] = {
    "contact": {"lastname": "Row"},
    "account": {"name": "Row"},
    "opportunity": {"name": "Row"},
    "lead": {"lastname": "Row", "subject": "Row"},
}
DEFAULT_PROPERTIES = (
    22  # section 13 minus the lead steps' 11: contacts 4, companies 4, deals 9; 2 flags, 3 ids
)
DEFAULT_COLUMNS = 80  # section 13: contact 59, account 15; flag and id on contact, account, opportunity
DEFAULT_KEYS = 3  # the alternate key on cdc_hubspotid of contact, account, opportunity
DEFAULT_TRACKED = 3  # change tracking on account, contact, opportunity: the tables the default steps sync
DEFAULT_JOURNAL = 7  # OBJECT and ASSOCIATION of contact, company, deal; contacts' GDPR (OAuth: journal on)


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    """HubSpot with a project app (the default): its subscriptions live in its project files."""
    async with run_sandbox(seed=11) as sandbox:
        yield sandbox


@pytest.fixture
async def legacy_box() -> AsyncIterator[Sandbox]:
    """HubSpot with a legacy public app, whose developer API key manages its subscriptions."""
    async with run_sandbox(seed=11, hubspot_app_kind="legacy") as sandbox:
        yield sandbox


def settings_of(box: Sandbox) -> Settings:
    return box.daemon_settings(KafkaSettings())


def every_step(config: SyncConfig) -> SyncConfig:
    """Every step and every field row switched on (lead and contact steps together)."""
    steps = tuple(
        s.model_copy(
            update={
                "enabled": True,
                "fields": tuple(f.model_copy(update={"enabled": True}) for f in s.fields),
            }
        )
        for s in config.steps
    )
    return config.model_copy(update={"steps": steps, "allow_leads_with_contacts": True})


def customs(config: SyncConfig) -> tuple[Counter[str], Counter[str]]:
    """Custom properties per HubSpot object and columns per table, without the flags and ids."""
    needs = needs_of(config)
    return (
        Counter(p.object for p in needs.properties if p.name not in FLAGS),
        Counter(c.table for c in needs.columns if c.name not in FLAGS),
    )


# --- what the configuration needs (pure) ------------------------------------------------------------


def test_the_defaults_need_section_13_without_the_lead_steps() -> None:
    properties, columns = customs(default_config())
    assert properties == {"contact": 4, "company": 4, "deal": 9}
    assert columns == {"contact": 59, "account": 15}
    needs = needs_of(default_config())
    flags = {(p.object, p.name, p.type, p.field_type, p.unique) for p in needs.properties if p.name in FLAGS}
    assert flags == {
        ("contact", "sync_to_d365", "bool", "booleancheckbox", False),
        ("company", "sync_to_d365", "bool", "booleancheckbox", False),
        *((o, DATAVERSE_ID_PROPERTY, "string", "text", True) for o in ("contact", "company", "deal")),
    }
    dv_flags = {
        (c.table, c.name, c.kind, c.max_length, c.alternate_key) for c in needs.columns if c.name in FLAGS
    }
    assert dv_flags == {
        (table, name, kind, length, name == HUBSPOT_ID_COLUMN)
        for table in ("contact", "account", "opportunity")
        for name, kind, length in (("cdc_synctohubspot", "Boolean", None), (HUBSPOT_ID_COLUMN, "String", 20))
    }
    assert len(needs.properties) == DEFAULT_PROPERTIES
    assert len(needs.columns) == DEFAULT_COLUMNS
    assert needs.problems == ()


def test_every_step_needs_exactly_section_13() -> None:
    properties, columns = customs(every_step(default_config()))
    assert properties == {"contact": 15, "company": 4, "deal": 9}
    # lead 59, contact 59, account 15 plus the 5 optional rows. Section 13's 60th lead column,
    # cdc_lastcrmsyncdate, is not needed: the daemon writes "Last CRM Sync Date" itself (section 14 item 5).
    assert columns == {"lead": 59, "contact": 59, "account": 20}


def test_types_and_options_follow_the_field_maps() -> None:
    needs = needs_of(every_step(default_config()))
    prop = {(p.object, p.name): p for p in needs.properties}
    col = {(c.table, c.name): c for c in needs.columns}
    assert (prop["deal", "d365_estimated_close_date"].type, prop["deal", "d365_estimated_revenue"].type) == (
        "date",
        "number",
    )
    status = prop["deal", "d365_status_reason"]
    assert (status.type, status.field_type) == ("enumeration", "select")
    assert status.options[0] == ("1", "In Progress")
    assert prop["contact", "d365_street_address_2"].label == "D365 Street Address 2"  # the writer's label
    lifecycle = col["contact", "cdc_lifecyclestage"]
    assert lifecycle.kind == "Picklist"
    assert lifecycle.options[0] == (100000000, "Subscriber")
    assert col["lead", "cdc_marketingcontactstatus"].kind == "Boolean"
    assert col["lead", "cdc_hubspotscore"].kind == "Integer"
    assert ("lead", "cdc_lastcrmsyncdate") not in col
    assert prop["contact", "d365_last_crm_sync_date"].type == "datetime"  # what the daemon writes
    assert col["account", "cdc_latestsourcedrilldown1"].label == "Latest Source Data 1"  # step 1's label
    body = col["lead", "cdc_latestsource"].body()
    assert body["@odata.type"] == "Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
    assert len(body["OptionSet"]["Options"]) == 9


def test_webhook_subscriptions_cover_each_synced_object_and_every_property_read() -> None:
    needs = needs_of(default_config())
    keys = {s.key for s in needs.subscriptions}
    for obj in ("contact", "company", "deal"):
        for action in ("creation", "deletion", "merge", "restore", "associationChange"):
            assert f"{obj}.{action}" in keys
    assert "contact.privacyDeletion" in keys
    assert {"contact.propertyChange:email", "contact.propertyChange:sync_to_d365"} <= keys
    assert "contact.propertyChange:d365_street_address_2" in keys
    assert "company.propertyChange:name" in keys
    assert "contact.propertyChange:num_unique_conversion_events" not in keys  # HubSpot refuses it
    assert not any(k.startswith("deal.propertyChange") for k in keys)  # deals are only written
    assert len(keys) == len(needs.subscriptions)


# --- against the sandbox ----------------------------------------------------------------------------


def _hubspot_value(spec: PropertySpec) -> str:
    return {
        "string": "text",
        "number": "42",
        "date": "1714521600000",
        "datetime": "2024-05-01T10:00:00Z",
        "bool": "true",
    }.get(spec.type) or spec.options[0][0]


def _dataverse_value(spec: ColumnSpec) -> Any:
    if spec.kind in {"String", "Memo"}:
        return "12345"
    if spec.kind == "DateTime":
        return "2024-05-01" if spec.date_only else "2024-05-01T10:00:00Z"
    return {"Integer": 42, "Decimal": 1.5, "Boolean": True}.get(spec.kind) or spec.options[0][0]


async def _write_every_hubspot_property(box: Sandbox, specs: tuple[PropertySpec, ...]) -> None:
    hub = box.info.hubspot
    headers = {"Authorization": f"Bearer {hub.token}"}
    async with httpx.AsyncClient(base_url=hub.base_url, headers=headers) as api:
        for obj in sorted({s.object for s in specs}):
            created = await api.post(endpoints().list_objects.path(plural(obj)), json={"properties": {}})
            assert created.status_code == 201, created.text
            values = {s.name: _hubspot_value(s) for s in specs if s.object == obj}
            body = {"inputs": [{"id": created.json()["id"], "properties": values}]}
            answer = await api.post(endpoints().batch_update.path(plural(obj)), json=body)
            assert answer.status_code == 200, answer.text
            written = answer.json()["results"][0]["properties"]
            assert all(written.get(name) for name in values), written


async def _write_every_dataverse_column(settings: Settings, specs: tuple[ColumnSpec, ...]) -> None:
    tokens = TokenProvider(settings.dataverse)
    client = DataverseClient(settings.dataverse, tokens, Metrics(CollectorRegistry()))
    await client.start()
    json = {"Content-Type": "application/json"}
    try:
        for table in sorted({s.table for s in specs}):
            url = f"{client.api_root}/{ENTITY_SETS[table]}"
            body = orjson.dumps(NEW_ROWS[table])
            created = await client.send("POST", url, endpoint="t", body=body, headers=json)
            row = created.headers["OData-EntityId"]
            values = {s.name: _dataverse_value(s) for s in specs if s.table == table}
            patched = await client.send("PATCH", row, endpoint="t", body=orjson.dumps(values), headers=json)
            assert patched.status == 204
            read = await client.get_json(f"{row}?$select={','.join(values)}", endpoint="t")
            assert all(read[name] is not None for name in values), read
    finally:
        await client.close()
        tokens.close()


async def test_a_fresh_sandbox_gets_everything_writes_succeed_and_a_second_run_creates_nothing(
    legacy_box: Sandbox,
) -> None:
    """A legacy public app: its subscriptions are made through the webhooks API with the developer key."""
    box = legacy_box
    settings = settings_of(box)
    needs = needs_of(default_config())
    lines: list[str] = []
    report = await provision_sandbox(settings, progress=lines.append)
    # The keys are usable only once Dataverse has built their indexes: provisioning waits for that.
    waited = [line for line in lines if "alternate key index(es)" in line]
    assert waited[0] == f"waiting up to 60 s for Dataverse to build {DEFAULT_KEYS} alternate key index(es)"
    assert waited[1].startswith(f"{DEFAULT_KEYS} of {DEFAULT_KEYS} alternate key index(es) Active after ")
    assert len(waited) == 2  # the start and the end of the wait
    lines = [line for line in lines if line not in waited]

    hubspot = Counter(i.kind for i in report.hubspot.created)
    assert hubspot == {"property": DEFAULT_PROPERTIES, "group": 3}
    assert len(report.webhooks.created) == len(needs.subscriptions)
    assert len(report.dataverse.created) == DEFAULT_COLUMNS + DEFAULT_KEYS + DEFAULT_TRACKED
    assert report.ok
    assert len(lines) == (
        DEFAULT_PROPERTIES + 3 + len(needs.subscriptions) + DEFAULT_COLUMNS + DEFAULT_KEYS + DEFAULT_TRACKED
    )
    assert "created column contact.cdc_synctohubspot (Boolean)" in lines
    assert "enabled change tracking on table opportunity" in lines
    tables = box.dataverse.store.tables
    assert [t for t in sorted(tables) if tables[t].change_tracking] == ["account", "contact", "opportunity"]
    assert "created key contact.cdc_hubspotid_key (alternate key on cdc_hubspotid)" in lines
    assert [(k.columns, k.status) for k in box.dataverse.store.tables["contact"].keys] == [
        ((HUBSPOT_ID_COLUMN,), "Active")
    ]
    for obj in ("contacts", "companies", "deals"):
        assert box.hubspot.store.properties[obj][DATAVERSE_ID_PROPERTY].has_unique_value
    # The app user holds what the daemon needs: the sandbox's is a System Administrator until told otherwise.
    held = len(report.privileges.present)
    assert (
        report.summary() == f"created {len(lines)}, present 0, problems 0; privileges held {held}, missing 0"
    )

    subscriptions = box.hubspot.subscriptions.items.values()
    assert all(s.active for s in subscriptions)
    assert {s.property_name for s in subscriptions if s.event_type == "company.propertyChange"} >= {
        "name",
        "sync_to_d365",
    }
    await _write_every_hubspot_property(box, needs.properties)
    await _write_every_dataverse_column(settings, needs.columns)

    box.hubspot.limiter.reset()
    again = await provision(settings, default_config(), create_columns=True)
    assert again.count("created") == 0
    # the groups are not items of their own once there
    assert again.count("present", privileges=False) == len(lines) - 3
    assert again.ok
    assert len(box.hubspot.subscriptions.items) == len(needs.subscriptions)


def _settings_file(box: Sandbox, tmp_path: Path) -> Path:
    return settings_file(settings_of(box), tmp_path / "cdc.yaml", include={"hubspot", "dataverse"})


async def test_cli_without_dataverse_lists_the_missing_columns_and_exits_3(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_settings_file(box, tmp_path))
    assert await cdc("--config", config, "provision") == 3
    out, err = capsys.readouterr()
    assert "missing column contact.cdc_synctohubspot (Boolean)" in err
    assert "created property deal.d365_status_reason (enumeration)" in err
    assert "missing table contact.ChangeTrackingEnabled: change tracking is off" in err
    assert "--dataverse creates the columns and turns change tracking on" in err
    assert out.startswith(f"created {DEFAULT_PROPERTIES + 3 + DEFAULT_JOURNAL},")
    assert f"to subscribe in the app {len(needs_of(default_config()).subscriptions)}" in out
    assert f"missing {DEFAULT_COLUMNS + DEFAULT_KEYS + DEFAULT_TRACKED}" in out

    assert await cdc("--config", config, "provision", "--dataverse") == 0
    assert f"created {DEFAULT_COLUMNS + DEFAULT_KEYS + DEFAULT_TRACKED}," in capsys.readouterr().out
    assert await cdc("--config", config, "provision") == 0
    assert capsys.readouterr().out.startswith("created 0,")


async def test_cli_json_dry_run_lists_everything_and_changes_nothing(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_settings_file(box, tmp_path))
    assert await cdc("--config", config, "provision", "--dataverse", "--dry-run", "--json") == 3
    out, err = capsys.readouterr()
    report = orjson.loads(out)
    assert set(report) == {"dry_run", "hubspot", "webhooks", "journal", "dataverse", "privileges"}
    assert report["dry_run"] is True
    assert len(report["journal"]["missing"]) == DEFAULT_JOURNAL
    for name in ("hubspot", "webhooks", "journal", "dataverse", "privileges"):
        assert set(report[name]) == {"created", "present", "missing", "pending", "problems", "elsewhere"}
        assert report[name]["created"] == []
        assert report[name]["problems"] == []
    assert len(report["hubspot"]["missing"]) == DEFAULT_PROPERTIES + 3
    assert len(report["webhooks"]["elsewhere"]) == len(needs_of(default_config()).subscriptions)
    assert len(report["dataverse"]["missing"]) == DEFAULT_COLUMNS + DEFAULT_KEYS + DEFAULT_TRACKED
    assert {"kind": "column", "object": "account", "name": "cdc_hubspotid", "type": "String"} in report[
        "dataverse"
    ]["missing"]
    assert "would create property contact.sync_to_d365 (bool)" in err
    assert "d365_sync" not in box.hubspot.store.property_groups["contacts"]
    assert "cdc_hubspotid" not in box.dataverse.store.tables["account"].columns
    assert "would enable table account.ChangeTrackingEnabled" in err
    assert not box.dataverse.store.tables["account"].change_tracking
    assert box.hubspot.subscriptions.items == {}
    # What the run would make needs customization privileges: checked, and held, with the daemon's own.
    held = {item["name"] for item in report["privileges"]["present"]}
    assert {"prvWriteEntity", "prvCreateAttribute", "prvCreateEntityKey", "prvReadContact"} <= held
    assert report["privileges"]["missing"] == []


async def test_a_token_that_cannot_manage_subscriptions_lists_them_and_exits_0(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15: a project app's token (or a service key) cannot manage webhook subscriptions; HubSpot
    refuses it (401), and `cdc provision` ended there with exit 78, "the token was refused". Now it makes
    the properties and columns, lists what the app must subscribe to, and exits 0."""
    config = str(_settings_file(box, tmp_path))
    subscriptions = needs_of(default_config()).subscriptions
    assert await cdc("--config", config, "provision", "--dataverse") == 0
    out, err = capsys.readouterr()
    assert f"it must subscribe to these {len(subscriptions)} events" in err
    assert "`cdc provision --hubspot-project DIR` writes them into its project files" in err
    assert "subscribe to contact.propertyChange:email" in err.splitlines()
    assert "subscribe to contact.privacyDeletion" in err.splitlines()
    assert "token was refused" not in err
    assert f"to subscribe in the app {len(subscriptions)}, problems 0" in out
    assert box.hubspot.subscriptions.items == {}
    assert "sync_to_d365" in box.hubspot.store.properties["contacts"]  # the rest was provisioned


async def test_a_refused_developer_key_names_that_setting_and_is_not_shown(
    legacy_box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _settings_file(legacy_box, tmp_path)
    data = yaml.safe_load(config.read_text())
    data["hubspot"]["developer_api_key"] = "wrong-developer-key-0123456789abcdef"
    config.write_text(yaml.safe_dump(data))
    assert await cdc("--config", str(config), "provision") == 78
    err = capsys.readouterr().err
    assert "HubSpot refused the developer API key for app" in err
    assert "hubspot.developer_api_key (CDC_HUBSPOT__DEVELOPER_API_KEY)" in err
    assert "wrong-developer-key" not in err


async def test_the_sandbox_gets_a_project_apps_subscriptions_as_its_webhooks_file_deploys_them(
    box: Sandbox,
) -> None:
    """`provision_sandbox` (demo, end-to-end tests) deploys what `cdc provision --hubspot-project` writes
    into the webhooks file: generic subscriptions, active, one per needed event."""
    needs = needs_of(default_config())
    report = await provision_sandbox(settings_of(box))
    assert len(report.webhooks.created) == len(needs.subscriptions)
    assert report.webhooks.elsewhere == []
    subscriptions = list(box.hubspot.subscriptions.items.values())
    assert len(subscriptions) == len(needs.subscriptions)
    assert all(s.active for s in subscriptions)
    assert {s.event_type for s in subscriptions} == {
        "object.creation", "object.deletion", "object.merge", "object.restore", "object.associationChange",
        "object.propertyChange", "contact.privacyDeletion",
    }  # fmt: skip
    assert {s.object_type_id for s in subscriptions if s.event_type == "object.creation"} == {
        "0-1",
        "0-2",
        "0-3",
    }


async def test_a_type_mismatch_or_a_paused_subscription_is_reported_and_left_alone(
    legacy_box: Sandbox,
) -> None:
    box = legacy_box
    hub, settings = box.info.hubspot, settings_of(box)
    async with httpx.AsyncClient(
        base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.token}"}
    ) as api:
        wrong = {"name": "d365_created_on", "label": "Created", "type": "string", "fieldType": "text"}
        create = endpoints().create_property.path("deals")
        answer = await api.post(create, json={**wrong, "groupName": "dealinformation"})
        assert answer.status_code == 201, answer.text
        paused = await api.post(
            endpoints().create_subscription.path(str(hub.app_id)),
            json={"eventType": "deal.creation"},
            params={"hapikey": str(hub.developer_api_key)},
        )
        assert paused.status_code == 201, paused.text

    report = await provision(settings, default_config(), create_columns=True)
    problems = {(i.kind, i.object, i.name): i.detail for i in report.hubspot.problems}
    assert problems == {
        ("property", "deal", "d365_created_on"): "is type string, the sync needs datetime "
        "(s5_opportunities_to_deals)"
    }
    assert [(i.object, i.name) for i in report.webhooks.problems] == [("deal", "creation")]
    assert "paused" in report.webhooks.problems[0].detail
    assert not report.ok
    assert report.summary().endswith("problems 2; privileges held 13, missing 0")
    assert box.hubspot.store.properties["deals"]["d365_created_on"].type == "string"  # never modified
    assert len(report.hubspot.created) == DEFAULT_PROPERTIES - 1 + 3
    with pytest.raises(ProvisionError, match="d365_created_on"):
        await provision_sandbox(settings)


async def test_a_dataverse_column_of_another_type_is_a_problem(box: Sandbox) -> None:
    settings = settings_of(box)
    needs = needs_of(default_config())
    integer = ColumnSpec("contact", HUBSPOT_ID_COLUMN, "HubSpot ID", "Integer", steps=("test",))
    tokens = TokenProvider(settings.dataverse)
    client = DataverseClient(settings.dataverse, tokens, Metrics(CollectorRegistry()))
    await client.start()
    try:
        url = f"{client.api_root}/EntityDefinitions(LogicalName='contact')/Attributes"
        headers = {"Content-Type": "application/json"}
        await client.send("POST", url, endpoint="t", body=orjson.dumps(integer.body()), headers=headers)
    finally:
        await client.close()
        tokens.close()
    report: ProvisionReport = await provision(settings, default_config(), create_columns=True)
    assert [(i.object, i.name, i.detail.split(",")[0]) for i in report.dataverse.problems] == [
        ("contact", HUBSPOT_ID_COLUMN, "is type Integer")
    ]
    # Neither the column nor its key; change tracking is turned on all the same.
    assert len(report.dataverse.created) == len(needs.columns) - 1 + DEFAULT_KEYS - 1 + DEFAULT_TRACKED


async def test_change_tracking_follows_the_enabled_steps_and_a_table_that_cannot_have_it_is_a_problem(
    box: Sandbox,
) -> None:
    """Lead mode turns it on for leads (not contacts); a table whose CanChangeTrackingBeEnabled is false is
    reported by name, and the rest is still provisioned."""
    settings = settings_of(box)
    context = ssl.create_default_context(cafile=box.info.dataverse.ca_bundle)
    async with httpx.AsyncClient(base_url=f"{box.info.dataverse.base_url}/_admin", verify=context) as admin:
        locked = await admin.put("/tables/account/change-tracking", json={"can_be_enabled": False})
        assert locked.status_code == 200, locked.text
    leads = enabled_only(*LEAD_STEPS, "s1_companies_to_accounts", "s3_accounts_to_companies")
    report = await provision(settings, leads, create_columns=True)
    tracked = [(i.object, i.name) for i in report.dataverse.created if i.kind == "table"]
    assert tracked == [("lead", "ChangeTrackingEnabled")]
    problems = [(i.kind, i.object, i.detail) for i in report.dataverse.problems]
    assert problems == [
        (
            "table",
            "account",
            "change tracking cannot be enabled on this table (CanChangeTrackingBeEnabled is false): "
            "`cdc poll` cannot follow it; disable the sync steps that sync it",
        )
    ]
    assert not report.ok
    tables = box.dataverse.store.tables
    assert [t for t in sorted(tables) if tables[t].change_tracking] == ["lead"]
    assert HUBSPOT_ID_COLUMN in tables["account"].columns  # the columns were still made


def _admin(box: Sandbox) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=box.info.dataverse.ca_bundle)
    return httpx.AsyncClient(base_url=f"{box.info.dataverse.base_url}/_admin", verify=context)


def _keys(report: ProvisionReport, bucket: str) -> dict[str, str]:
    return {i.object: i.detail for i in getattr(report.dataverse, bucket) if i.kind == "key"}


async def test_a_key_dataverse_is_still_building_is_pending_not_missing_and_not_made_again(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dataverse builds a key's index in the background (Learn, define-alternate-keys-entity, "Monitor index
    creation for alternate keys"): a run that does not wait reports the keys pending, a later run does not
    create them again, and `cdc provision` exits 0 (nothing to do but wait)."""
    settings = settings_of(box)
    async with _admin(box) as admin:
        assert (await admin.put("/keys", json={"index_delay_s": 3600})).status_code == 200
    report = await provision(settings, default_config(), create_columns=True, key_wait_s=0)
    pending = _keys(report, "pending")
    assert set(pending) == {"contact", "account", "opportunity"}
    assert pending["contact"].startswith("index Pending: Dataverse is still building it")
    assert _keys(report, "missing") == _keys(report, "problems") == _keys(report, "created") == {}
    assert report.ok
    assert f"pending {DEFAULT_KEYS}," in report.summary()
    assert "problems 0;" in report.summary()

    config = str(_settings_file(box, tmp_path))
    assert await cdc("--config", config, "provision", "--dataverse", "--key-wait", "0") == 0
    out, err = capsys.readouterr()
    assert f"pending {DEFAULT_KEYS}" in out
    assert "pending key contact.cdc_hubspotid_key (alternate key on cdc_hubspotid): index Pending" in err
    assert "created key" not in err
    assert len(box.dataverse.store.tables["contact"].keys) == 1

    async with _admin(box) as admin:
        assert (await admin.post("/clock/advance", json={"seconds": 1800})).status_code == 200
    half_way = await provision(settings, default_config(), key_wait_s=0)
    assert set(_keys(half_way, "pending")) == {"contact", "account", "opportunity"}
    assert _keys(half_way, "pending")["account"].startswith("index InProgress")
    with pytest.raises(
        ProvisionError, match=r"not ready: key account\.cdc_hubspotid_key .*: index InProgress"
    ):
        await provision_sandbox(settings, key_wait_s=0.5)  # the demo and tests need usable keys

    async with _admin(box) as admin:
        assert (await admin.post("/clock/advance", json={"seconds": 1800})).status_code == 200
    done = await provision(settings, default_config())
    assert set(_keys(done, "present")) == {"contact", "account", "opportunity"}
    assert done.count("pending") == 0


async def test_a_key_whose_index_failed_on_duplicates_is_a_problem_saying_what_to_do(box: Sandbox) -> None:
    """Rows holding the same value make the index job fail (the key is not refused when it is made); the
    report names the table and the way out, and once the duplicates are gone `--dataverse` reactivates the
    key (ReactivateEntityKey, Learn webapi/reference/reactivateentitykey)."""
    settings = settings_of(box)
    async with _admin(box) as admin:
        assert (await admin.put("/keys", json={"index_delay_s": 3600})).status_code == 200
        await provision(settings, default_config(), create_columns=True, key_wait_s=0)
        twins = {
            "rows": [{"name": "Twin", HUBSPOT_ID_COLUMN: "42"}, {"name": "Twin 2", HUBSPOT_ID_COLUMN: "42"}]
        }
        made = await admin.post("/tables/account/rows", json=twins)
        assert made.status_code == 201, made.text  # no index yet: nothing enforces the key
        assert (await admin.put("/keys", json={"index_delay_s": 0.5})).status_code == 200
        assert (await admin.post("/clock/advance", json={"seconds": 3600})).status_code == 200

        check = await provision(settings, default_config(), key_wait_s=0)
        problems = _keys(check, "problems")
        assert list(problems) == ["account"]
        assert "rows of account hold duplicate values of cdc_hubspotid" in problems["account"]
        assert "remove or merge the duplicates" in problems["account"]
        assert "ReactivateEntityKey" in problems["account"]
        assert not check.ok

        lines: list[str] = []
        again = await provision(settings, default_config(), create_columns=True, progress=lines.append)
        reactivated = "reactivated key account.cdc_hubspotid_key (alternate key on cdc_hubspotid)"
        assert f"{reactivated}: its index build had failed" in lines
        assert "failed again after it was reactivated" in _keys(again, "problems")["account"]

        second = made.json()["value"][1]["accountid"]
        assert (await admin.delete(f"/tables/account/rows/{second}")).status_code == 204
        fixed = await provision(settings, default_config(), create_columns=True)
    assert set(_keys(fixed, "present")) == {"contact", "account", "opportunity"}
    assert fixed.ok
    assert [k.status for k in box.dataverse.store.tables["account"].keys] == ["Active"]


async def test_journal_subscriptions_are_made_once_and_drift_is_listed_on_a_dry_run(box: Sandbox) -> None:
    """Issue 16 item 2: the journal's subscriptions as code. A second run finds them present; one changed in
    HubSpot (a property dropped) is drift, listed by a dry run with what it lacks, and upserted by a run."""
    settings, config = settings_of(box), default_config()
    first = await provision(settings, config)
    assert len(first.journal.created) == DEFAULT_JOURNAL
    again = await provision(settings, config)
    assert (len(again.journal.present), again.journal.created) == (DEFAULT_JOURNAL, [])

    journal = box.hubspot.journal
    contact = next(
        s
        for s in journal.subscriptions.values()
        if (s.subscription_type, s.object_type_id) == ("OBJECT", "0-1")
    )
    contact.properties = [p for p in contact.properties if p != "email"]
    dry = await provision(settings, config, dry_run=True)
    assert [str(i) for i in dry.journal.missing] == [
        "journal subscription contact.object: properties lacks email"
    ]
    assert "email" not in contact.properties  # a dry run changes nothing
    fixed = await provision(settings, config)
    assert [i.object for i in fixed.journal.created] == ["contact"]
    assert "email" in contact.properties


async def test_contacts_privacy_deletions_get_a_gdpr_journal_subscription_made_once(box: Sandbox) -> None:
    """A privacy deletion reaches a journal-only deployment only through a GDPR_PRIVACY_DELETION subscription
    (GDPR_DELETE): `cdc provision` makes one for contacts, lists it on a dry run while missing, and a second
    run rewrites nothing (the sandbox's ``updatedAt`` stays)."""
    settings, config = settings_of(box), default_config()
    dry = await provision(settings, config, dry_run=True)
    listed = [str(i) for i in dry.journal.missing]
    assert "journal subscription contact.gdpr_privacy_deletion: missing" in listed
    await provision(settings, config)
    journal = box.hubspot.journal
    gdpr = [s for s in journal.subscriptions.values() if s.subscription_type == "GDPR_PRIVACY_DELETION"]
    assert [(s.portal_id, s.object_type_id, s.actions) for s in gdpr] == [
        (box.info.hubspot.portal_id, "0-1", ["GDPR_DELETE"])
    ]
    updated = gdpr[0].updated_at
    box.hubspot.clock.advance(60)
    again = await provision(settings, config)
    assert again.journal.created == []
    assert "contact.gdpr_privacy_deletion" in {f"{i.object}.{i.name}" for i in again.journal.present}
    assert gdpr[0].updated_at == updated
