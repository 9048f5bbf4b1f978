"""Settings: YAML then environment, one clear error for anything wrong, no secret in any repr."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cdc._redact import looks_secret, scrub
from cdc.hubspot.events import Tenant
from cdc.roles.ingest import receiver_config
from cdc.settings import Settings, SettingsError, credential_sections, load_settings, unknown_env
from streams.config import KafkaSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os  # noqa: PLC0415

    for name in list(os.environ):
        if name.upper().startswith("CDC_"):
            monkeypatch.delenv(name)


def test_defaults_need_no_configuration() -> None:
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.topic_prefix == "crm."


def test_a_new_install_takes_v3_signatures_only_and_ingest_needs_the_portal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13: v1/v2 signatures (no timestamp, replayable for ever) only when the app is said to be a
    legacy one; and webhooks of any other portal are refused, so `cdc ingest` must know ours."""
    monkeypatch.setenv("CDC_HUBSPOT__CLIENT_SECRET", "s")
    assert load_settings().hubspot.app_kind == "project"
    with pytest.raises(
        SettingsError, match=re.escape("hubspot.portal_id (CDC_HUBSPOT__PORTAL_ID) is required")
    ):
        receiver_config(load_settings())
    monkeypatch.setenv("CDC_HUBSPOT__PORTAL_ID", "62515")
    monkeypatch.setenv("CDC_HUBSPOT__APP_ID", "1160452")
    config = receiver_config(load_settings())
    assert (config.legacy_signatures, config.tenant) == (False, Tenant("62515", "1160452"))
    monkeypatch.setenv("CDC_HUBSPOT__APP_KIND", "legacy")
    assert receiver_config(load_settings()).legacy_signatures
    monkeypatch.setenv("CDC_INGEST__ALLOW_V1_V2_SIGNATURES", "true")
    with pytest.raises(SettingsError, match="CDC_INGEST__ALLOW_V1_V2_SIGNATURES is not a setting"):
        load_settings()


def test_environment_overrides_the_yaml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cdc.yaml"
    config.write_text(
        "kafka:\n  bootstrap_servers: kafka-a:9092\n  topic_prefix: prod.\nlog:\n  level: DEBUG\n"
    )
    monkeypatch.setenv("CDC_KAFKA__BOOTSTRAP_SERVERS", "kafka-b:9092")
    settings = load_settings(config)
    assert settings.kafka.bootstrap_servers == "kafka-b:9092"
    assert settings.kafka.topic_prefix == "prod."
    assert settings.log.level == "DEBUG"


def test_a_portal_id_written_as_a_yaml_number_is_its_digits(tmp_path: Path) -> None:
    """HubSpot shows the portal id as a number, and YAML reads `portal_id: 12345678` as one: it was
    refused ("Input should be a valid string"), so users had to know to quote it."""
    config = tmp_path / "cdc.yaml"
    config.write_text("hubspot:\n  portal_id: 12345678\n")
    assert load_settings(config).hubspot.portal_id == "12345678"
    config.write_text("hubspot:\n  portal_id: true\n")
    with pytest.raises(SettingsError, match="portal_id"):
        load_settings(config)


def test_config_file_can_come_from_cdc_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cdc.yaml"
    config.write_text("kafka:\n  partitions: 12\n")
    monkeypatch.setenv("CDC_CONFIG", str(config))
    assert load_settings().kafka.partitions == 12


def test_a_misspelt_variable_is_an_error_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_KAFKA__BOOTSTRAPSERVERS", "x:1")
    with pytest.raises(SettingsError, match="CDC_KAFKA__BOOTSTRAPSERVERS is not a setting; did you mean "
                       "CDC_KAFKA__BOOTSTRAP_SERVERS\\?"):  # fmt: skip
        load_settings()


def test_unknown_env_ignores_other_programs_variables() -> None:
    assert unknown_env({"PATH": "/bin", "KAFKA_BOOTSTRAP": "x", "CDC_KAFKA_CACHE": "/c"}) == []


def test_a_section_that_may_be_left_out_still_takes_its_variables() -> None:
    """``dataverse.proxy`` is optional (``ProxySettings | None``): its fields are settings all the same."""
    names = ("CDC_DATAVERSE__PROXY__URL", "CDC_DATAVERSE__PROXY__USERNAME", "CDC_DATAVERSE__PROXY__PASSWORD")
    assert unknown_env(dict.fromkeys(names, "x")) == []
    assert unknown_env({"CDC_DATAVERSE__PROXY__URI": "x"}) == [
        "CDC_DATAVERSE__PROXY__URI is not a setting; did you mean CDC_DATAVERSE__PROXY__URL?"
    ]


def test_a_wrong_value_names_the_setting_its_variable_and_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_POLL__PORT", "eighty")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "poll.port (CDC_POLL__PORT)" in message
    assert "valid integer" in message
    assert "got 'eighty'" in message


def test_in_a_section_with_credentials_the_setting_and_the_rule_are_named_not_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDC_KAFKA__SECURITY_PROTOCOL", "TLS")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "kafka.security_protocol (CDC_KAFKA__SECURITY_PROTOCOL)" in message
    assert "'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'" in message
    assert "value not shown: kafka holds credentials" in message
    assert "TLS'" not in message


def test_yaml_problems_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka: [unclosed\n")
    with pytest.raises(SettingsError, match=f"config file {bad} is not valid YAML"):
        load_settings(bad)
    bad.write_text("- a list\n")
    with pytest.raises(SettingsError, match="must hold a mapping at the top, not list"):
        load_settings(bad)
    bad.write_text("kafka:\n  partitons: 3\n")
    with pytest.raises(SettingsError, match=r"kafka\.partitons .*Extra inputs are not permitted"):
        load_settings(bad)
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml")


def test_sasl_needs_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CDC_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    with pytest.raises(SettingsError, match="needs sasl_mechanism, sasl_username and sasl_password"):
        load_settings()


def test_secrets_never_show_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hunter2-very-secret"
    monkeypatch.setenv("CDC_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("CDC_KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("CDC_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("CDC_KAFKA__SASL_PASSWORD", secret)
    settings = load_settings()
    assert secret not in repr(settings)
    assert secret not in str(settings.model_dump())
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == secret

    monkeypatch.setenv("CDC_KAFKA__SSL_KEY_PASSWORD", secret)
    monkeypatch.setenv("CDC_KAFKA__SSL_CERTFILE", "/nonexistent.pem")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert secret not in str(raised.value)


def test_tls_files_must_exist(tmp_path: Path) -> None:
    expected = re.escape("ssl_cafile '/nonexistent/ca.pem' is not a readable file")
    with pytest.raises(ValueError, match=expected):
        KafkaSettings(security_protocol="SSL", ssl_cafile=Path("/nonexistent/ca.pem"))
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert KafkaSettings(security_protocol="SSL", ssl_cafile=ca).uses_ssl


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.kafka = KafkaSettings()  # type: ignore[misc]


def test_poll_serves_on_its_own_port_and_takes_its_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = load_settings()
    assert (defaults.poll.host, defaults.poll.port) == ("127.0.0.1", 8081)
    assert defaults.poll.port != defaults.ingest.port
    monkeypatch.setenv("CDC_POLL__PORT", "9181")
    monkeypatch.setenv("CDC_POLL__SHUTDOWN_GRACE_S", "5")
    settings = load_settings()
    assert (settings.poll.port, settings.poll.shutdown_grace_s) == (9181, 5.0)
    monkeypatch.setenv("CDC_POLL__LEASE_SESSION_TIMEOUT_S", "1")
    with pytest.raises(
        SettingsError, match=r"poll\.lease_session_timeout_s \(CDC_POLL__LEASE_SESSION_TIMEOUT_S"
    ):
        load_settings()


def test_every_section_holding_a_secret_is_a_credential_section() -> None:
    """Derived from the models: a section that gains a SecretStr field (a webhook secret) is covered."""
    assert credential_sections() >= {("hubspot",), ("dataverse",), ("kafka",)}
    assert ("poll",) not in credential_sections()
    assert ("log",) not in credential_sections()


@pytest.mark.parametrize(
    "value",
    [
        "pat-na1-6f1c2a9e-0b7d-4c55-9a1e-2f3b4c5d6e7f",  # HubSpot private-app token
        "pat-eu1-00000000-1111-2222-3333-444444444444",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",  # JWT
        "Qx8Q~f3kLm9pZr2VtY7uWb4nHs6dJc1aEg5oKi0",  # Entra ID client secret
        "9f86d081884c7d659a2feaa0c55ad015",  # hex
        "pvi4c7tuLzz2KWKfjPnVqhviMhHxmOde",  # base64url
        "Bearer abcdefghijkl",
        "https://svc:p4ssw0rd@kafka.example.com/",
        "6f1c2a9e-0b7d-4c55-9a1e-2f3b4c5d6e7f",  # a client id or an app secret: a UUID
    ],
)
def test_token_shapes_look_secret(value: str) -> None:
    assert looks_secret(value)
    assert value not in scrub(f"got {value!r} here")


@pytest.mark.parametrize(
    "value",
    ["TLS", "eighty", "127.0.0.1:9092", "kafka-broker-01.internal", "https://contoso.crm.dynamics.com",
     "/var/lib/cdc/sync-2024.yaml", "my-service-account-2024", "aaaaaaaaaaaaaaaaaaaa1"],
)  # fmt: skip
def test_ordinary_values_do_not(value: str) -> None:
    assert not looks_secret(value)
    assert scrub(f"got {value!r} here") == f"got {value!r} here"


def test_a_yaml_syntax_error_says_where_without_quoting_the_line(tmp_path: Path) -> None:
    token = "pat-na1-6f1c2a9e-0b7d-4c55-9a1e-2f3b4c5d6e7f"
    bad = tmp_path / "cdc.yaml"
    bad.write_text(f"hubspot:\n  token: {token}: oops\n")
    with pytest.raises(SettingsError, match="line 2, column") as raised:
        load_settings(bad)
    assert token not in str(raised.value)
    assert "6f1c2a9e" not in str(raised.value)


REFRESH = "6f18f21e-a743-4509-b7fd-1a5e632fffa1"


def test_an_oauth_app_is_configured_from_the_environment_and_its_refresh_token_never_shows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 15: a project app with OAuth (client id, client secret, refresh token); hubspot.token stays
    the static kind's, unchanged."""
    monkeypatch.setenv("CDC_HUBSPOT__AUTH__KIND", "oauth")
    monkeypatch.setenv("CDC_HUBSPOT__AUTH__CLIENT_ID", "a1b2c3d4-client")
    monkeypatch.setenv("CDC_HUBSPOT__AUTH__REFRESH_TOKEN", REFRESH)
    monkeypatch.setenv("CDC_HUBSPOT__CLIENT_SECRET", "app-secret-0123456789")
    hub = load_settings().hubspot
    assert hub.auth.kind == "oauth"
    assert hub.has_credentials
    assert hub.auth.refresh_token is not None
    assert hub.auth.refresh_token.get_secret_value() == REFRESH
    assert REFRESH not in repr(hub)
    assert REFRESH not in str(hub.model_dump())


def test_the_static_token_is_the_default_kind_and_works_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not load_settings().hubspot.has_credentials
    monkeypatch.setenv("CDC_HUBSPOT__TOKEN", "pat-na1-00000000-0000-0000-0000-000000000000")
    hub = load_settings().hubspot
    assert hub.auth.kind == "static"
    assert hub.has_credentials


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"CDC_HUBSPOT__AUTH__KIND": "oauth"},
            "hubspot.auth.kind oauth needs hubspot.auth.client_id (CDC_HUBSPOT__AUTH__CLIENT_ID), "
            "hubspot.client_secret (CDC_HUBSPOT__CLIENT_SECRET), hubspot.auth.refresh_token "
            "(CDC_HUBSPOT__AUTH__REFRESH_TOKEN)",
        ),
        (
            {"CDC_HUBSPOT__AUTH__KIND": "client_credentials", "CDC_HUBSPOT__AUTH__CLIENT_ID": "c"},
            "hubspot.auth.kind client_credentials needs hubspot.client_secret (CDC_HUBSPOT__CLIENT_SECRET), "
            "hubspot.auth.scopes (CDC_HUBSPOT__AUTH__SCOPES, a JSON list)",
        ),
        (
            {"CDC_HUBSPOT__AUTH__REFRESH_TOKEN": REFRESH},
            "hubspot.auth.refresh_token belong to hubspot.auth.kind oauth or client_credentials",
        ),
        (
            {
                "CDC_HUBSPOT__AUTH__KIND": "oauth",
                "CDC_HUBSPOT__TOKEN": "pat-na1-x",
                "CDC_HUBSPOT__AUTH__CLIENT_ID": "c",
                "CDC_HUBSPOT__CLIENT_SECRET": "s",
                "CDC_HUBSPOT__AUTH__REFRESH_TOKEN": REFRESH,
            },
            "hubspot.token is a static token, but hubspot.auth.kind is oauth",
        ),
        (
            {
                "CDC_HUBSPOT__AUTH__KIND": "oauth",
                "CDC_HUBSPOT__AUTH__CLIENT_ID": "c",
                "CDC_HUBSPOT__CLIENT_SECRET": "s",
                "CDC_HUBSPOT__AUTH__REFRESH_TOKEN": REFRESH,
                "CDC_HUBSPOT__AUTH__SCOPES": '["crm.objects.contacts.read"]',
            },
            "hubspot.auth.scopes belong to client_credentials",
        ),
    ],
)
def test_each_kind_of_hubspot_credentials_names_what_it_lacks_or_what_is_not_its_own(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert expected in str(raised.value)
    assert REFRESH not in str(raised.value)


def test_client_credentials_take_their_scopes_as_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_HUBSPOT__AUTH__KIND", "client_credentials")
    monkeypatch.setenv("CDC_HUBSPOT__AUTH__CLIENT_ID", "c")
    monkeypatch.setenv("CDC_HUBSPOT__CLIENT_SECRET", "s")
    monkeypatch.setenv("CDC_HUBSPOT__AUTH__SCOPES", '["developer.webhooks_journal.read", "oauth"]')
    assert load_settings().hubspot.auth.scopes == ("developer.webhooks_journal.read", "oauth")


@pytest.mark.parametrize(
    ("hubspot", "sources"),
    [
        ({"token": "t"}, "webhooks"),
        ({"auth": {"kind": "oauth", "client_id": "c", "refresh_token": "r"}, "client_secret": "s"}, "both"),
        ({"auth": {"kind": "client_credentials", "client_id": "c", "scopes": ["x"]}, "client_secret": "s"},
         "both"),
        ({"auth": {"kind": "oauth", "client_id": "c", "refresh_token": "r"}, "client_secret": "s",
          "app_kind": "legacy"}, "webhooks"),
        ({"token": "t", "change_sources": "journal"}, "journal"),
    ],
    ids=["static", "oauth", "client-credentials", "legacy-oauth", "explicit"],
)  # fmt: skip
def test_change_sources_default_to_both_for_a_project_app_with_oauth_else_webhooks(
    hubspot: dict[str, object], sources: str
) -> None:
    """Issue 16 item 4: the journal needs a project app's client credentials."""
    assert Settings.model_validate({"hubspot": hubspot}).hubspot.sources == sources


def test_an_unknown_change_source_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="change_sources"):
        Settings.model_validate({"hubspot": {"change_sources": "carrier-pigeon"}})
