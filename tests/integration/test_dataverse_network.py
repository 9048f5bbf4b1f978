"""The daemon's Dataverse clients on a network that lets out only a proxy: msal's token requests and the Web
API calls both go through the configured proxy (a local CONNECT proxy counts the tunnels), with Basic proxy
credentials that never reach a log line; a refused credential is one clear error; ``trust_env`` follows
``HTTPS_PROXY`` and ``NO_PROXY``. And the app authenticates with a certificate instead of a secret.

aiohttp tunnels HTTPS through an HTTP proxy with CONNECT (aiohttp docs, "Proxy support"); requests does
the same for the ``https`` entry of a session's ``proxies`` (requests docs, "Proxies"); msal sends every
request through the ``http_client`` it is given (fact sheet §6.4).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from cdc.dataverse import DataverseClient, TokenProvider
from cdc.dataverse.auth import DataverseAuthError
from cdc.dataverse.errors import FatalError, RetriableError
from cdc.metrics import Metrics
from cdc.sandbox.runner import Sandbox, run_sandbox
from cdc.sandbox.tls import make_app_certificate
from cdc.settings import DataverseSettings, ProxySettings
from streams.config import KafkaSettings
from tests.connect_proxy import ConnectProxy, running_proxy

PASSWORD = "pr0xy-S3cret/with:odd@chars"
E = TypeVar("E", bound=Exception)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable and no CA bundle variable of the machine running the tests applies here."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with run_sandbox(seed=21) as sandbox:
        yield sandbox


def dataverse_settings(box: Sandbox, **changes: Any) -> DataverseSettings:
    settings = box.daemon_settings(KafkaSettings(), certificate=True).dataverse
    return settings.model_copy(update=changes)


async def who_am_i(settings: DataverseSettings, proxy: ConnectProxy | None = None) -> tuple[int, int]:
    """Token, then WhoAmI: the tunnels to the org opened by each step (through ``proxy``)."""
    port = urlsplit(settings.base_url).port or 443
    tokens = TokenProvider(settings)
    client = DataverseClient(settings, tokens, Metrics(CollectorRegistry()))
    try:
        await tokens.token()
        after_token = len(proxy.to(port)) if proxy else 0
        await client.start()
        answer = await client.get_json(f"{client.api_root}/WhoAmI", endpoint="whoami")
        assert set(answer) >= {"UserId", "OrganizationId"}
        after_api = len(proxy.to(port)) if proxy else 0
    finally:
        await client.close()
        tokens.close()
    return after_token, after_api - after_token


async def token_error(settings: DataverseSettings, kind: type[E]) -> E:
    """The error a token request with ``settings`` ends in (it must end in one of ``kind``)."""
    tokens = TokenProvider(settings)
    try:
        with pytest.raises(kind) as raised:
            await tokens.token()
    finally:
        tokens.close()
    return raised.value


async def test_the_token_and_the_web_api_go_through_the_proxy_with_its_credentials(
    box: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_proxy("cdc", PASSWORD) as proxy:
        settings = dataverse_settings(
            box, proxy=ProxySettings(url=proxy.url, username="cdc", password=SecretStr(PASSWORD))
        )
        token_tunnels, api_tunnels = await who_am_i(settings, proxy)
    # msal's discovery and token requests (requests), then the Web API (aiohttp): each through a tunnel.
    assert token_tunnels >= 1
    assert api_tunnels >= 1
    # urllib3 (msal's requests) sends CONNECT without a User-Agent; aiohttp sends "Python/3.x aiohttp/...".
    assert {t.user_agent.split("/")[0] for t in proxy.tunnels} == {"", "Python"}
    assert proxy.refused == 0
    assert PASSWORD not in caplog.text


async def test_wrong_proxy_credentials_are_one_clear_error_without_the_password(
    box: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_proxy("cdc", "the-right-one") as proxy:
        settings = dataverse_settings(
            box, proxy=ProxySettings(url=proxy.url, username="cdc", password=SecretStr(PASSWORD))
        )
        refused = await token_error(settings, DataverseAuthError)
        # The Web API client, with a token got directly, meets the same proxy.
        direct = TokenProvider(dataverse_settings(box))
        client = DataverseClient(settings, direct, Metrics(CollectorRegistry()))
        await client.start()
        try:
            with pytest.raises(FatalError) as api_refused:
                await client.get_json(f"{client.api_root}/WhoAmI", endpoint="whoami")
        finally:
            await client.close()
            direct.close()
    for error in (refused, api_refused.value):
        assert f"proxy {proxy.url} refused the proxy credentials (407" in str(error)
        assert PASSWORD not in str(error)
    assert api_refused.value.status == 0  # the gateway pauses on it, as on refused auth
    assert proxy.refused >= 2
    assert proxy.tunnels == []
    assert PASSWORD not in caplog.text


async def test_trust_env_uses_https_proxy_unless_no_proxy_names_the_host(
    box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        through = await who_am_i(dataverse_settings(box, trust_env=True), proxy)
        assert through[0] >= 1
        assert through[1] >= 1
        before = len(proxy.tunnels)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        await who_am_i(dataverse_settings(box, trust_env=True), proxy)
        assert len(proxy.tunnels) == before  # both went direct
        # Without trust_env the variables are not read at all.
        monkeypatch.delenv("NO_PROXY")
        await who_am_i(dataverse_settings(box), proxy)
        assert len(proxy.tunnels) == before


async def test_a_proxy_that_is_down_is_an_outage_to_wait_out_not_a_refusal(box: Sandbox) -> None:
    """Nothing listens at the proxy's address: the token request fails as retriable (the identity
    provider is out of reach), never as a refused credential."""
    async with running_proxy() as proxy:
        url = proxy.url
    unreachable = await token_error(dataverse_settings(box, proxy=ProxySettings(url=url)), RetriableError)
    assert f"through proxy {url}" in str(unreachable)


async def test_a_certificate_the_app_registration_does_not_know_is_refused_naming_the_code(
    box: Sandbox, tmp_path: Path
) -> None:
    """A certificate that is valid but not uploaded to the app registration: the token request is refused
    (AADSTS700027), a configuration error, not an outage."""
    stranger = make_app_certificate(tmp_path / "stranger.pem")
    refused = await token_error(
        dataverse_settings(box, client_certificate_path=stranger.pem), DataverseAuthError
    )
    assert "invalid_client: AADSTS700027: The certificate with identifier used to sign the client" in str(
        refused
    )
