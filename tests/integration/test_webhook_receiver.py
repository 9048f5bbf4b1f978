"""The webhook receiver against a real broker: signed events land on Kafka; bad requests never do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

from cdc.ingest.publisher import ChangePublisher
from cdc.ingest.webhooks import Intake, ReceiverConfig, create_app
from cdc.metrics import Metrics
from streams.admin import ensure_topics, open_admin
from streams.config import KafkaSettings
from streams.events import ChangeEvent, Operation
from streams.topics import TopicCatalog, TopicRole
from tests.kafka_reading import read_changes, read_topic

pytestmark = pytest.mark.kafka

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
URL = "http://ingest.test/webhooks/hubspot"


def sign_v3(
    body: bytes, *, uri: str = URL, secret: str = SECRET, timestamp_ms: int | None = None
) -> dict[str, str]:
    """HubSpot's v3 signature, from its docs: base64 HMAC-SHA256 of method + uri + body + timestamp."""
    timestamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    message = b"POST" + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return {
        "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
        "X-HubSpot-Request-Timestamp": timestamp,
    }


def sign_v1(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hashlib.sha256(secret.encode() + body).hexdigest()
    return {"X-HubSpot-Signature": digest, "X-HubSpot-Signature-Version": "v1"}


def webhook_body(count: int = 3) -> bytes:
    return orjson.dumps(
        [
            {
                "eventId": 100 + n,
                "subscriptionId": 7,
                "portalId": 62515,
                "appId": 1160452,
                "occurredAt": 1_764_000_000_000 + n,
                "subscriptionType": "contact.propertyChange",
                "attemptNumber": 0,
                "objectId": 546500061938 + n,
                "propertyName": "email",
                "propertyValue": f"user{n}@example.com",
                "changeSource": "CRM_UI",
                "sourceId": "userId:42",
            }
            for n in range(count)
        ]
    )


class Receiver:
    def __init__(
        self, client: httpx.AsyncClient, metrics: Metrics, kafka: KafkaSettings, intake: Intake
    ) -> None:
        self.client, self.metrics, self.kafka, self.intake = client, metrics, kafka, intake
        spec = TopicCatalog.from_settings(kafka)[TopicRole.CHANGES_HUBSPOT]
        self.topic, self.partitions = spec.name, spec.partitions

    async def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post("/webhooks/hubspot", content=body, headers=headers)

    async def published(self) -> list[ChangeEvent]:
        return await read_changes(self.kafka)

    def counter(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


async def _receiver(
    kafka: KafkaSettings, *, deadline_s: float = 4.0, **config: Any
) -> AsyncIterator[Receiver]:
    async with open_admin(kafka) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka))
    metrics = Metrics(CollectorRegistry())
    publisher = ChangePublisher(kafka, metrics, deadline_s=deadline_s)
    await publisher.start()
    intake = Intake()

    async def ready() -> bool:
        return True

    app = create_app(
        ReceiverConfig(client_secret=SECRET, **config), publisher, metrics, ready=ready, intake=intake
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ingest.test"
        ) as client:
            yield Receiver(client, metrics, kafka, intake)
    finally:
        await publisher.stop()


@pytest.fixture
async def receiver(kafka_settings: KafkaSettings) -> AsyncIterator[Receiver]:
    async for item in _receiver(kafka_settings):
        yield item


async def test_signed_events_land_on_kafka_keyed_per_record_before_the_200(receiver: Receiver) -> None:
    body = webhook_body(3)
    response = await receiver.post(body, sign_v3(body))
    assert response.status_code == 200
    events = await receiver.published()  # acknowledged before the answer: already readable
    assert sorted(e.key for e in events) == [f"hubspot/62515/contact/{546500061938 + n}" for n in range(3)]
    assert {e.operation for e in events} == {Operation.UPDATE}
    assert sorted(str(e.changed_properties["email"]) for e in events) == [
        f"user{n}@example.com" for n in range(3)
    ]
    assert receiver.counter("cdc_events_ingested_total", source="hubspot", object="contact") == 3
    assert receiver.counter("cdc_webhook_requests_total", status="200") == 1


async def test_v1_signatures_are_accepted_when_allowed(receiver: Receiver) -> None:
    body = webhook_body(1)
    assert (await receiver.post(body, sign_v1(body))).status_code == 200


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("forged", "mismatch"),
        ("wrong_secret", "mismatch"),
        ("tampered_body", "mismatch"),
        ("stale", "stale"),
        ("unsigned", "missing"),
        ("bad_timestamp", "bad_timestamp"),
        ("v1_wrong_secret", "mismatch"),
    ],
)
async def test_bad_signatures_get_401_and_nothing_reaches_kafka(
    receiver: Receiver, case: str, reason: str
) -> None:
    body = webhook_body(2)
    headers = {
        "forged": {"X-HubSpot-Signature-v3": base64.b64encode(b"x" * 32).decode(),
                   "X-HubSpot-Request-Timestamp": str(int(time.time() * 1000))},
        "wrong_secret": sign_v3(body, secret="not-the-secret"),
        "tampered_body": sign_v3(webhook_body(1)),
        "stale": sign_v3(body, timestamp_ms=int(time.time() * 1000) - 301_000),
        "unsigned": {},
        "bad_timestamp": {**sign_v3(body), "X-HubSpot-Request-Timestamp": "yesterday"},
        "v1_wrong_secret": sign_v1(body, secret="nope"),
    }[case]  # fmt: skip
    response = await receiver.post(body, headers)
    assert response.status_code == 401
    assert response.json()["message"].startswith("invalid signature")
    assert receiver.counter("cdc_webhook_signature_failures_total", reason=reason) == 1
    assert await receiver.published() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not JSON"),
        (b'{"eventId": 1}', "body must be a JSON array of events, not dict"),
        (b'[{"eventId": 1}, 2]', "event 1 is not a JSON object"),
    ],
)
async def test_malformed_bodies_get_400_with_a_reason(receiver: Receiver, body: bytes, message: str) -> None:
    response = await receiver.post(body, sign_v3(body))
    assert response.status_code == 400
    assert response.json()["message"] == message
    assert await receiver.published() == []
    assert await read_topic(receiver.kafka, TopicRole.DEADLETTER) == []
    assert receiver.counter("cdc_webhook_requests_total", status="400") == 1


async def test_bad_events_are_dead_lettered_and_the_good_events_of_their_batch_published(
    receiver: Receiver,
) -> None:
    """Issue 13: one unreadable event used to fail its batch with a 500, so HubSpot retried and then
    dropped the good events beside it. Now they land, and the bad ones wait on the deadletter topic."""
    good = orjson.loads(webhook_body(3))
    past_9999 = {**good[0], "eventId": 901, "occurredAt": 253_402_300_800_000}
    no_types = {
        **good[0], "eventId": 902, "subscriptionType": "contact.associationChange",
        "associationType": "_TO_", "fromObjectId": 1, "toObjectId": 2,
    }  # fmt: skip
    missing_type = {"eventId": 903, "portalId": 62515}
    body = orjson.dumps([good[0], past_9999, good[1], no_types, missing_type, good[2]])
    response = await receiver.post(body, sign_v3(body))
    assert response.status_code == 200
    assert sorted(str(e.source_event_id) for e in await receiver.published()) == ["100", "101", "102"]
    letters = await read_topic(receiver.kafka, TopicRole.DEADLETTER)
    assert [orjson.loads(letter["value"])["eventId"] for letter in letters] == [901, 902, 903]
    assert [letter["error"].split(":")[0:2] for letter in letters] == [
        ["event 1", " occurredAt"],
        ["event 3", " associationType"],
        ["event 4", " subscriptionType"],
    ]
    assert {letter["step"] for letter in letters} == {"webhook"}
    assert {letter["topic"] for letter in letters} == {receiver.topic}
    assert receiver.counter("cdc_sync_deadletters_total", step="webhook", reason="unreadable_event") == 3
    assert receiver.counter("cdc_webhook_requests_total", status="200") == 1


@pytest.mark.parametrize("timestamp", ["9" * 310, "9" * 4301])
async def test_a_timestamp_that_is_not_ascii_digits_gets_a_counted_401(
    receiver: Receiver, timestamp: str
) -> None:
    body = webhook_body(1)
    response = await receiver.post(body, {**sign_v3(body), "X-HubSpot-Request-Timestamp": timestamp})
    assert response.status_code == 401
    assert receiver.counter("cdc_webhook_requests_total", status="401") == 1
    assert receiver.counter("cdc_webhook_signature_failures_total", reason="bad_timestamp") == 1
    assert await receiver.published() == []


async def test_oversize_body_gets_413_before_anything_else(kafka_settings: KafkaSettings) -> None:
    async for receiver in _receiver(kafka_settings, max_body_bytes=2048):
        body = webhook_body(40)
        assert len(body) > 2048
        response = await receiver.post(body, sign_v3(body))
        assert response.status_code == 413
        assert await receiver.published() == []


async def test_kafka_slower_than_the_deadline_gets_503_so_hubspot_retries(
    kafka_settings: KafkaSettings,
) -> None:
    async for receiver in _receiver(kafka_settings, deadline_s=0.000_001):
        body = webhook_body(1)
        response = await receiver.post(body, sign_v3(body))
        assert response.status_code == 503
        assert "did not acknowledge" in response.json()["message"]
        assert receiver.counter("cdc_produce_failures_total", reason="timeout") == 1


async def test_closed_intake_answers_503_and_readyz_turns_red(receiver: Receiver) -> None:
    assert (await receiver.client.get("/readyz")).status_code == 200
    receiver.intake.open = False
    body = webhook_body(1)
    assert (await receiver.post(body, sign_v3(body))).status_code == 503
    assert (await receiver.client.get("/readyz")).status_code == 503
    assert (await receiver.client.get("/healthz")).status_code == 200
    metrics = (await receiver.client.get("/metrics")).text
    assert 'cdc_webhook_requests_total{status="503"} 1.0' in metrics


async def test_forwarded_headers_are_used_only_when_trusted(kafka_settings: KafkaSettings) -> None:
    body = webhook_body(1)
    public = "https://cdc.example.com/webhooks/hubspot"
    headers = {
        **sign_v3(body, uri=public),
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "cdc.example.com",
    }
    async for receiver in _receiver(kafka_settings):
        assert (await receiver.post(body, headers)).status_code == 401
    async for receiver in _receiver(kafka_settings, trust_forwarded_headers=True):
        assert (await receiver.post(body, headers)).status_code == 200
    async for receiver in _receiver(kafka_settings, public_url=public):
        assert (await receiver.post(body, sign_v3(body, uri=public))).status_code == 200
