"""`cdc provision --hubspot-project DIR`: the project files a HubSpot developer-platform app needs, checked
against the documented field lists (`cdc.hubspot.project_checks`), merged into what a person wrote, and
written once: a second run changes no byte."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from cdc import cli
from cdc.exits import ExitCode
from cdc.hubspot.project import (
    APP_FILE,
    PLATFORM_VERSION,
    PROJECT_FILE,
    WEBHOOKS_FILE,
    ProjectError,
    required_scopes,
)
from cdc.hubspot.project_checks import check_app, check_hsproject, check_project, check_webhooks
from cdc.provisioning.needs import needs_of
from cdc.provisioning.project import write_project
from cdc.settings import IngestSettings, Settings
from consumers.loader import default_config
from tests.sync_configs import LEAD_STEPS, enabled_only

TARGET = "https://sync.example.org/webhooks/hubspot"
SETTINGS = Settings(ingest=IngestSettings(public_url=TARGET))
FILES = (PROJECT_FILE, f"src/{APP_FILE}", f"src/{WEBHOOKS_FILE}")


def read(directory: Path, name: str) -> Any:
    return orjson.loads((directory / name).read_bytes())


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {name: ((directory / name).read_bytes(), (directory / name).stat().st_mtime_ns) for name in FILES}


def test_the_default_configuration_makes_a_valid_project(tmp_path: Path) -> None:
    report = write_project(tmp_path, default_config(), SETTINGS)
    assert report.written == list(FILES)
    assert report.problems == []
    project, app, hooks = (read(tmp_path, name) for name in FILES)
    assert check_project(project, app, hooks) == []
    assert project == {"name": "hubspot-dynamics-sync", "srcDir": "src", "platformVersion": PLATFORM_VERSION}
    assert app["type"] == "app"
    assert app["config"]["distribution"] == "private"
    assert app["config"]["auth"]["type"] == "static"
    assert "redirectUrls" not in app["config"]["auth"]
    assert app["config"]["auth"]["requiredScopes"] == [
        "crm.objects.companies.read",
        "crm.objects.companies.write",
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.objects.deals.read",
        "crm.objects.deals.write",
        "crm.objects.owners.read",  # step 4 writes a contact's owner as an email (lookup: owner_email)
        "crm.schemas.companies.write",
        "crm.schemas.contacts.write",
        "crm.schemas.deals.write",
        "oauth",
    ]
    assert hooks["config"]["settings"] == {"targetUrl": TARGET, "maxConcurrentRequests": 10}
    subs = hooks["config"]["subscriptions"]
    needs = needs_of(default_config())
    assert len(subs["crmObjects"]) + len(subs["hubEvents"]) == len(needs.subscriptions)
    assert subs["legacyCrmObjects"] == []
    assert subs["hubEvents"] == [{"subscriptionType": "contact.privacyDeletion", "active": True}]
    generic = {(e["subscriptionType"], e["objectType"], e.get("propertyName")) for e in subs["crmObjects"]}
    for obj in ("contact", "company", "deal"):
        for action in ("creation", "deletion", "merge", "restore", "associationChange"):
            assert (f"object.{action}", obj, None) in generic
    assert ("object.propertyChange", "contact", "email") in generic
    assert ("object.propertyChange", "company", "name") in generic
    assert all(e["active"] is True for e in subs["crmObjects"])


def test_a_second_run_changes_no_byte(tmp_path: Path) -> None:
    write_project(tmp_path, default_config(), SETTINGS)
    before = snapshot(tmp_path)
    again = write_project(tmp_path, default_config(), SETTINGS)
    assert (again.written, again.unchanged) == ([], list(FILES))
    assert snapshot(tmp_path) == before


def test_what_a_person_added_is_kept_and_nothing_is_written_twice(tmp_path: Path) -> None:
    write_project(tmp_path, default_config(), SETTINGS)
    project, app, hooks = (read(tmp_path, name) for name in FILES)
    project.update(name="Contoso sync", platformVersion="2026.09")
    app["config"]["auth"]["requiredScopes"].append("files")
    app["config"]["auth"]["optionalScopes"] = ["crm.objects.contacts.read", "tickets"]  # one of ours
    app["config"]["support"] = {"supportEmail": "crm@contoso.example"}
    hooks["config"]["settings"]["maxConcurrentRequests"] = 20
    subs = hooks["config"]["subscriptions"]
    email = {"subscriptionType": "object.propertyChange", "objectType": "contact", "propertyName": "email"}
    subs["crmObjects"] = [e for e in subs["crmObjects"] if {**e, "active": True} != {**email, "active": True}]
    subs["crmObjects"].append({"subscriptionType": "object.creation", "objectType": "ticket", "active": True})
    # The legacy format's subscription to the same event counts: no generic twin is added.
    subs["legacyCrmObjects"] = [
        {"subscriptionType": "contact.propertyChange", "propertyName": "email", "active": True}
    ]
    for name, value in zip(FILES, (project, app, hooks), strict=True):
        (tmp_path / name).write_bytes(orjson.dumps(value))  # compact: a person's own formatting

    report = write_project(tmp_path, default_config(), SETTINGS)
    assert report.written == [f"src/{APP_FILE}"]  # only the optional scope moved; formatting is no change
    assert report.problems == []
    project2, app2, hooks2 = (read(tmp_path, name) for name in FILES)
    assert project2 == project
    auth = app2["config"]["auth"]
    assert auth["requiredScopes"][-1] == "files"
    assert auth["optionalScopes"] == ["tickets"]
    assert app2["config"]["support"] == {"supportEmail": "crm@contoso.example"}
    assert hooks2 == hooks
    before = snapshot(tmp_path)
    assert write_project(tmp_path, default_config(), SETTINGS).written == []
    assert snapshot(tmp_path) == before


def test_a_paused_subscription_is_reported_not_switched_on(tmp_path: Path) -> None:
    write_project(tmp_path, default_config(), SETTINGS)
    hooks = read(tmp_path, FILES[2])
    hooks["config"]["subscriptions"]["crmObjects"][0]["active"] = False
    (tmp_path / FILES[2]).write_bytes(orjson.dumps(hooks))
    report = write_project(tmp_path, default_config(), SETTINGS)
    assert report.problems == [
        f"src/{WEBHOOKS_FILE}: subscription company.creation is paused (active: false); set it active, or "
        "the app gets no such events"
    ]
    assert read(tmp_path, FILES[2]) == hooks


def test_the_target_url_follows_the_setting_and_the_lead_steps_change_what_is_asked(tmp_path: Path) -> None:
    write_project(tmp_path, default_config(), SETTINGS)
    moved = Settings(ingest=IngestSettings(public_url="https://cdc.contoso.example/webhooks/hubspot"))
    leads = enabled_only(*LEAD_STEPS)
    report = write_project(tmp_path, leads, moved)
    # Lists lose nothing: the scopes and subscriptions of the steps switched off stay (a person may have
    # meant them); the new target URL is the one change.
    assert report.written == [f"src/{WEBHOOKS_FILE}"]
    hooks = read(tmp_path, FILES[2])
    assert hooks["config"]["settings"]["targetUrl"] == "https://cdc.contoso.example/webhooks/hubspot"
    assert required_scopes(leads, needs_of(leads)) == (
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.objects.owners.read",
        "crm.schemas.contacts.write",
        "oauth",
    )


def test_without_a_public_url_there_is_no_target_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"ingest\.public_url \(CDC_INGEST__PUBLIC_URL\) is required"):
        write_project(tmp_path, default_config(), Settings())
    assert list(tmp_path.iterdir()) == []


def test_an_oauth_app_needs_a_redirect_url_and_a_static_one_has_none(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="needs a redirect URL"):
        write_project(tmp_path, default_config(), SETTINGS, auth="oauth")
    write_project(tmp_path, default_config(), SETTINGS, auth="oauth", redirect_urls=["https://x.example/cb"])
    auth = read(tmp_path, FILES[1])["config"]["auth"]
    assert (auth["type"], auth["redirectUrls"]) == ("oauth", ["https://x.example/cb"])
    assert write_project(tmp_path, default_config(), SETTINGS).written == []  # the file's auth type stays
    write_project(tmp_path, default_config(), SETTINGS, auth="static")
    assert "redirectUrls" not in read(tmp_path, FILES[1])["config"]["auth"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (PROJECT_FILE, b"{not json", "is not valid JSON"),
        (PROJECT_FILE, b'{"srcDir": "../elsewhere"}', "srcDir: required, a directory inside the project"),
        (f"src/{APP_FILE}", b'{"config": []}', "config is not a JSON object"),
        (f"src/{WEBHOOKS_FILE}", b'{"config": {"subscriptions": {"crmObjects": {}}}}', "is not a JSON array"),
    ],
)
def test_a_file_that_cannot_be_merged_into_is_an_error_not_overwritten(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ProjectError, match=message):
        write_project(tmp_path, default_config(), SETTINGS)
    assert (tmp_path / name).read_bytes() == content


def test_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    report = write_project(tmp_path, default_config(), SETTINGS, dry_run=True)
    assert report.written == list(FILES)
    assert not report.ok
    assert list(tmp_path.iterdir()) == []


# --- the checks: each documented rule catches what breaks it ------------------------------------------


def _valid(tmp_path: Path) -> tuple[Any, Any, Any]:
    write_project(tmp_path, default_config(), SETTINGS)
    project, app, hooks = (read(tmp_path, name) for name in FILES)
    return project, app, hooks


def _set(path: str, value: Any) -> Callable[[Any], None]:
    def change(component: Any) -> None:
        *parents, last = path.split(".")
        for part in parents:
            component = component[int(part)] if part.isdigit() else component[part]
        if value is KeyError:
            del component[last]
        else:
            component[last] = value

    return change


MUTATIONS: dict[str, tuple[int, Callable[[Any], None], str]] = {
    "no platform version": (0, _set("platformVersion", KeyError), "platformVersion: required"),
    "a field hsproject does not have": (0, _set("version", "1"), "hsproject.json.version: not a documented"),
    "uid with a space": (1, _set("uid", "my app"), ".uid: required, up to 64"),
    "uid too long": (1, _set("uid", "a" * 65), ".uid: required, up to 64"),
    "wrong component type": (1, _set("type", "private-app"), ".type: must be 'app'"),
    "name with a trailing space": (1, _set("config.name", "Sync "), "config.name: required"),
    "marketplace with static auth": (1, _set("config.distribution", "marketplace"), "a marketplace app uses"),
    "redirect URLs on a static app": (1, _set("config.auth.redirectUrls", ["https://x"]), "oauth apps only"),
    "misspelt auth field": (1, _set("config.auth.scopes", []), "config.auth.scopes: not a documented field"),
    "no scopes": (1, _set("config.auth.requiredScopes", []), "requiredScopes: required, a non-empty list"),
    "a scope twice": (1, _set("config.auth.requiredScopes", ["oauth", "oauth"]), "a scope is listed twice"),
    "relative target URL": (2, _set("config.settings.targetUrl", "/webhooks"), "targetUrl: required"),
    "five concurrent requests": (2, _set("config.settings.maxConcurrentRequests", 5), "greater than five"),
    "legacy type in crmObjects": (
        2, _set("config.subscriptions.crmObjects.0.subscriptionType", "company.creation"), "object.<action>"
    ),
    "crmObjects entry without objectType": (
        2, _set("config.subscriptions.crmObjects.0.objectType", KeyError), "objectType: required"
    ),
    "a property on a creation": (
        2, _set("config.subscriptions.crmObjects.0.propertyName", "name"), "only for a property change"
    ),
    "active as text": (2, _set("config.subscriptions.crmObjects.0.active", "yes"), ".active: true or false"),
    "hs_lastmodifieddate": (
        2,
        _set("config.subscriptions.legacyCrmObjects", [
            {"subscriptionType": "deal.propertyChange", "propertyName": "hs_lastmodifieddate", "active": True}
        ]),
        "HubSpot refuses subscriptions to hs_lastmodifieddate",
    ),
    "a hub event HubSpot has not": (
        2, _set("config.subscriptions.hubEvents.0.subscriptionType", "deal.privacyDeletion"), "in hubEvents"
    ),
    "the same subscription twice": (
        2,
        lambda hooks: hooks["config"]["subscriptions"]["crmObjects"].append(
            copy.deepcopy(hooks["config"]["subscriptions"]["crmObjects"][0])
        ),
        "the same subscription twice",
    ),
    "one uid for both components": (2, _set("uid", "cdc_dynamics_sync_app"), "is used by two components"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_each_documented_rule_catches_what_breaks_it(tmp_path: Path, case: str) -> None:
    files = list(_valid(tmp_path))
    index, change, expected = MUTATIONS[case]
    change(files[index])
    problems = check_project(*files)
    assert any(expected in problem for problem in problems), problems


def test_each_checker_refuses_what_is_no_object() -> None:
    assert check_hsproject([]) == ["hsproject.json: not a JSON object"]
    assert check_app("app") == ["app-hsmeta.json: not a JSON object"]
    assert check_webhooks(None) == ["webhooks-hsmeta.json: not a JSON object"]


# --- the command ---------------------------------------------------------------------------------------


def _cdc(*args: str) -> int:
    try:
        cli.main(list(args))
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def test_the_command_writes_the_project_and_needs_no_hubspot_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("CDC_HUBSPOT__TOKEN", "CDC_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    assert _cdc("provision", "--hubspot-project", str(tmp_path)) == ExitCode.CONFIG
    assert "ingest.public_url (CDC_INGEST__PUBLIC_URL) is required" in capsys.readouterr().err

    monkeypatch.setenv("CDC_INGEST__PUBLIC_URL", TARGET)
    assert _cdc("provision", "--hubspot-project", str(tmp_path), "--json") == ExitCode.OK
    out, err = capsys.readouterr()
    report = orjson.loads(out)
    assert report["written"] == list(FILES)
    assert report["problems"] == []
    assert "next: `hs project upload`" in err
    assert _cdc("provision", "--hubspot-project", str(tmp_path)) == ExitCode.OK
    assert capsys.readouterr().out.startswith("wrote 0, unchanged 3, problems 0")
    assert _cdc("provision", "--hubspot-project", str(tmp_path), "--auth", "oauth") == ExitCode.CONFIG
    assert "pass --redirect-url URL" in capsys.readouterr().err
    assert _cdc("provision", "--auth", "oauth") == ExitCode.USAGE
