"""Run both emulators on loopback: HubSpot over HTTP, Dataverse (and its token endpoint) over HTTPS.

`run_sandbox()` is what `cdc sandbox`, the demo, the end-to-end tests and the benchmarks use; its
:meth:`Sandbox.daemon_settings` is the daemon's configuration against them: a HubSpot project app with OAuth
by default, whose access tokens last ``TOKEN_LIFETIME_S`` (HubSpot's last 30 minutes), so that every run
sees them renewed; the static token is a setting away. The two emulators share one clock, so advancing it
(token expiry, rate windows) moves both.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from cdc.sandbox.clock import Clock
from cdc.sandbox.dataverse.app import DataverseSandbox
from cdc.sandbox.hubspot.app import HubSpotSandbox
from cdc.sandbox.tls import make_app_certificate, make_local_tls
from cdc.serving import serve
from cdc.settings import (
    DataverseSettings,
    HubSpotApiVersion,
    HubSpotAuthSettings,
    HubSpotSettings,
    IngestSettings,
    PollSettings,
    Settings,
)
from streams.config import KafkaSettings

TOKEN_LIFETIME_S = 15.0
"""How long the sandbox's OAuth access tokens last unless told otherwise: a test's run sees one renewed."""
HubSpotAuth = Literal["static", "oauth"]


@dataclass(frozen=True)
class HubSpotInfo:
    base_url: str
    token: str
    app_id: int
    client_secret: str
    portal_id: int
    app_kind: Literal["project", "legacy"] = "project"
    developer_api_key: str | None = None
    """A legacy public app's (``app_kind="legacy"``): what manages its webhook subscriptions."""
    client_id: str = ""
    refresh_token: str = ""
    """The OAuth app's client id and its installation's refresh token."""
    access_token_lifetime_s: float = TOKEN_LIFETIME_S


@dataclass(frozen=True)
class DataverseInfo:
    base_url: str
    authority: str
    tenant_id: str
    client_id: str
    client_secret: str
    scope: str
    ca_bundle: str
    client_certificate: str
    """A PEM file (key and certificate) registered for the app: ``dataverse.client_certificate_path``."""


@dataclass(frozen=True)
class SandboxInfo:
    """Where the emulators listen and the credentials they accept: what the daemon's settings need."""

    hubspot: HubSpotInfo
    dataverse: DataverseInfo

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Sandbox:
    hubspot: HubSpotSandbox
    dataverse: DataverseSandbox
    info: SandboxInfo
    clock: Clock

    def daemon_settings(
        self,
        kafka: KafkaSettings,
        *,
        ingest: IngestSettings | None = None,
        poll: PollSettings | None = None,
        certificate: bool = False,
        api_version: HubSpotApiVersion = "2026-09",
        hubspot_auth: HubSpotAuth = "oauth",
    ) -> Settings:
        """Settings for `cdc ingest` and `cdc poll` against these emulators, on ``kafka``.

        Every credential the emulators accept is filled in (HubSpot app, client secret, portal, app kind
        and a legacy app's developer API key, and its OAuth client id and refresh token, or with
        ``hubspot_auth="static"`` the portal's static token; Dataverse org, tenant, client, secret,
        authority, scope and CA bundle; with ``certificate``, the app's certificate instead of its secret).
        ``ingest`` and ``poll`` default to the standard settings on free ports (``port=0``); a caller
        passing its own chooses. The daemon speaks HubSpot's ``api_version`` (the emulator serves each).
        """
        hub, dv = self.info.hubspot, self.info.dataverse
        auth: dict[str, Any] = (
            {"token": SecretStr(hub.token)}
            if hubspot_auth == "static"
            else {
                "auth": HubSpotAuthSettings(
                    kind="oauth", client_id=hub.client_id, refresh_token=SecretStr(hub.refresh_token)
                )
            }
        )
        credential: dict[str, Any] = (
            {"client_certificate_path": Path(dv.client_certificate)}
            if certificate
            else {"client_secret": SecretStr(dv.client_secret)}
        )
        return Settings(
            kafka=kafka,
            hubspot=HubSpotSettings(
                base_url=hub.base_url,
                **auth,
                app_id=hub.app_id,
                client_secret=SecretStr(hub.client_secret),
                portal_id=str(hub.portal_id),
                api_version=api_version,
                app_kind=hub.app_kind,
                developer_api_key=SecretStr(hub.developer_api_key) if hub.developer_api_key else None,
            ),
            dataverse=DataverseSettings(
                base_url=dv.base_url,
                tenant_id=dv.tenant_id,
                client_id=dv.client_id,
                authority=dv.authority,
                scope=dv.scope,
                ca_bundle=Path(dv.ca_bundle),
                **credential,
            ),
            ingest=ingest or IngestSettings(port=0),
            poll=poll or PollSettings(port=0),
        )


@contextlib.asynccontextmanager
async def run_sandbox(
    *,
    host: str = "127.0.0.1",
    hubspot_port: int = 0,
    dataverse_port: int = 0,
    webhook_url: str | None = None,
    seed: int = 0,
    state_dir: Path | None = None,
    hubspot_app_kind: Literal["project", "legacy"] = "project",
    hubspot_token_lifetime_s: float = TOKEN_LIFETIME_S,
) -> AsyncIterator[Sandbox]:
    """Serve both emulators until the block ends. ``state_dir`` keeps the CA bundle; else a temp dir.
    ``hubspot_app_kind``: the HubSpot app is a project app, or a legacy public app (`HubSpotSandbox`);
    ``hubspot_token_lifetime_s``: how long its OAuth access tokens last."""
    clock = Clock()
    hubspot = HubSpotSandbox(
        seed=seed,
        clock=clock,
        webhook_url=webhook_url,
        app_kind=hubspot_app_kind,
        access_token_lifetime_s=hubspot_token_lifetime_s,
    )
    dataverse = DataverseSandbox(seed=seed, clock=clock)
    with contextlib.ExitStack() as stack:
        directory = state_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cdc-sandbox-")))
        tls = make_local_tls(directory / "tls")
        app_certificate = make_app_certificate(directory / "tls" / "app.pem")
        dataverse.issuer.certificates.add(app_certificate.certificate_pem)
        async with (
            serve(hubspot.app, host=host, port=hubspot_port, name="hubspot") as hubspot_served,
            serve(
                dataverse.app, host=host, port=dataverse_port, tls=tls, name="dataverse"
            ) as dataverse_served,
        ):
            org = dataverse_served.base_url
            info = SandboxInfo(
                hubspot=HubSpotInfo(
                    base_url=hubspot_served.base_url,
                    token=hubspot.token,
                    app_id=hubspot.app_id,
                    client_secret=hubspot.client_secret,
                    portal_id=hubspot.portal_id,
                    app_kind=hubspot.app_kind,
                    developer_api_key=hubspot.developer_api_key,
                    client_id=hubspot.oauth.client_id,
                    refresh_token=hubspot.oauth.refresh_token,
                    access_token_lifetime_s=hubspot.oauth.lifetime_s,
                ),
                dataverse=DataverseInfo(
                    base_url=org,
                    authority=f"{org}/{dataverse.tenant_id}",
                    tenant_id=dataverse.tenant_id,
                    client_id=dataverse.client_id,
                    client_secret=dataverse.client_secret,
                    scope=f"{org}/.default",
                    ca_bundle=str(tls.ca_bundle),
                    client_certificate=str(app_certificate.pem),
                ),
            )
            yield Sandbox(hubspot=hubspot, dataverse=dataverse, info=info, clock=clock)
