"""The app registration's credential: a client secret, or a certificate msal signs client assertions with.

A certificate credential (Entra ID "certificate credentials": a JWT signed with the certificate's private
key, ``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``; Learn,
entra/identity-platform/certificate-credentials) is read from one PEM file and checked here, once, so a
wrong file is a configuration error naming the setting rather than an error inside msal at the first token:

1. the private key loads (with ``client_certificate_passphrase`` when it is encrypted, without otherwise);
2. it is an RSA key: the assertion is signed PS256 (or RS256 with a SHA-1 thumbprint), both RSA algorithms;
3. the certificate in the file, when there is one, belongs to that key and has not expired (Entra keeps a
   certificate's end date: an expired one signs nothing it accepts); a ``client_certificate_thumbprint``
   given with it must be its SHA-1 thumbprint;
4. without a certificate in the file, ``client_certificate_thumbprint`` (the SHA-1 the Azure portal shows
   for the uploaded certificate) is required.

msal then gets the key (decrypted, on its own) with ``public_certificate`` (it sends the SHA-256
thumbprint, ``x5t#S256``, and signs PS256; msal >= 1.35, `application.py`) or, with the key alone, with
``thumbprint`` (``x5t``, RS256). The key stays a `SecretStr`: nothing here logs or repeats it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from cdc.settings import DataverseSettings

__all__ = ["Certificate", "CredentialError", "describe_credential", "load_certificate", "msal_credential"]

_BEGIN_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_SEPARATORS = re.compile(r"[\s:]")
_SHA1_HEX = re.compile(r"^[0-9A-F]{40}$")
_PATH = "dataverse.client_certificate_path (CDC_DATAVERSE__CLIENT_CERTIFICATE_PATH)"
_THUMBPRINT = "dataverse.client_certificate_thumbprint (CDC_DATAVERSE__CLIENT_CERTIFICATE_THUMBPRINT)"
_PASSPHRASE = "dataverse.client_certificate_passphrase (CDC_DATAVERSE__CLIENT_CERTIFICATE_PASSPHRASE)"  # noqa: S105 -- a setting's name


class CredentialError(ValueError):
    """The configured credential cannot be used; the message names the setting and what to do."""


@dataclass(frozen=True)
class Certificate:
    """A checked certificate credential. ``sha1`` is upper-case hex, as the Azure portal shows it."""

    private_key_pem: SecretStr
    """The key alone, decrypted (PKCS#8): msal needs no passphrase."""
    certificate_pem: str | None
    sha1: str
    not_after: datetime | None

    def msal_credential(self) -> dict[str, str]:
        """``client_credential`` for ``msal.ConfidentialClientApplication`` (module docstring)."""
        credential = {"private_key": self.private_key_pem.get_secret_value()}
        if self.certificate_pem is not None:
            credential["public_certificate"] = self.certificate_pem
        else:
            credential["thumbprint"] = self.sha1
        return credential


def _thumbprint(given: str) -> str:
    normalized = _SEPARATORS.sub("", given).upper()
    if not _SHA1_HEX.match(normalized):
        raise CredentialError(f"{_THUMBPRINT} must be a SHA-1 thumbprint: 40 hex digits")
    return normalized


def _private_key(blob: bytes, passphrase: SecretStr | None) -> rsa.RSAPrivateKey:
    password = passphrase.get_secret_value().encode() if passphrase is not None else None
    try:
        key = serialization.load_pem_private_key(blob, password)
    except TypeError:  # cryptography: a passphrase for a plain key, or none for an encrypted one
        if password is None:
            raise CredentialError(f"the private key in {_PATH} is encrypted: set {_PASSPHRASE}") from None
        raise CredentialError(
            f"the private key in {_PATH} is not encrypted: leave {_PASSPHRASE} unset"
        ) from None
    except ValueError:
        if password is not None and b"ENCRYPTED" in blob:
            raise CredentialError(f"{_PASSPHRASE} does not decrypt the private key in {_PATH}") from None
        raise CredentialError(
            f"{_PATH} holds no PEM private key (it needs the key and, usually, the certificate)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialError(
            f"the private key in {_PATH} is not an RSA key: Entra ID signs client assertions with "
            "RSA only (PS256, RS256)"
        )
    return key


def load_certificate(
    path: Path, passphrase: SecretStr | None, thumbprint: str | None, *, now: datetime
) -> Certificate:
    """Read and check ``path`` (module docstring), or raise :class:`CredentialError`."""
    try:
        blob = path.read_bytes()
    except OSError as error:
        raise CredentialError(f"{_PATH}: cannot read {path}: {error.strerror or error}") from None
    key = _private_key(blob, passphrase)
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    if _BEGIN_CERTIFICATE not in blob:
        if thumbprint is None:
            raise CredentialError(
                f"{_PATH} holds a private key but no certificate: add the certificate to the file, or set "
                f"{_THUMBPRINT} to the registered certificate's thumbprint"
            )
        return Certificate(SecretStr(pem_key), None, _thumbprint(thumbprint), None)
    try:
        certificates = x509.load_pem_x509_certificates(blob)
    except ValueError:
        raise CredentialError(f"the certificate in {_PATH} is not a valid PEM certificate") from None
    public = key.public_key().public_numbers()
    mine = next(
        (
            c
            for c in certificates
            if isinstance(c.public_key(), rsa.RSAPublicKey) and c.public_key().public_numbers() == public  # type: ignore[union-attr]
        ),
        None,
    )
    if mine is None:
        raise CredentialError(f"the certificate in {_PATH} does not belong to its private key")
    if mine.not_valid_after_utc <= now:
        raise CredentialError(
            f"the certificate in {_PATH} expired on {mine.not_valid_after_utc:%Y-%m-%d}: upload a new one to "
            "the app registration and point the setting at it"
        )
    sha1 = mine.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 -- the thumbprint Entra names certificates by
    if thumbprint is not None and _thumbprint(thumbprint) != sha1:
        raise CredentialError(
            f"{_THUMBPRINT} is not the thumbprint of the certificate in {_PATH} ({sha1}): leave it unset "
            "or correct it"
        )
    certificate_pem = mine.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return Certificate(SecretStr(pem_key), certificate_pem, sha1, mine.not_valid_after_utc)


def msal_credential(settings: DataverseSettings, *, now: datetime) -> str | dict[str, str]:
    """What msal authenticates the app with: the client secret, or the checked certificate's parts."""
    if settings.client_certificate_path is not None:
        certificate = load_certificate(
            settings.client_certificate_path,
            settings.client_certificate_passphrase,
            settings.client_certificate_thumbprint,
            now=now,
        )
        return certificate.msal_credential()
    if settings.client_secret is None or not settings.client_secret.get_secret_value():
        raise CredentialError(
            "dataverse.client_secret (CDC_DATAVERSE__CLIENT_SECRET) or dataverse.client_certificate_path "
            "(CDC_DATAVERSE__CLIENT_CERTIFICATE_PATH) is required: the app registration's credential"
        )
    return settings.client_secret.get_secret_value()


def describe_credential(settings: DataverseSettings, *, now: datetime) -> str:
    """What the app authenticates with, for people (``certificate <SHA-1>, valid until ...`` or ``client
    secret``); :class:`CredentialError` when it cannot be used (`cdc config check`)."""
    if settings.client_certificate_path is None:
        msal_credential(settings, now=now)
        return "client secret"
    certificate = load_certificate(
        settings.client_certificate_path,
        settings.client_certificate_passphrase,
        settings.client_certificate_thumbprint,
        now=now,
    )
    until = f", valid until {certificate.not_after:%Y-%m-%d}" if certificate.not_after else ""
    return f"certificate {certificate.sha1}{until}"
