"""The HubSpot token provider's decisions, with the token endpoint answered in-process: when a token is
renewed, that the role's tasks make one request between them, what a refusal says, and that no credential
reaches a message, a log line or a repr (`cdc.hubspot.tokens`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

import orjson
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from cdc.hubspot.errors import CredentialsRefusedError, RetriableError
from cdc.hubspot.tokens import REFUSAL_HOLD_S, OAuthTokens, StaticToken, renew_before, token_source
from cdc.metrics import Metrics
from cdc.settings import HubSpotAuthSettings, HubSpotSettings, SettingsError

REFRESH = "5f3e1f0a-8c2b-4e2e-9d51-2c1b8f0e7a11"
SECRET = "2b8a6c3d-1e4f-4a5b-8c9d-0e1f2a3b4c5d"
ACCESS = "CJDx-first-access-token-0123456789abcdefghijklmnopqrstuvwxyz"


def oauth_settings(version: str = "2026-09", **auth: object) -> HubSpotSettings:
    fields: dict[str, object] = {
        "kind": "oauth",
        "client_id": "client-1",
        "refresh_token": SecretStr(REFRESH),
    }
    fields.update(auth)
    return HubSpotSettings(
        base_url="https://api.hubapi.test",
        auth=HubSpotAuthSettings.model_validate(fields),
        client_secret=SecretStr(SECRET),
        api_version=version,  # type: ignore[arg-type]
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Endpoint:
    """The token endpoint: answers in turn (then the last again), records every form it was sent."""

    def __init__(self, *answers: tuple[int, Mapping[str, object]], gate: asyncio.Event | None = None) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.gate = gate

    async def __call__(self, url: str, form: Mapping[str, str]) -> tuple[int, bytes, Mapping[str, str]]:
        self.sent.append((url, dict(form)))
        if self.gate is not None:
            await self.gate.wait()
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return status, orjson.dumps(body), {}


def issued(token: str = ACCESS, expires_in: float = 1800) -> tuple[int, Mapping[str, object]]:
    return 200, {
        "access_token": token,
        "refresh_token": REFRESH,
        "expires_in": expires_in,
        "token_type": "bearer",
    }


BAD_REFRESH = (400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"})


def provider(endpoint: Endpoint, clock: Clock, settings: HubSpotSettings | None = None) -> OAuthTokens:
    return OAuthTokens(settings or oauth_settings(), Metrics(CollectorRegistry()), post=endpoint, now=clock)


def refused_gauge(tokens: OAuthTokens) -> float:
    value = tokens._metrics.registry.get_sample_value("cdc_hubspot_credentials_refused")
    assert value is not None
    return value


@pytest.mark.parametrize(("lifetime", "before"), [(1800, 300), (600, 120), (15, 3), (3, 0.6)])
def test_a_token_is_renewed_five_minutes_or_a_fifth_of_its_life_before_it_ends(
    lifetime: float, before: float
) -> None:
    assert renew_before(lifetime) == pytest.approx(before)


async def test_the_token_in_hand_is_sent_until_its_renewal_time_then_one_new_one_is_asked_for() -> None:
    clock, endpoint = Clock(), Endpoint(issued("A"), issued("B"))
    tokens = provider(endpoint, clock)
    assert await tokens.token() == "A"
    clock.now += 1800 - 300 - 0.1
    assert await tokens.token() == "A"
    assert len(endpoint.sent) == 1
    clock.now += 0.1
    assert await tokens.token() == "B"
    assert len(endpoint.sent) == 2


async def test_every_parameter_goes_in_the_form_to_the_versions_token_path() -> None:
    """Fact sheet §2: /oauth/2026-09/token (2026-03's own, v1 for legacy), all parameters in the body."""
    for version, path in (
        ("2026-09", "/oauth/2026-09/token"),
        ("2026-03", "/oauth/2026-03/token"),
        ("legacy", "/oauth/v1/token"),
    ):
        endpoint = Endpoint(issued())
        await provider(endpoint, Clock(), oauth_settings(version)).token()
        url, form = endpoint.sent[0]
        assert urlsplit(url).path == path
        assert not urlsplit(url).query
        assert form == {
            "grant_type": "refresh_token",
            "client_id": "client-1",
            "client_secret": SECRET,
            "refresh_token": REFRESH,
        }


async def test_client_credentials_ask_for_their_scopes_where_the_grant_is_documented() -> None:
    """The stored 2026-09 OAuth spec lists no client_credentials grant; 2026-03 does."""
    settings = oauth_settings(
        kind="client_credentials", refresh_token=None, scopes=("developer.webhooks_journal.read", "oauth")
    )
    endpoint = Endpoint((200, {"access_token": "CC", "expires_in": 1800, "token_type": "bearer"}))
    tokens = provider(endpoint, Clock(), settings)
    assert await tokens.token() == "CC"
    url, form = endpoint.sent[0]
    assert urlsplit(url).path == "/oauth/2026-03/token"
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "client-1",
        "client_secret": SECRET,
        "scope": "developer.webhooks_journal.read oauth",
    }


async def test_tasks_asking_at_once_share_one_token_request() -> None:
    gate = asyncio.Event()
    clock, endpoint = Clock(), Endpoint(issued("A"), gate=gate)
    tokens = provider(endpoint, clock)
    waiting = [asyncio.create_task(tokens.token()) for _ in range(20)]
    await asyncio.sleep(0.01)
    gate.set()
    assert set(await asyncio.gather(*waiting)) == {"A"}
    assert len(endpoint.sent) == 1


async def test_a_401_seen_by_many_tasks_renews_once() -> None:
    """Each task's call was refused with the same token; the first renews, the others take its token."""
    clock, endpoint = Clock(), Endpoint(issued("A"), issued("B"), issued("C"))
    tokens = provider(endpoint, clock)
    first = await tokens.token()
    renewed = await asyncio.gather(*(tokens.renew(first) for _ in range(10)))
    assert set(renewed) == {"B"}
    assert len(endpoint.sent) == 2


async def test_a_refused_refresh_says_what_to_do_and_is_not_asked_again_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, endpoint = Clock(), Endpoint(BAD_REFRESH)
    tokens = provider(endpoint, clock)
    with caplog.at_level(logging.INFO), pytest.raises(CredentialsRefusedError) as refused:
        await tokens.token()
    message = str(refused.value)
    assert "400 BAD_REFRESH_TOKEN: missing or invalid refresh token" in message
    assert "install the app again" in message
    assert "hubspot.auth.refresh_token (CDC_HUBSPOT__AUTH__REFRESH_TOKEN)" in message
    assert refused_gauge(tokens) == 1
    # The role's other tasks retrying meanwhile get the same answer without a request of their own.
    for _ in range(5):
        with pytest.raises(CredentialsRefusedError):
            await tokens.token()
    assert len(endpoint.sent) == 1
    clock.now += REFUSAL_HOLD_S
    with pytest.raises(CredentialsRefusedError):
        await tokens.token()
    assert len(endpoint.sent) == 2
    assert [r.levelname for r in caplog.records if "refused" in r.getMessage()] == ["ERROR"]  # once
    for text in (message, caplog.text, repr(tokens), repr(oauth_settings())):
        assert REFRESH not in text
        assert SECRET not in text


async def test_credentials_accepted_again_after_a_refusal_say_so_and_clear_the_gauge(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, endpoint = Clock(), Endpoint(BAD_REFRESH, issued("A"))
    tokens = provider(endpoint, clock)
    with pytest.raises(CredentialsRefusedError):
        await tokens.token()
    clock.now += REFUSAL_HOLD_S
    with caplog.at_level(logging.INFO):
        assert await tokens.token() == "A"
    assert refused_gauge(tokens) == 0
    assert "accepts the app's credentials again" in caplog.text
    assert ACCESS not in caplog.text


async def test_a_token_endpoint_that_is_down_leaves_the_token_in_hand_in_use_while_it_lasts() -> None:
    clock = Clock()
    endpoint = Endpoint(issued("A", 100), (503, {"message": "Service Unavailable"}))
    tokens = provider(endpoint, clock)
    assert await tokens.token() == "A"
    clock.now += 85  # past its renewal time (80 s), before its end (100 s)
    assert await tokens.token() == "A"
    assert await tokens.token() == "A"  # not asked again at once
    assert len(endpoint.sent) == 2
    clock.now += 15
    with pytest.raises(RetriableError, match="503"):
        await tokens.token()


async def test_a_refusal_while_the_token_in_hand_lasts_keeps_it_in_use_until_it_ends() -> None:
    """HubSpot: access tokens issued with a deleted refresh token keep working (v1 spec)."""
    clock = Clock()
    endpoint = Endpoint(issued("A", 100), BAD_REFRESH)
    tokens = provider(endpoint, clock)
    await tokens.token()
    clock.now += 90
    assert await tokens.token() == "A"
    assert refused_gauge(tokens) == 1
    clock.now += 10
    with pytest.raises(CredentialsRefusedError):
        await tokens.token()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"access_token": "A"},
        {"access_token": "", "expires_in": 1800},
        {"access_token": "A", "expires_in": 0},
        {"access_token": "A", "expires_in": True},
    ],
)
async def test_an_answer_without_a_usable_token_is_retried_not_trusted(body: Mapping[str, object]) -> None:
    tokens = provider(Endpoint((200, body)), Clock())
    with pytest.raises(RetriableError, match="without an access token"):
        await tokens.token()


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_a_throttled_or_failing_token_endpoint_is_retriable(status: int) -> None:
    tokens = provider(Endpoint((status, {"message": "busy"})), Clock())
    with pytest.raises(RetriableError):
        await tokens.token()
    assert refused_gauge(tokens) == 0


@pytest.mark.parametrize(
    "body",
    [
        {
            "category": "VALIDATION_ERROR",
            "subCategory": "BAD_REFRESH_TOKEN",
            "message": "missing or invalid refresh token",
        },
        {"error": "invalid_grant", "error_description": "refresh token revoked"},
        {"status": "error", "message": f"token {REFRESH} unknown"},
        "not json",
    ],
)
async def test_any_refusal_shape_is_a_clear_refusal_that_never_quotes_a_credential(body: object) -> None:
    endpoint = Endpoint((400, body))  # type: ignore[arg-type]
    tokens = provider(endpoint, Clock())
    with pytest.raises(CredentialsRefusedError) as refused:
        await tokens.token()
    assert "HubSpot refused the refresh_token grant (POST /oauth/2026-09/token answered 400" in str(
        refused.value
    )
    assert REFRESH not in str(refused.value)


async def test_a_static_token_is_sent_as_it_is_and_not_renewed() -> None:
    source = token_source(
        HubSpotSettings(token=SecretStr("pat-na1-static")), Metrics(CollectorRegistry()), command="sync"
    )
    assert isinstance(source, StaticToken)
    assert not source.renewable
    assert await source.token() == "pat-na1-static"
    assert "pat-na1" not in repr(source)


def test_a_static_kind_without_a_token_names_the_setting_and_the_command() -> None:
    with pytest.raises(
        SettingsError, match=r"hubspot.token \(CDC_HUBSPOT__TOKEN\) is required by `cdc poll`"
    ):
        token_source(HubSpotSettings(), Metrics(CollectorRegistry()), command="poll")
