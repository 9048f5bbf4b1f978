"""Which proxy Dataverse requests take: the setting, else (``trust_env``) ``HTTPS_PROXY`` unless
``NO_PROXY`` names the host, else none; credentials never in what is shown."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from cdc.dataverse.proxy import ProxyError, ProxyRoute, proxy_for
from cdc.settings import DataverseSettings, ProxySettings

ORG = "https://contoso.crm.dynamics.com"
LOGIN = "https://login.microsoftonline.com/tenant"


def test_the_setting_wins_for_every_url_and_carries_its_credentials() -> None:
    settings = DataverseSettings(
        proxy=ProxySettings(url="http://proxy.corp:3128", username="svc cdc", password=SecretStr("p@ss:w/rd"))
    )
    for url in (ORG, LOGIN):
        route = proxy_for(url, settings, {"NO_PROXY": "*"})
        assert route is not None
        assert str(route) == "http://proxy.corp:3128"
        assert route.with_credentials() == "http://svc%20cdc:p%40ss%3Aw%2Frd@proxy.corp:3128"
        assert "p@ss" not in repr(route)


def test_no_setting_and_no_trust_env_is_direct_whatever_the_environment() -> None:
    assert proxy_for(ORG, DataverseSettings(), {"HTTPS_PROXY": "http://proxy:3128"}) is None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"HTTPS_PROXY": "http://proxy:3128"}, "http://proxy:3128"),
        ({"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"}, "http://lower:1"),
        ({"HTTPS_PROXY": "proxy.corp:8080"}, "http://proxy.corp:8080"),  # curl: no scheme is http
        ({"HTTP_PROXY": "http://proxy:3128"}, None),  # only HTTPS_PROXY applies to an https URL
        ({"ALL_PROXY": "http://proxy:3128"}, None),  # aiohttp ignores it; so do we
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "crm.dynamics.com"}, None),
        ({"HTTPS_PROXY": "http://proxy:3128", "no_proxy": ".dynamics.com,localhost"}, None),
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "*"}, None),
        ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "login.microsoftonline.com"}, "http://proxy:3128"),
        ({}, None),
    ],
)
def test_trust_env_reads_the_standard_variables(environ: dict[str, str], expected: str | None) -> None:
    route = proxy_for(ORG, DataverseSettings(trust_env=True), environ)
    assert (str(route) if route else None) == expected


def test_no_proxy_can_send_the_org_direct_and_the_token_endpoint_through_the_proxy() -> None:
    settings = DataverseSettings(trust_env=True)
    environ = {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "contoso.crm.dynamics.com"}
    assert proxy_for(ORG, settings, environ) is None
    assert str(proxy_for(LOGIN, settings, environ)) == "http://proxy:3128"


def test_credentials_in_the_variable_are_kept_apart() -> None:
    route = proxy_for(
        ORG, DataverseSettings(trust_env=True), {"HTTPS_PROXY": "http://me:s%3Acret@proxy:3128"}
    )
    assert route == ProxyRoute("http://proxy:3128", "me", SecretStr("s:cret"))
    assert str(route) == "http://proxy:3128"
    assert route.with_credentials() == "http://me:s%3Acret@proxy:3128"
    assert (
        route.scrub("failed: http://me:s%3Acret@proxy:3128 said s:cret")
        == "failed: http://me:***@proxy:3128 said ***"
    )


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("https://proxy:3128", "must name an HTTP proxy"),
        ("socks5://proxy:1080", "must name an HTTP proxy"),
        ("http://proxy:99999", "invalid port"),
    ],
)
def test_an_unusable_variable_is_an_error_naming_it(value: str, why: str) -> None:
    with pytest.raises(ProxyError, match=f"HTTPS_PROXY .*{why}|HTTPS_PROXY {why}"):
        proxy_for(ORG, DataverseSettings(trust_env=True), {"HTTPS_PROXY": value})


@pytest.mark.parametrize(
    ("proxy", "why"),
    [
        ({"url": "https://proxy:3128"}, "must be an http:// URL"),
        ({"url": "proxy:3128"}, "must be an http:// URL"),
        ({"url": "http://me:pw@proxy:3128"}, "must not carry credentials"),
        ({"url": "http://proxy:3128/path"}, "scheme, host and port only"),
        ({"url": "http://proxy:3128", "username": "me"}, "username and proxy.password together"),
    ],
)
def test_a_bad_proxy_setting_is_refused_at_load(proxy: dict[str, str], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        DataverseSettings.model_validate({"proxy": proxy})


def test_a_proxy_and_trust_env_together_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"set dataverse.proxy or dataverse.trust_env, not both"):
        DataverseSettings.model_validate({"proxy": {"url": "http://proxy:3128"}, "trust_env": True})
