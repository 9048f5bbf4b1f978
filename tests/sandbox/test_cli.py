"""`cdc sandbox --json` serves both emulators and prints credentials that work with the real clients."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import msal  # type: ignore[import-untyped]  # msal ships no type information
import orjson
import pytest


def msal_token(info: dict[str, Any], credential: str | dict[str, str] | None = None) -> dict[str, Any]:
    app = msal.ConfidentialClientApplication(
        info["client_id"],
        client_credential=credential or info["client_secret"],
        authority=info["authority"],
        instance_discovery=False,
        verify=info["ca_bundle"],
    )
    try:
        result: dict[str, Any] = app.acquire_token_for_client(scopes=[info["scope"]])
    finally:
        app.http_client.close()
    return result


@pytest.mark.slow
def test_cdc_sandbox_json_prints_one_line_of_working_urls_and_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # requests lets these override msal's verify=; the daemon's own client passes the CA explicitly.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with subprocess.Popen(
        [sys.executable, "-m", "cdc", "sandbox", "--json", "--seed", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("CDC_")},
    ) as process:
        try:
            assert process.stdout is not None
            info = orjson.loads(process.stdout.readline())
            hub, dv = info["hubspot"], info["dataverse"]
            assert set(hub) >= {"base_url", "token", "app_id", "client_secret"}
            assert set(dv) == {
                "base_url",
                "authority",
                "tenant_id",
                "client_id",
                "client_secret",
                "scope",
                "ca_bundle",
                "client_certificate",
            }

            with httpx.Client(base_url=hub["base_url"]) as client:
                authorized = client.get(
                    "/crm/objects/2026-09/contacts", headers={"Authorization": f"Bearer {hub['token']}"}
                )
                assert authorized.status_code == 200
                assert authorized.json()["results"] == []
                assert client.get("/crm/objects/2026-09/contacts").status_code == 401

            token = msal_token(dv)
            assert "access_token" in token, token
            # The printed certificate is registered for the app: msal signs an assertion with it.
            pem = Path(dv["client_certificate"]).read_text()
            by_certificate = msal_token(dv, {"private_key": pem, "public_certificate": pem})
            assert "access_token" in by_certificate, by_certificate
            with httpx.Client(verify=ssl.create_default_context(cafile=dv["ca_bundle"])) as client:
                rows = client.get(
                    f"{dv['base_url']}/api/data/v9.2/contacts",
                    headers={"Authorization": f"Bearer {token['access_token']}"},
                )
                assert rows.status_code == 200
                assert rows.json()["value"] == []
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(30)
    assert code == 0


@pytest.mark.slow
def test_cdc_sandbox_prints_what_cdc_ingest_needs_to_take_its_webhooks() -> None:
    """The plain output names the portal and the client secret too: `cdc ingest` refuses to start without
    the portal, and checks every webhook's signature with the secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDC_")}
    with subprocess.Popen(
        [sys.executable, "-m", "cdc", "sandbox", "--seed", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as process:
        try:
            assert process.stdout is not None
            printed = "".join(process.stdout.readline() for _ in range(4))
        finally:
            process.send_signal(signal.SIGINT)
    assert "portal " in printed
    assert "client secret " in printed
    assert "token " in printed
