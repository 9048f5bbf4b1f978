"""The developer API key travels in the webhooks API's query (``hapikey``): no error text may show it."""

from __future__ import annotations

import pytest

from cdc.hubspot.errors import RetriableError
from cdc.hubspot.provisioning import key_hidden

KEY = "0f2b7c1e-5d4a-4c3b-9e8f-7a6b5c4d3e2f"


def test_an_error_quoting_the_url_does_not_show_the_developer_key() -> None:
    url = f"https://api.hubapi.com/webhooks/v3/1/subscriptions?hapikey={KEY}"
    with pytest.raises(RetriableError) as caught, key_hidden(KEY):
        raise RetriableError(f"HubSpot GET /webhooks/v3/{{appId}}/subscriptions: ClientResponseError: {url}")
    assert KEY not in str(caught.value)
    assert "hapikey=<hidden>" in str(caught.value)
    assert caught.value.endpoint == ""  # the rest of the error is untouched
