"""A throwaway local CA and server certificate, so the sandbox can serve HTTPS; and app certificates, the
credential an Entra ID app registration can use instead of a client secret.

msal refuses authorities that are not https, so the Dataverse emulator (and its token endpoint) serve
TLS with a certificate from this CA; clients trust ``ca_bundle`` (msal's ``verify=``, aiohttp's SSL context).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class LocalTls:
    ca_bundle: Path
    certfile: Path
    keyfile: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle))


def make_local_tls(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")) -> LocalTls:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="cdc sandbox")
    cert = ca.issue_cert(*hosts)
    tls = LocalTls(directory / "ca.pem", directory / "server.crt", directory / "server.key")
    ca.cert_pem.write_to_path(str(tls.ca_bundle))
    tls.certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(tls.keyfile))
    tls.keyfile.chmod(0o600)
    return tls


@dataclass(frozen=True)
class AppCertificate:
    """A certificate for an app registration's certificate credential: ``pem`` holds the private key and
    the certificate (what ``dataverse.client_certificate_path`` names); ``certificate_pem`` is the public
    part a tenant admin uploads to the app registration."""

    pem: Path
    certificate_pem: str
    sha1: str
    """Upper-case hex, as the Azure portal shows it."""


def make_app_certificate(
    path: Path,
    *,
    name: str = "cdc sandbox app",
    valid_for: timedelta = timedelta(days=365),
    passphrase: str | None = None,
    key_only: bool = False,
) -> AppCertificate:
    """A self-signed RSA certificate and its key in one PEM file at ``path`` (mode 0600). ``passphrase``
    encrypts the key; ``key_only`` leaves the certificate out of the file (it is still returned)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + valid_for)
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key_pem if key_only else key_pem + certificate_pem)
    path.chmod(0o600)
    sha1 = certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 -- Entra's thumbprint
    return AppCertificate(path, certificate_pem.decode("ascii"), sha1)
