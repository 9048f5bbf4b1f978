"""The Dataverse credential settings: one of secret or certificate, and a certificate file checked before
msal sees it, every refusal naming the setting and what to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr, ValidationError

from cdc.dataverse.credentials import CredentialError, describe_credential, load_certificate, msal_credential
from cdc.sandbox.tls import make_app_certificate
from cdc.settings import DataverseSettings

NOW = datetime.now(UTC)
ORG = {"base_url": "https://contoso.crm.dynamics.com", "tenant_id": "t", "client_id": "c"}


def org(**values: object) -> DataverseSettings:
    """Settings of an org with ``values`` (a credential, or none)."""
    return DataverseSettings.model_validate({**ORG, **values})


def test_a_secret_and_a_certificate_together_are_refused() -> None:
    with pytest.raises(
        ValidationError, match=r"client_secret or dataverse.client_certificate_path, not both"
    ):
        org(client_secret=SecretStr("s"), client_certificate_path=Path("app.pem"))


def test_an_empty_secret_is_no_secret() -> None:
    """An empty variable (CDC_DATAVERSE__CLIENT_SECRET=) next to a certificate is not a second credential."""
    settings = org(client_secret=SecretStr(""), client_certificate_path=Path("app.pem"))
    assert settings.uses_certificate


def test_a_passphrase_or_thumbprint_without_a_certificate_is_refused() -> None:
    with pytest.raises(
        ValidationError, match=r"belong to dataverse.client_certificate_path, which is not set"
    ):
        org(client_secret=SecretStr("s"), client_certificate_thumbprint="AB" * 20)


def test_neither_credential_is_an_error_naming_both_settings() -> None:
    with pytest.raises(CredentialError) as raised:
        describe_credential(org(), now=NOW)
    assert "dataverse.client_secret (CDC_DATAVERSE__CLIENT_SECRET) or" in str(raised.value)
    assert "dataverse.client_certificate_path (CDC_DATAVERSE__CLIENT_CERTIFICATE_PATH)" in str(raised.value)
    assert describe_credential(org(client_secret=SecretStr("s")), now=NOW) == "client secret"


def test_a_pem_with_key_and_certificate_gives_msal_the_certificate(tmp_path: Path) -> None:
    made = make_app_certificate(tmp_path / "app.pem")
    settings = org(client_certificate_path=made.pem)
    credential = msal_credential(settings, now=NOW)
    assert isinstance(credential, dict)
    assert set(credential) == {"private_key", "public_certificate"}  # msal: PS256 with x5t#S256
    assert credential["public_certificate"] == made.certificate_pem
    assert "PRIVATE KEY" in credential["private_key"]
    assert "CERTIFICATE" not in credential["private_key"]


def test_an_encrypted_key_is_decrypted_with_its_passphrase(tmp_path: Path) -> None:
    made = make_app_certificate(tmp_path / "app.pem", passphrase="correct horse")
    loaded = load_certificate(made.pem, SecretStr("correct horse"), None, now=NOW)
    assert loaded.sha1 == made.sha1
    assert "ENCRYPTED" not in loaded.private_key_pem.get_secret_value()  # msal needs no passphrase
    with pytest.raises(CredentialError, match=r"is encrypted: set dataverse.client_certificate_passphrase"):
        load_certificate(made.pem, None, None, now=NOW)
    with pytest.raises(CredentialError, match=r"client_certificate_passphrase .* does not decrypt"):
        load_certificate(made.pem, SecretStr("wrong"), None, now=NOW)


def test_a_passphrase_for_a_plain_key_is_refused(tmp_path: Path) -> None:
    made = make_app_certificate(tmp_path / "app.pem")
    with pytest.raises(
        CredentialError, match=r"is not encrypted: leave dataverse.client_certificate_passphrase"
    ):
        load_certificate(made.pem, SecretStr("x"), None, now=NOW)


def test_a_key_alone_needs_the_registered_thumbprint(tmp_path: Path) -> None:
    made = make_app_certificate(tmp_path / "key.pem", key_only=True)
    with pytest.raises(CredentialError, match=r"no certificate: add the certificate .* or set dataverse"):
        load_certificate(made.pem, None, None, now=NOW)
    spaced = ":".join(made.sha1[i : i + 2] for i in range(0, 40, 2)).lower()  # as some tools print it
    loaded = load_certificate(made.pem, None, spaced, now=NOW)
    assert loaded.msal_credential()["thumbprint"] == made.sha1  # msal: RS256 with x5t
    with pytest.raises(CredentialError, match=r"must be a SHA-1 thumbprint: 40 hex digits"):
        load_certificate(made.pem, None, "not-hex", now=NOW)


def test_a_thumbprint_that_is_not_the_certificates_is_refused(tmp_path: Path) -> None:
    made = make_app_certificate(tmp_path / "app.pem")
    with pytest.raises(
        CredentialError, match=f"is not the thumbprint of the certificate .* \\({made.sha1}\\)"
    ):
        load_certificate(made.pem, None, "AB" * 20, now=NOW)
    assert load_certificate(made.pem, None, made.sha1, now=NOW).certificate_pem == made.certificate_pem


def test_an_expired_certificate_is_refused(tmp_path: Path) -> None:
    made = make_app_certificate(tmp_path / "app.pem", valid_for=timedelta(days=1))
    with pytest.raises(CredentialError, match=r"expired on .*: upload a new one to the app registration"):
        load_certificate(made.pem, None, None, now=NOW + timedelta(days=2))


def test_a_certificate_of_another_key_is_refused(tmp_path: Path) -> None:
    mine = make_app_certificate(tmp_path / "mine.pem", key_only=True)
    theirs = make_app_certificate(tmp_path / "theirs.pem")
    mixed = tmp_path / "mixed.pem"
    mixed.write_bytes(mine.pem.read_bytes() + theirs.certificate_pem.encode())
    with pytest.raises(CredentialError, match=r"does not belong to its private key"):
        load_certificate(mixed, None, None, now=NOW)


def test_a_missing_file_a_certificate_alone_and_an_ec_key_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match=r"cannot read .*nothing.pem"):
        load_certificate(tmp_path / "nothing.pem", None, None, now=NOW)
    made = make_app_certificate(tmp_path / "app.pem")
    public_only = tmp_path / "public.pem"
    public_only.write_text(made.certificate_pem)
    with pytest.raises(CredentialError, match=r"holds no PEM private key"):
        load_certificate(public_only, None, None, now=NOW)
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(CredentialError, match=r"not an RSA key: Entra ID signs client assertions with RSA"):
        load_certificate(ec_key, None, "AB" * 20, now=NOW)


def test_no_error_repeats_the_key_or_the_passphrase(tmp_path: Path) -> None:
    made = make_app_certificate(tmp_path / "app.pem", passphrase="hunter2-passphrase")
    for passphrase in (None, SecretStr("wrong-passphrase")):
        with pytest.raises(CredentialError) as raised:
            load_certificate(made.pem, passphrase, None, now=NOW)
        assert "hunter2" not in str(raised.value)
        assert "wrong-passphrase" not in str(raised.value)
        assert "BEGIN" not in str(raised.value)
    settings = org(
        client_certificate_path=made.pem, client_certificate_passphrase=SecretStr("hunter2-passphrase")
    )
    assert "hunter2" not in repr(settings)
