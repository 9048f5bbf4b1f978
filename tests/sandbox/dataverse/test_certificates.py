"""Certificate credentials at the emulated token endpoint: msal's own assertions are taken over HTTPS, and
every assertion Entra ID would refuse is refused with its ``invalid_client`` body and AADSTS code.

The assertion format is Entra's (Learn, entra/identity-platform/certificate-credentials): header ``alg``,
``typ`` and ``x5t#S256`` (or ``x5t``); claims ``aud`` = the tenant's v2 token endpoint, ``iss`` = ``sub``
= the client id, ``exp``, ``nbf``, ``jti``. The assertions below are built by hand with ``cryptography``,
not with the emulator's code; the codes are those the emulator's module docstring cites.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msal  # type: ignore[import-untyped]  # msal ships no type information
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cdc.sandbox.dataverse import DataverseSandbox
from cdc.sandbox.tls import AppCertificate, make_app_certificate, make_local_tls
from cdc.serving import serve
from tests.sandbox.dataverse.support import ORG

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(autouse=True)
def _no_ca_bundle_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets these override msal's ``verify=``: run as on a clean host."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _pieces(path: Path) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    blob = path.read_bytes()
    key = serialization.load_pem_private_key(blob, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key, x509.load_pem_x509_certificate(blob)


def assertion(
    path: Path,
    *,
    client_id: str,
    aud: str,
    alg: str = "PS256",
    claims: dict[str, Any] | None = None,
    signer: Path | None = None,
) -> str:
    """A client assertion for the certificate at ``path``, signed by ``signer``'s key (default: its own)."""
    key, certificate = _pieces(path)
    if signer is not None:
        key, _ = _pieces(signer)
    der = certificate.public_bytes(serialization.Encoding.DER)
    header = {"alg": alg, "typ": "JWT", "x5t#S256": _b64(hashlib.sha256(der).digest())}
    now = int(time.time())
    body = {"aud": aud, "iss": client_id, "sub": client_id, "exp": now + 600, "nbf": now, "iat": now}
    body |= {"jti": str(uuid.uuid4()), **(claims or {})}
    signed = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(body))}".encode()
    if alg == "PS256":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signature = key.sign(signed, pss, hashes.SHA256())
    else:
        signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    return f"{signed.decode()}.{_b64(signature)}"


def _msal(sandbox: DataverseSandbox, org: str, ca: str, credential: dict[str, str]) -> dict[str, Any]:
    app = msal.ConfidentialClientApplication(
        sandbox.client_id,
        client_credential=credential,
        authority=f"{org}/{sandbox.tenant_id}",
        instance_discovery=False,
        verify=ca,
        azure_region=False,
    )
    try:
        result: dict[str, Any] = app.acquire_token_for_client(scopes=[f"{org}/.default"])
    finally:
        app.http_client.close()
    return result


async def test_msal_signs_with_a_registered_certificate_and_the_token_works(tmp_path: Path) -> None:
    """Both of msal's forms: the certificate in the PEM (PS256, ``x5t#S256``) and the key alone with the
    SHA-1 thumbprint the portal shows (RS256, ``x5t``)."""
    sandbox = DataverseSandbox(seed=3)
    registered = make_app_certificate(tmp_path / "app.pem")
    key_only = make_app_certificate(tmp_path / "key.pem", key_only=True)
    admin = httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=ORG)
    async with admin:
        for certificate in (registered, key_only):
            answer = await admin.post(
                "/_admin/app/certificates", json={"certificate": certificate.certificate_pem}
            )
            assert answer.status_code == 201
            assert answer.json()["thumbprint"] == certificate.sha1
    tls = make_local_tls(tmp_path / "tls")
    async with serve(sandbox.app, tls=tls, name="dataverse-test") as served:
        org, ca = served.base_url, str(tls.ca_bundle)
        pem = registered.pem.read_text()
        by_pem = await asyncio.to_thread(
            _msal, sandbox, org, ca, {"private_key": pem, "public_certificate": pem}
        )
        by_thumbprint = await asyncio.to_thread(
            _msal, sandbox, org, ca, {"private_key": key_only.pem.read_text(), "thumbprint": key_only.sha1}
        )
        async with httpx.AsyncClient(base_url=org, verify=tls.client_context()) as http:
            for result in (by_pem, by_thumbprint):
                assert "access_token" in result, result
                bearer = {"Authorization": f"Bearer {result['access_token']}"}
                assert (await http.get("/api/data/v9.2/WhoAmI", headers=bearer)).status_code == 200


async def test_a_certificate_not_registered_or_removed_is_refused(tmp_path: Path) -> None:
    sandbox = DataverseSandbox(seed=4)
    certificate = make_app_certificate(tmp_path / "app.pem")
    stranger = make_app_certificate(tmp_path / "stranger.pem")
    sandbox.issuer.certificates.add(certificate.certificate_pem)
    tls = make_local_tls(tmp_path / "tls")
    async with serve(sandbox.app, tls=tls, name="dataverse-test") as served:
        org, ca = served.base_url, str(tls.ca_bundle)

        def with_(cert: AppCertificate) -> dict[str, Any]:
            pem = cert.pem.read_text()
            return _msal(sandbox, org, ca, {"private_key": pem, "public_certificate": pem})

        refused = await asyncio.to_thread(with_, stranger)
        assert refused["error"] == "invalid_client"
        assert refused["error_codes"] == [700027]
        assert "is not registered on application" in refused["error_description"]
        assert "access_token" in await asyncio.to_thread(with_, certificate)
        async with httpx.AsyncClient(base_url=org, verify=tls.client_context()) as admin:
            assert (await admin.delete(f"/_admin/app/certificates/{certificate.sha1}")).status_code == 204
            assert (await admin.get("/_admin/app/certificates")).json() == {"value": []}
        removed = await asyncio.to_thread(with_, certificate)  # a new app object: no cached token
        assert removed["error_codes"] == [700027]


def _form(sandbox: DataverseSandbox, client_assertion: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": sandbox.client_id,
        "scope": f"{ORG}/.default",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": client_assertion,
    }


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("audience of another tenant", 700023),
        ("issuer is not the client", 700021),
        ("subject is not the issuer", 50048),
        ("expired", 700024),
        ("not yet valid", 700024),
        ("signed by another key", 700027),
        ("RS256 header, PS256 signature", 700027),
        ("alg none", 700027),
        ("not a JWT", 50027),
        ("no exp", 50027),
    ],
)
async def test_an_assertion_entra_refuses_is_refused_with_its_code(
    tmp_path: Path, case: str, code: int
) -> None:
    sandbox = DataverseSandbox(seed=5)
    certificate = make_app_certificate(tmp_path / "app.pem")
    other = make_app_certificate(tmp_path / "other.pem")
    sandbox.issuer.certificates.add(certificate.certificate_pem)
    token_endpoint = f"{ORG}/{sandbox.tenant_id}/oauth2/v2.0/token"
    client = sandbox.client_id
    now = int(time.time())
    made: dict[str, Callable[[], str]] = {
        "audience of another tenant": lambda: assertion(
            certificate.pem, client_id=client, aud=f"{ORG}/{uuid.uuid4()}/oauth2/v2.0/token"
        ),
        "issuer is not the client": lambda: assertion(
            certificate.pem, client_id=str(uuid.uuid4()), aud=token_endpoint
        ),
        "subject is not the issuer": lambda: assertion(
            certificate.pem, client_id=client, aud=token_endpoint, claims={"sub": "someone"}
        ),
        "expired": lambda: assertion(
            certificate.pem, client_id=client, aud=token_endpoint, claims={"exp": now - 3600}
        ),
        "not yet valid": lambda: assertion(
            certificate.pem, client_id=client, aud=token_endpoint, claims={"nbf": now + 3600}
        ),
        "signed by another key": lambda: assertion(
            certificate.pem, client_id=client, aud=token_endpoint, signer=other.pem
        ),
        "RS256 header, PS256 signature": lambda: _reheaded(
            assertion(certificate.pem, client_id=client, aud=token_endpoint), alg="RS256"
        ),
        "alg none": lambda: _reheaded(
            assertion(certificate.pem, client_id=client, aud=token_endpoint), alg="none", signature=""
        ),
        "not a JWT": lambda: "not-a-jwt",
        "no exp": lambda: assertion(
            certificate.pem, client_id=client, aud=token_endpoint, claims={"exp": None}
        ),
    }
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=ORG) as http:
        answer = await http.post(f"/{sandbox.tenant_id}/oauth2/v2.0/token", data=_form(sandbox, made[case]()))
        good = await http.post(
            f"/{sandbox.tenant_id}/oauth2/v2.0/token",
            data=_form(sandbox, assertion(certificate.pem, client_id=client, aud=token_endpoint)),
        )
    assert answer.status_code == 401, answer.text
    body = answer.json()
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert good.status_code == 200, good.text


def _reheaded(jwt: str, *, alg: str, signature: str | None = None) -> str:
    """``jwt`` with another ``alg`` in its header (and another signature, when given)."""
    encoded, body, signed = jwt.split(".")
    header = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    return ".".join(
        [_b64(orjson.dumps({**header, "alg": alg})), body, signed if signature is None else signature]
    )


async def test_a_request_with_neither_secret_nor_assertion_or_another_assertion_type_is_refused(
    sandbox: DataverseSandbox,
) -> None:
    transport = httpx.ASGITransport(app=sandbox.app)
    url = f"/{sandbox.tenant_id}/oauth2/v2.0/token"
    bare = {"grant_type": "client_credentials", "client_id": sandbox.client_id, "scope": f"{ORG}/.default"}
    async with httpx.AsyncClient(transport=transport, base_url=ORG) as http:
        nothing = await http.post(url, data=bare)
        saml = await http.post(
            url,
            data={
                **bare,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                "client_assertion": "x",
            },
        )
    assert nothing.status_code == 401
    assert nothing.json()["error_codes"] == [7000218]
    assert saml.status_code == 400
    assert saml.json()["error"] == "invalid_request"


async def test_only_rsa_certificates_can_be_registered(sandbox: DataverseSandbox) -> None:
    """Entra signs and checks assertions with RSA (PS256, RS256) only: an EC certificate is refused at
    upload, as a 400 of the admin API."""
    import trustme  # noqa: PLC0415 -- makes EC certificates by default

    ec = trustme.CA().issue_cert("app.example").cert_chain_pems[0].bytes().decode()
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=ORG) as http:
        answer = await http.post("/_admin/app/certificates", json={"certificate": ec})
    assert answer.status_code == 400
    assert "RSA" in answer.json()["error"]
