"""The webhook receiver under hypothesis-generated bodies and headers: never a 5xx, never a crash, and
nothing that is not correctly signed is published.

The HTTP layer is driven in process (ASGI) with a recording publisher behind the receiver's `Publisher`
port; the path to a real broker is covered by `tests/integration/test_webhook_receiver.py`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Sequence

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from cdc.ingest.webhooks import ReceiverConfig, create_app
from cdc.metrics import Metrics
from streams.events import ChangeEvent

SECRET = "fuzz-secret-0000"
URL = "http://ingest.test/webhooks/hubspot"
SUBSCRIPTIONS = ["contact.creation", "contact.propertyChange", "company.deletion", "deal.merge", "bogus.kind"]


class Recorder:
    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []

    async def publish(self, events: Sequence[ChangeEvent]) -> None:
        self.events.extend(events)


async def _ready() -> bool:
    return True


def post(body: bytes, headers: dict[str, str]) -> tuple[int, int]:
    """(status, events published) for one request to a fresh receiver."""
    recorder = Recorder()
    app = create_app(
        ReceiverConfig(client_secret=SECRET, max_body_bytes=4096),
        recorder,
        Metrics(CollectorRegistry()),
        ready=_ready,
    )

    async def call() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest.test") as client:
            return (await client.post("/webhooks/hubspot", content=body, headers=headers)).status_code

    return asyncio.run(call()), len(recorder.events)


def sign_v3(body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time() * 1000))
    digest = hmac.new(SECRET.encode(), b"POST" + URL.encode() + body + timestamp.encode(), hashlib.sha256)
    return {
        "X-HubSpot-Signature-v3": base64.b64encode(digest.digest()).decode(),
        "X-HubSpot-Request-Timestamp": timestamp,
    }


def _dumps(value: object) -> bytes:
    return json.dumps(value).encode()  # the stdlib writes integers of any size, as a hostile sender may


header_names = st.sampled_from(
    [
        "X-HubSpot-Signature",
        "X-HubSpot-Signature-v3",
        "X-HubSpot-Signature-Version",
        "X-HubSpot-Request-Timestamp",
        "Content-Type",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
    ]
)
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "eventId": st.integers() | st.text(max_size=5),
        "subscriptionId": st.integers(),
        "portalId": st.integers() | st.none(),
        "occurredAt": st.integers() | st.text(max_size=5),
        "subscriptionType": st.sampled_from(SUBSCRIPTIONS) | st.text(max_size=10),
        "eventType": st.sampled_from(SUBSCRIPTIONS),
        "objectId": st.integers(min_value=-1, max_value=2**63) | st.text(max_size=5),
        "propertyName": st.text(max_size=10),
        "propertyValue": json_scalars,
        "changeSource": st.text(max_size=10),
        "mergedObjectIds": st.lists(st.integers(), max_size=3),
    },
)
bodies = (
    st.binary(max_size=600)
    | st.lists(event_like, max_size=4).map(_dumps)
    | st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=8).map(_dumps)
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(body=bodies, headers=st.dictionaries(header_names, header_values, max_size=5))
def test_unsigned_or_forged_requests_never_publish_and_never_5xx(
    body: bytes, headers: dict[str, str]
) -> None:
    status, published = post(body, headers)
    assert status in {400, 401, 413}, status
    assert published == 0


@FUZZ
@given(body=bodies)
def test_signed_requests_of_any_shape_get_200_or_400_and_publish_only_on_200(body: bytes) -> None:
    status, published = post(body, sign_v3(body))
    assert status in {200, 400, 413}, status
    if status != 200:
        assert published == 0
