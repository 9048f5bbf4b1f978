"""The webhook receiver against a real broker: signed events land on Kafka; bad requests never do."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from cdc.hubspot.events import Tenant
from cdc.hubspot.receiver import Intake, Publisher, ReceiverConfig, create_app
from cdc.metrics import Metrics
from cdc.roles.ingest import run_ingest
from cdc.roles.probes import Probes
from cdc.settings import HubSpotSettings, IngestSettings, Settings
from cdc.sources.publisher import ChangePublisher
from streams.admin import ensure_topics, open_admin
from streams.config import KafkaSettings
from streams.deadletters import DeadLetter
from streams.events import ChangeEvent, Operation
from streams.keys import SourceSystem
from streams.topics import TopicCatalog, TopicRole
from tests.kafka_reading import read_changes, read_topic

pytestmark = pytest.mark.kafka

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
URL = "http://ingest.test/webhooks/hubspot"
PORTAL = "62515"


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


def webhook_body(count: int = 3, **fields: Any) -> bytes:
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
                **fields,
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

    async def assert_nothing_published(self) -> None:
        assert await self.published() == []
        assert await read_topic(self.kafka, TopicRole.DEADLETTER) == []


async def _receiver(
    kafka: KafkaSettings,
    *,
    deadline_s: float = 4.0,
    wrap: Callable[[Publisher], Publisher] = lambda publisher: publisher,
    **config: Any,
) -> AsyncIterator[Receiver]:
    async with open_admin(kafka) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka))
    metrics = Metrics(CollectorRegistry())
    publisher = ChangePublisher(kafka, metrics, deadline_s=deadline_s)
    await publisher.start()
    intake = Intake()
    probes = Probes(metrics, stopping=lambda: not intake.open)  # as `cdc ingest` serves them, less Kafka's
    config.setdefault("tenant", Tenant(PORTAL))
    app = create_app(
        ReceiverConfig(client_secret=SECRET, **config),
        wrap(publisher),
        metrics,
        intake=intake,
        routes=probes.routes,
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


@pytest.fixture
async def legacy_receiver(kafka_settings: KafkaSettings) -> AsyncIterator[Receiver]:
    """The receiver of a legacy app: v1/v2 signatures are taken too."""
    async for item in _receiver(kafka_settings, legacy_signatures=True):
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


async def test_v1_signatures_are_taken_from_a_legacy_app_only(kafka_settings: KafkaSettings) -> None:
    """Issue 13: v1/v2 carry no timestamp, so a captured request replays for ever; a project app (the
    default) is taken with v3 only. HubSpot sends v3 beside v1 (fact sheet §2): a request with both passes."""
    body = webhook_body(1)
    async for receiver in _receiver(kafka_settings):
        response = await receiver.post(body, sign_v1(body))
        assert response.status_code == 401
        assert response.json()["message"] == "invalid signature (v3 required)"
        assert receiver.counter("cdc_webhook_signature_failures_total", reason="v3_required") == 1
        await receiver.assert_nothing_published()
        assert (await receiver.post(body, {**sign_v1(body), **sign_v3(body)})).status_code == 200
    async for receiver in _receiver(kafka_settings, legacy_signatures=True):
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
    legacy_receiver: Receiver, case: str, reason: str
) -> None:
    receiver = legacy_receiver
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


async def test_a_project_apps_association_changes_are_published_and_one_missing_its_ids_dead_lettered(
    receiver: Receiver,
) -> None:
    """Issue 15: a project app's generic ``object.associationChange`` names the types by id. Before, one
    without the legacy ``associationType`` was published as a change of no record (``OTHER``); now it is the
    from record's association, and one lacking a record id waits on the deadletter topic, its batch taken."""
    generic = {
        "eventId": 700, "subscriptionId": 9, "portalId": 62515, "appId": 1160452,
        "occurredAt": 1_764_000_000_000, "subscriptionType": "object.associationChange", "attemptNumber": 0,
        "changeSource": "CRM_UI", "sourceId": "userId:42", "fromObjectTypeId": "0-1", "fromObjectId": 11,
        "toObjectTypeId": "0-2", "toObjectId": 22, "associationTypeId": 1, "associationRemoved": False,
    }  # fmt: skip
    no_ids = {k: v for k, v in generic.items() if k not in {"fromObjectId", "toObjectId"}} | {"eventId": 701}
    body = orjson.dumps([generic, no_ids])
    response = await receiver.post(body, sign_v3(body))
    assert response.status_code == 200
    [event] = await receiver.published()
    assert (event.operation, event.object_type, event.object_id) == (Operation.ASSOCIATION, "contact", "11")
    assert event.association is not None
    assert (event.association.to_object_type, event.association.to_object_id) == ("company", "22")
    [letter] = await read_topic(receiver.kafka, TopicRole.DEADLETTER)
    assert orjson.loads(letter["value"])["eventId"] == 701
    assert letter["error"].startswith("event 1: fromObjectId, toObjectId: missing")
    assert receiver.counter("cdc_sync_deadletters_total", step="webhook", reason="unreadable_event") == 1


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


async def test_closed_intake_answers_503_and_the_probes_turn_red(receiver: Receiver) -> None:
    assert (await receiver.client.get("/readyz")).status_code == 200
    receiver.intake.open = False
    body = webhook_body(1)
    assert (await receiver.post(body, sign_v3(body))).status_code == 503
    not_ready = await receiver.client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["failed"] == {"shutdown": "shutting down"}
    alive = await receiver.client.get("/healthz")  # alive, but shutting down: not to be sent anything
    assert (alive.status_code, alive.json()) == (503, {"status": "shutting down"})
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


# Issue 13 item 3: the receiver's limits. Each refusal is answered, counted by its reason, and publishes
# nothing (neither a change nor a dead letter).


async def test_a_timestamp_ahead_of_our_clock_beyond_the_allowance_gets_401(receiver: Receiver) -> None:
    """HubSpot documents only the 5-minute age limit; without a rule for the future, a request signed with
    a timestamp ahead of ours would replay until then. Ours: `ingest.clock_skew_s` (60 s by default)."""
    body = webhook_body(1)
    ahead = sign_v3(body, timestamp_ms=int(time.time() * 1000) + 90_000)
    response = await receiver.post(body, ahead)
    assert response.status_code == 401
    assert response.json()["message"] == "invalid signature (future)"
    assert receiver.counter("cdc_webhook_signature_failures_total", reason="future") == 1
    assert receiver.counter("cdc_webhook_requests_total", status="401") == 1
    await receiver.assert_nothing_published()
    within = sign_v3(body, timestamp_ms=int(time.time() * 1000) + 30_000)
    assert (await receiver.post(body, within)).status_code == 200


async def test_events_of_another_portal_are_refused_with_403_and_not_dead_lettered(
    receiver: Receiver,
) -> None:
    body = webhook_body(2, portalId=99999)
    response = await receiver.post(body, sign_v3(body))
    assert response.status_code == 403
    assert response.json()["message"] == "2 event(s) of another portal (portalId 99999), not taken here"
    assert receiver.counter("cdc_webhook_foreign_events_total", field="portalId") == 2
    assert receiver.counter("cdc_webhook_refusals_total", reason="foreign_portal") == 1
    assert receiver.counter("cdc_webhook_requests_total", status="403") == 1
    await receiver.assert_nothing_published()


async def test_a_request_mixing_portals_publishes_the_events_of_ours_only(receiver: Receiver) -> None:
    """Whether HubSpot mixes portals in one request is unverified; if it does, ours must not be lost."""
    ours = orjson.loads(webhook_body(2))
    theirs = {**ours[0], "eventId": 900, "portalId": 99999, "occurredAt": -1}  # unreadable as well
    body = orjson.dumps([ours[0], theirs, ours[1]])
    assert (await receiver.post(body, sign_v3(body))).status_code == 200
    assert sorted(str(e.source_event_id) for e in await receiver.published()) == ["100", "101"]
    assert await read_topic(receiver.kafka, TopicRole.DEADLETTER) == []
    assert receiver.counter("cdc_webhook_foreign_events_total", field="portalId") == 1


async def test_events_of_another_app_are_refused_when_the_app_is_configured(
    kafka_settings: KafkaSettings,
) -> None:
    body = webhook_body(1, appId=7)
    async for receiver in _receiver(kafka_settings, tenant=Tenant(PORTAL, "1160452")):
        response = await receiver.post(body, sign_v3(body))
        assert response.status_code == 403
        assert receiver.counter("cdc_webhook_foreign_events_total", field="appId") == 1
        assert receiver.counter("cdc_webhook_refusals_total", reason="foreign_app") == 1
        await receiver.assert_nothing_published()
    async for receiver in _receiver(kafka_settings, tenant=Tenant(PORTAL)):
        assert (await receiver.post(body, sign_v3(body))).status_code == 200


async def test_more_events_than_hubspot_sends_in_a_request_get_413(receiver: Receiver) -> None:
    body = webhook_body(101)
    response = await receiver.post(body, sign_v3(body))
    assert response.status_code == 413
    assert response.json()["message"] == "body holds 101 events; the limit is 100 (HubSpot sends up to 100)"
    assert receiver.counter("cdc_webhook_refusals_total", reason="too_many_events") == 1
    assert receiver.counter("cdc_webhook_requests_total", status="413") == 1
    await receiver.assert_nothing_published()
    body = webhook_body(100)
    assert (await receiver.post(body, sign_v3(body))).status_code == 200


@dataclass
class HeldBody:
    """A request body whose first half is sent at once and the rest only when released."""

    body: bytes
    sent_half: asyncio.Event
    release: asyncio.Event

    @classmethod
    def of(cls, body: bytes) -> HeldBody:
        return cls(body, asyncio.Event(), asyncio.Event())

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.body[: len(self.body) // 2]
        self.sent_half.set()
        await self.release.wait()
        yield self.body[len(self.body) // 2 :]


async def test_a_body_slower_than_the_read_timeout_gets_408_and_the_connection_closes(
    kafka_settings: KafkaSettings,
) -> None:
    body = webhook_body(1)
    held = HeldBody.of(body)
    async for receiver in _receiver(kafka_settings, read_timeout_s=0.3):
        posting = receiver.client.post("/webhooks/hubspot", content=held.chunks(), headers=sign_v3(body))
        response = await asyncio.wait_for(posting, 5)
        held.release.set()
        assert response.status_code == 408
        assert response.headers["connection"] == "close"
        assert response.json()["message"] == "body not complete within 0.3 s"
        assert receiver.counter("cdc_webhook_refusals_total", reason="body_timeout") == 1
        assert receiver.counter("cdc_webhook_requests_total", status="408") == 1
        await receiver.assert_nothing_published()


@dataclass
class HeldPublisher:
    """The receiver's publisher, holding each publish until released: a request stays "being published"."""

    publisher: Publisher
    publishing: asyncio.Event
    release: asyncio.Event

    def changes_topic(self, system: SourceSystem) -> str:
        return self.publisher.changes_topic(system)

    async def publish(self, events: Sequence[ChangeEvent], dead_letters: Sequence[DeadLetter] = ()) -> None:
        self.publishing.set()
        await self.release.wait()
        await self.publisher.publish(events, dead_letters)


async def test_signed_requests_beyond_the_concurrency_limit_get_503_so_hubspot_retries(
    kafka_settings: KafkaSettings,
) -> None:
    """The limit counts signed requests being published; requests still being read do not count, or anyone
    could hold off HubSpot's requests with a few slow bodies (the read timeout bounds those)."""
    first, second, third = webhook_body(1), webhook_body(2), webhook_body(3)
    held_body = HeldBody.of(webhook_body(4))
    holding: list[HeldPublisher] = []

    def held(publisher: Publisher) -> Publisher:
        holding.append(HeldPublisher(publisher, asyncio.Event(), asyncio.Event()))
        return holding[0]

    async for receiver in _receiver(kafka_settings, max_concurrent=1, wrap=held):
        reading = asyncio.create_task(
            receiver.client.post(
                "/webhooks/hubspot", content=held_body.chunks(), headers=sign_v3(held_body.body)
            )
        )
        await asyncio.wait_for(held_body.sent_half.wait(), 5)
        publishing = asyncio.create_task(receiver.post(first, sign_v3(first)))
        await asyncio.wait_for(holding[0].publishing.wait(), 5)  # the slow body took no place
        refused = await asyncio.wait_for(receiver.post(second, sign_v3(second)), 5)
        holding[0].release.set()
        assert (await publishing).status_code == 200
        held_body.release.set()
        assert (await reading).status_code == 200
        assert refused.status_code == 503
        assert refused.json()["message"] == "too many webhook requests being published; retry"
        assert receiver.counter("cdc_webhook_refusals_total", reason="busy") == 1
        assert receiver.counter("cdc_webhook_requests_total", status="503") == 1
        assert sorted(str(e.source_event_id) for e in await receiver.published()) == ["100"] * 2 + [
            "101",
            "102",
            "103",
        ]  # the first request's and the slow one's, not the refused one's
        assert (await receiver.post(third, sign_v3(third))).status_code == 200  # a place is free again


# Over real sockets, through `cdc ingest` as it runs: h11 and the server act before the app sees a request.


@dataclass
class Running:
    host: str
    port: int
    metrics: Metrics
    kafka: KafkaSettings

    def counter(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)


@contextlib.asynccontextmanager
async def running_ingest(
    kafka: KafkaSettings, hubspot: HubSpotSettings | None = None, **ingest: Any
) -> AsyncIterator[Running]:
    async with open_admin(kafka) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka))
    settings = Settings(
        kafka=kafka,
        hubspot=hubspot or HubSpotSettings(client_secret=SecretStr(SECRET), portal_id=PORTAL),
        ingest=IngestSettings(port=0, **ingest),
    )
    metrics = Metrics(CollectorRegistry())
    stop = asyncio.Event()
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(run_ingest(settings, stop, metrics=metrics, on_listening=listening.set_result))
        url = httpx.URL(await asyncio.wait_for(listening, 30))
        try:
            yield Running(url.host, url.port or 80, metrics, kafka)
        finally:
            stop.set()


def _request(body: bytes, headers: dict[str, str], *, host: str) -> bytes:
    lines = [b"POST /webhooks/hubspot HTTP/1.1", b"Host: " + host.encode()]
    lines += [f"{name}: {value}".encode() for name, value in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def _read_until_closed(reader: asyncio.StreamReader, within_s: float) -> bytes:
    """Everything the server sends until it closes the connection (TimeoutError if it does not)."""
    return await asyncio.wait_for(reader.read(), within_s)


async def test_content_length_beside_transfer_encoding_gets_400_and_the_connection_closes(
    kafka_settings: KafkaSettings,
) -> None:
    """RFC 9112 §6.1: such a request may be a smuggling attempt; a server may refuse it and must then close
    the connection. h11 lets Transfer-Encoding win and hands both headers on, so the receiver refuses it:
    the request hidden in the body after the chunked terminator is never answered."""
    smuggled = b"0\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    async with running_ingest(kafka_settings) as ingest:
        reader, writer = await ingest.connect()
        headers = {"Content-Length": str(len(smuggled)), "Transfer-Encoding": "chunked", **sign_v3(b"")}
        writer.write(_request(smuggled, headers, host=f"{ingest.host}:{ingest.port}"))
        answer = await _read_until_closed(reader, 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"connection: close" in answer.lower()
        assert answer.count(b"HTTP/1.1") == 1
        assert b"both Content-Length and Transfer-Encoding" in answer
        assert ingest.counter("cdc_webhook_refusals_total", reason="framing") == 1
        assert ingest.counter("cdc_webhook_requests_total", status="400") == 1
    assert await read_changes(kafka_settings) == []


async def test_a_client_slow_to_send_its_headers_is_cut_off_after_the_read_timeout(
    kafka_settings: KafkaSettings,
) -> None:
    """uvicorn has no header timeout: a connection trickling its headers, or sending nothing, was held for
    as long as the client liked (issue 13: 40 for a minute). A kept-alive connection between two prompt
    requests is not cut: its idle time is uvicorn's keep-alive (5 s), not this deadline."""
    async with running_ingest(kafka_settings, read_timeout_s=0.5) as ingest:
        trickling, silent = await ingest.connect(), await ingest.connect()
        started = time.monotonic()
        trickling[1].write(b"POST /webhooks/hubspot HTTP/1.1\r\nHost: ingest\r\n")
        for _ in range(3):
            await asyncio.sleep(0.2)
            with contextlib.suppress(ConnectionError):
                trickling[1].write(b"X-Slow: 1\r\n")
        assert await _read_until_closed(trickling[0], 2) == b""
        assert await _read_until_closed(silent[0], 2) == b""
        assert time.monotonic() - started < 1.5
        host = f"{ingest.host}:{ingest.port}"
        kept = await ingest.connect()
        for count in (1, 2):  # two requests, 0.8 s apart, on one connection
            body = webhook_body(count)
            signed = sign_v3(body, uri=f"http://{host}/webhooks/hubspot")
            kept[1].write(_request(body, {"Content-Length": str(len(body)), **signed}, host=host))
            assert (await asyncio.wait_for(kept[0].readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 200 ")
            await asyncio.sleep(0.8)
        for _, writer in (trickling, silent, kept):
            writer.close()
        assert ingest.counter("cdc_webhook_requests_total", status="header_timeout") == 2
        assert ingest.counter("cdc_webhook_refusals_total", reason="header_timeout") == 2
        assert ingest.counter("cdc_webhook_requests_total", status="200") == 2


async def test_a_legacy_app_is_warned_about_at_start_up(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    legacy = HubSpotSettings(client_secret=SecretStr(SECRET), portal_id=PORTAL, app_kind="legacy")
    with caplog.at_level(logging.WARNING, logger="cdc.ingest"):
        async with running_ingest(kafka_settings):
            pass
        assert not [r for r in caplog.records if "replay" in r.getMessage()]
        async with running_ingest(kafka_settings, legacy):
            pass
    [warning] = [r for r in caplog.records if "replay" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "hubspot.app_kind is legacy" in warning.getMessage()
    assert "v1 or v2" in warning.getMessage()
