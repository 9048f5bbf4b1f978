"""Whether the Webhooks Journal can be read with these credentials, and why not (`cdc poll` logs it)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cdc.hubspot.journal import journal_tokens
from cdc.hubspot.tokens import OAuthTokens
from cdc.metrics import Metrics
from cdc.settings import Settings

OAUTH = {"auth": {"kind": "oauth", "client_id": "c", "refresh_token": "r"}, "client_secret": "s"}


def tokens(**hubspot: Any) -> object:
    return journal_tokens(Settings.model_validate({"hubspot": hubspot}), Metrics(CollectorRegistry()))


@pytest.mark.parametrize(
    ("hubspot", "why"),
    [
        ({"token": "t"}, "hubspot.auth.kind is static: the Webhooks Journal takes a client-credentials"),
        ({**OAUTH, "app_kind": "legacy"}, "a legacy app has no Webhooks Journal"),
        (
            {"auth": {"kind": "client_credentials", "client_id": "c", "scopes": ["crm.objects.owners.read"]},
             "client_secret": "s"},
            "hubspot.auth.scopes lacks developer.webhooks_journal.read, "
            "developer.webhooks_journal.subscriptions.read",
        ),
    ],
    ids=["static", "legacy", "scopes"],
)  # fmt: skip
def test_credentials_that_cannot_read_the_journal_say_why(hubspot: dict[str, Any], why: str) -> None:
    reason = tokens(**hubspot)
    assert isinstance(reason, str)
    assert reason.startswith(why)


def test_an_oauth_app_asks_for_a_client_credentials_token_of_its_own_for_the_journal() -> None:
    source = tokens(**OAUTH)
    assert isinstance(source, OAuthTokens)
    assert source.grant == "client_credentials"
    assert "refresh" not in repr(source)
