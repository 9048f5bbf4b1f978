"""A throwaway local CA and server certificate, so the sandbox can serve HTTPS.

msal refuses authorities that are not https, so the Dataverse emulator (and its token endpoint) serve
TLS with a certificate from this CA; clients trust ``ca_bundle`` (msal's ``verify=``, aiohttp's SSL context).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


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
