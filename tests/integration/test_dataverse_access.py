"""End to end on a real Kafka, with Dataverse reached as tenants that forbid secrets and direct internet
access reach it: `cdc sync` and the poller authenticate with the app's certificate, through an
authenticating proxy, and a contact still flows both ways. And a privilege taken from the app user at run
time pauses the writes it is needed for (Dataverse's 403 is a system error: no dead letter, no lost
change) until a Dataverse admin gives it back."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from cdc.settings import ProxySettings
from tests.connect_proxy import running_proxy
from tests.integration.sync_stack import Stack, eventually, quiet, running_stack, small_config
from tests.integration.test_sync_flow import dv_contact, hs_contact
from tests.kafka_reading import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PASSWORD = "e2e-proxy-pa55"


async def dv_with(stack: Stack, email: str, **values: str) -> dict[str, Any] | None:
    """The Dataverse contact of ``email`` once it holds ``values``, else None."""
    row = await dv_contact(stack, email)
    return row if row and all(row.get(k) == v for k, v in values.items()) else None


async def hs_with(stack: Stack, email: str, **values: str) -> dict[str, Any] | None:
    """The HubSpot contact of ``email`` once it holds ``values``, else None."""
    found = await hs_contact(stack, email)
    return found if found and all(found.get(k) == v for k, v in values.items()) else None


async def test_a_sync_authenticated_by_certificate_through_a_proxy_moves_a_contact_both_ways(
    kafka_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_proxy("cdc", PASSWORD) as proxy:
        settings = ProxySettings(url=proxy.url, username="cdc", password=SecretStr(PASSWORD))
        async with running_stack(kafka_settings, small_config(), certificate=True, proxy=settings) as stack:
            assert stack.settings.dataverse.client_secret is None
            stack.box.dataverse.issuer.secret_revoked = True  # only the certificate can get a token now
            await stack.hs_create(
                "contacts", {"email": "cert@example.com", "firstname": "Cert", "lastname": "A"}
            )

            row = await eventually(
                lambda: dv_with(stack, "cert@example.com", lastname="A"), what="the contact in Dataverse"
            )
            await stack.dv_update("contact", row["contactid"], {"telephone1": "+1 555 0100"})
            await eventually(
                lambda: hs_with(stack, "cert@example.com", phone="+1 555 0100"),
                what="the Dataverse edit in HubSpot (the poller, through the proxy)",
            )
            port = urlsplit(stack.box.info.dataverse.base_url).port or 443
            tunnels = proxy.to(port)
    # Tunnels of both clients: msal's requests (urllib3 sends CONNECT without a User-Agent) for the tokens,
    # aiohttp ("Python/3.x aiohttp/...") for the Web API of the poller and the sync.
    assert {t.user_agent.split("/")[0] for t in tunnels} == {"", "Python"}
    assert proxy.refused == 0
    assert PASSWORD not in caplog.text


async def test_a_privilege_taken_at_run_time_pauses_the_writes_until_it_is_given_back(
    kafka_settings: Any,
) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        dataverse = stack.box.dataverse
        dataverse.privileges.change({"prvCreateContact": None}, dataverse.store.tables.values())
        await stack.hs_create("contacts", {"email": "later@example.com", "lastname": "Later"})

        async def paused() -> float:
            return float(stack.metrics.sync_paused.labels(system="dataverse")._value.get())

        await eventually(paused, what="the sync pausing on Dataverse's 403")
        assert await dv_contact(stack, "later@example.com") is None
        dataverse.privileges.reset()

        await eventually(
            lambda: dv_contact(stack, "later@example.com"),
            within=60,
            what="the contact once it may be created",
        )
        await quiet(stack)
    assert await read_topic(kafka_settings, "deadletter") == []
