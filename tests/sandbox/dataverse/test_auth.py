"""Auth (fact sheet §6): msal's own client-credentials flow against the emulator over HTTPS, and the
401s the Web API gives without a valid bearer token."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import msal  # type: ignore[import-untyped]  # msal ships no type information
import pytest

from cdc.sandbox.dataverse import DataverseSandbox
from cdc.sandbox.tls import make_local_tls
from cdc.serving import serve
from tests.sandbox.dataverse.support import ORG


def _msal_token(authority: str, client_id: str, secret: str, scope: str, ca: str) -> dict[str, Any]:
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=authority,
        instance_discovery=False,
        verify=ca,
        azure_region=False,
    )
    try:
        first: dict[str, Any] = app.acquire_token_for_client(scopes=[scope])
        second: dict[str, Any] = app.acquire_token_for_client(scopes=[scope])
    finally:
        app.http_client.close()  # its requests.Session keeps a connection to the server open
    return {"first": first, "second": second}


@pytest.fixture(autouse=True)
def _no_ca_bundle_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the session's ``verify`` (msal's
    ``verify=``), so a machine-wide bundle would hide the sandbox CA: run as on a clean host."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


async def test_msal_gets_a_token_over_https_and_the_token_works(tmp_path: Path) -> None:
    sandbox = DataverseSandbox(seed=3)
    tls = make_local_tls(tmp_path / "tls")
    async with serve(sandbox.app, tls=tls, name="dataverse-test") as served:
        org = served.base_url
        result = await asyncio.to_thread(
            _msal_token,
            f"{org}/{sandbox.tenant_id}",
            sandbox.client_id,
            sandbox.client_secret,
            f"{org}/.default",
            str(tls.ca_bundle),
        )
        first, second = result["first"], result["second"]
        assert "access_token" in first, first
        assert first["token_type"] == "Bearer"
        assert first["token_source"] == "identity_provider"
        assert second["token_source"] == "cache"
        ssl_context = ssl.create_default_context(cafile=str(tls.ca_bundle))
        headers = {"Authorization": f"Bearer {first['access_token']}", "Accept": "application/json"}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context)) as session:
            async with session.get(f"{org}/api/data/v9.2/WhoAmI", headers=headers) as response:
                assert response.status == 200
                body = await response.json()
                assert set(body) >= {"BusinessUnitId", "UserId", "OrganizationId"}
            async with session.get(f"{org}/api/data/v9.2/contacts", headers={}) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


async def test_msal_reports_a_wrong_secret_as_an_error_dict(tmp_path: Path) -> None:
    sandbox = DataverseSandbox(seed=4)
    tls = make_local_tls(tmp_path / "tls")
    async with serve(sandbox.app, tls=tls, name="dataverse-test") as served:
        org = served.base_url
        result = await asyncio.to_thread(
            _msal_token,
            f"{org}/{sandbox.tenant_id}",
            sandbox.client_id,
            "wrong",
            f"{org}/.default",
            str(tls.ca_bundle),
        )
    assert result["first"]["error"] == "invalid_client"
    assert "AADSTS7000215" in result["first"]["error_description"]


async def test_token_endpoint_speaks_the_entra_contract(sandbox: DataverseSandbox) -> None:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=ORG) as http:
        discovery = (await http.get(f"/{sandbox.tenant_id}/v2.0/.well-known/openid-configuration")).json()
        assert discovery["token_endpoint"] == f"{ORG}/{sandbox.tenant_id}/oauth2/v2.0/token"
        assert "authorization_endpoint" in discovery
        form = {
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "scope": f"{ORG}/.default",
        }
        ok = await http.post(discovery["token_endpoint"], data=form)
        assert ok.status_code == 200
        assert set(ok.json()) >= {"token_type", "expires_in", "access_token"}
        assert ok.json()["expires_in"] == 3599
        bad_scope = await http.post(
            discovery["token_endpoint"], data={**form, "scope": "https://other/.default"}
        )
        assert bad_scope.status_code == 400
        assert bad_scope.json()["error"] == "invalid_scope"
        assert bad_scope.json()["error_codes"] == [70011]
        bad_grant = await http.post(discovery["token_endpoint"], data={**form, "grant_type": "password"})
        assert bad_grant.json()["error"] == "unsupported_grant_type"


async def test_requests_without_a_valid_token_get_401(
    client: httpx.AsyncClient, sandbox: DataverseSandbox
) -> None:
    assert (await client.get("/api/data/v9.2/contacts")).status_code == 200
    no_token = await client.get("/api/data/v9.2/contacts", headers={"Authorization": ""})
    assert no_token.status_code == 401
    forged = await client.get("/api/data/v9.2/contacts", headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401
    sandbox.clock.advance(3600)
    expired = await client.get("/api/data/v9.2/contacts")
    assert expired.status_code == 401
    assert expired.json() == {"error": {"code": "0x80041d52", "message": "The OAuth token has expired"}}
    assert sandbox.calls.snapshot()["by_status"]["401"] == 3


async def test_a_token_is_bound_to_its_org(sandbox: DataverseSandbox) -> None:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=ORG) as http:
        token = (await http.post("/_admin/token")).json()["access_token"]
    async with httpx.AsyncClient(transport=transport, base_url="https://other.test") as other:
        response = await other.get("/api/data/v9.2/contacts", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_a_revoked_secret_is_refused_until_restored_and_issued_tokens_run_out_on_their_own(
    tmp_path: Path,
) -> None:
    """`/_admin/secret/revoke`: the token endpoint refuses the secret; a token issued before keeps working
    until it expires on the sandbox clock. `/_admin/secret/restore` makes the secret good again."""
    sandbox = DataverseSandbox(seed=5)
    tls = make_local_tls(tmp_path / "tls")
    async with serve(sandbox.app, tls=tls, name="dataverse-test") as served:
        org = served.base_url
        ssl_context = ssl.create_default_context(cafile=str(tls.ca_bundle))

        async def token() -> dict[str, Any]:
            result = await asyncio.to_thread(
                _msal_token,
                f"{org}/{sandbox.tenant_id}",
                sandbox.client_id,
                sandbox.client_secret,
                f"{org}/.default",
                str(tls.ca_bundle),
            )
            first: dict[str, Any] = result["first"]
            return first

        async with httpx.AsyncClient(base_url=org, verify=ssl_context) as http:
            issued = (await token())["access_token"]
            assert (await http.post("/_admin/secret/revoke")).json() == {"revoked": True}
            refused = await token()
            assert refused["error"] == "invalid_client"
            assert "AADSTS7000215" in refused["error_description"]
            bearer = {"Authorization": f"Bearer {issued}"}
            assert (await http.get("/api/data/v9.2/WhoAmI", headers=bearer)).status_code == 200
            await http.post("/_admin/clock/advance", json={"seconds": 3600})
            assert (await http.get("/api/data/v9.2/WhoAmI", headers=bearer)).status_code == 401
            assert (await http.post("/_admin/secret/restore")).json() == {"revoked": False}
            assert "access_token" in await token()
