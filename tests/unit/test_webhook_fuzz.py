"""The webhook receiver under hypothesis-generated headers and bodies: never a 5xx, every answer counted,
nothing published from a refused request, nothing of another portal or app published or dead-lettered,
and a bad event of a signed batch dead-lettered beside the good ones, which are published.

The app is driven in process through a small ASGI driver (not httpx) so that headers can carry any Latin-1
byte, as they can on the wire, and so that a client can hang up mid-body. A recording publisher stands
behind the receiver's `Publisher` port; the path to a real broker is covered by
`tests/integration/test_webhook_receiver.py`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from cdc.hubspot.events import Tenant
from cdc.hubspot.receiver import ReceiverConfig, create_app
from cdc.metrics import Metrics
from streams.deadletters import DeadLetter
from streams.events import ChangeEvent
from streams.keys import SourceSystem

SECRET = "fuzz-secret-0000"
URL = "http://ingest.test/webhooks/hubspot"
MAX_BODY = 4096
PORTAL, APP = 62515, 1160452
TENANT = Tenant(str(PORTAL), str(APP))
SUBSCRIPTIONS = ["contact.creation", "contact.propertyChange", "company.deletion", "deal.merge", "bogus.kind"]


class Recorder:
    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []
        self.dead: list[DeadLetter] = []

    def changes_topic(self, system: SourceSystem) -> str:
        return f"test.changes.{system}"

    async def publish(self, events: Sequence[ChangeEvent], dead_letters: Sequence[DeadLetter] = ()) -> None:
        self.events.extend(events)
        self.dead.extend(dead_letters)


@dataclass
class Answer:
    status: int
    counted: dict[str, float]
    events: list[ChangeEvent] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    foreign: dict[str, float] = field(default_factory=dict)

    @property
    def published(self) -> int:
        return len(self.events) + len(self.dead)


def _wire(value: str) -> bytes:
    """A header value's bytes: Latin-1 when it fits (b"\\xb9" is read back as "¹"), else UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


async def _drive(app: Starlette, headers: dict[str, str], body: bytes, hang_up: bool) -> int:
    """One POST through the ASGI interface; the status sent (500 when the app raised before answering)."""
    chunks: list[dict[str, Any]] = [{"type": "http.request", "body": body, "more_body": False}]
    if hang_up:  # half the body, then the client is gone
        chunks = [{"type": "http.request", "body": body[: len(body) // 2], "more_body": True}]
    chunks.append({"type": "http.disconnect"})
    sent: list[int] = []

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if len(chunks) > 1 else chunks[0]

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.append(message["status"])

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/webhooks/hubspot", "raw_path": b"/webhooks/hubspot", "query_string": b"",
        "root_path": "", "server": ("ingest.test", 80), "client": ("127.0.0.1", 5000),
        "headers": [(b"host", b"ingest.test")]
        + [(name.lower().encode(), _wire(value)) for name, value in headers.items()],
    }  # fmt: skip
    try:
        await app(scope, receive, send)
    except Exception:  # noqa: BLE001 -- the old receiver raised after its 500; the status is what we measure
        return sent[0] if sent else 500
    return sent[0]


def post(body: bytes, headers: dict[str, str], *, hang_up: bool = False) -> Answer:
    """One request to a fresh receiver: the status, the requests counted by status, what was published."""
    recorder, metrics = Recorder(), Metrics(CollectorRegistry())
    app = create_app(
        ReceiverConfig(client_secret=SECRET, tenant=TENANT, max_body_bytes=MAX_BODY),
        recorder,
        metrics,
    )
    status = asyncio.run(_drive(app, headers, body, hang_up))
    counted = {
        sample.labels["status"]: sample.value
        for metric in metrics.webhook_requests.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
    foreign = {
        sample.labels["field"]: sample.value
        for metric in metrics.webhook_foreign_events.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
    return Answer(status, counted, recorder.events, recorder.dead, foreign)


def sign_v3(body: bytes, timestamp: str | None = None, skew_s: float = 0) -> dict[str, str]:
    timestamp = timestamp or str(int((time.time() + skew_s) * 1000))
    digest = hmac.new(SECRET.encode(), b"POST" + URL.encode() + body + timestamp.encode(), hashlib.sha256)
    return {
        "X-HubSpot-Signature-v3": base64.b64encode(digest.digest()).decode(),
        "X-HubSpot-Request-Timestamp": timestamp,
    }


def _dumps(value: object) -> bytes:
    return json.dumps(value).encode()  # the stdlib writes integers of any size, as a hostile sender may


def good_event(n: int) -> dict[str, Any]:
    return {
        "eventId": 5000 + n,
        "subscriptionId": 7,
        "portalId": PORTAL,
        "appId": APP,
        "occurredAt": 1_764_000_000_000 + n,
        "subscriptionType": "contact.propertyChange",
        "objectId": 900 + n,
        "propertyName": "email",
        "propertyValue": f"u{n}@example.com",
    }


# Events of HubSpot's shape that no change can be made of (the two, and their neighbours).
BAD_EVENTS: dict[str, dict[str, Any]] = {
    "occurred_past_9999": {**good_event(90), "occurredAt": 253_402_300_800_000},
    "occurred_huge": {**good_event(91), "occurredAt": 10**30},
    "association_to_only": {
        **good_event(92), "subscriptionType": "contact.associationChange", "associationType": "_TO_",
        "fromObjectId": 1, "toObjectId": 2,
    },
    "association_no_to_type": {
        **good_event(93), "subscriptionType": "object.associationChange", "associationType": "CONTACT_TO_",
        "fromObjectId": 1, "toObjectId": 2,
    },
    "no_type": {k: v for k, v in good_event(94).items() if k != "subscriptionType"},
    "portal_null": {**good_event(95), "portalId": None},
    "occurred_text": {**good_event(96), "occurredAt": "yesterday"},
}  # fmt: skip

# Headers as they can arrive: Latin-1 text, and numbers that are not (superscripts, Arabic-Indic digits,
# more digits than int() or a float can take).
digits = st.sampled_from([1, 15, 16, 310, 4301, 5000]).map(lambda n: "9" * n)
odd_numbers = st.sampled_from(["¹", "²³", "١٢٣", "1²", "12 ", " 12", "+12", "-1", "0x1f", "1_000", "1e3", ""])
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)
number_like = digits | odd_numbers | header_text
header_names = st.sampled_from(
    [
        "X-HubSpot-Signature",
        "X-HubSpot-Signature-v3",
        "X-HubSpot-Signature-Version",
        "X-HubSpot-Request-Timestamp",
        "Content-Type",
        "Content-Length",
        "Transfer-Encoding",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
    ]
)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "eventId": st.integers() | st.text(max_size=5),
        "subscriptionId": st.integers(),
        "portalId": st.sampled_from([PORTAL, str(PORTAL), 99999]) | st.integers() | st.none(),
        "appId": st.sampled_from([APP, 7]) | st.integers() | st.text(max_size=3),
        "occurredAt": st.integers() | st.text(max_size=5),
        "subscriptionType": st.sampled_from(SUBSCRIPTIONS) | st.text(max_size=10),
        "eventType": st.sampled_from(SUBSCRIPTIONS),
        "objectId": st.integers(min_value=-1, max_value=2**63) | st.text(max_size=5),
        "objectTypeId": st.sampled_from(["0-1", "0-2", "", "x"]),
        "propertyName": st.text(max_size=10),
        "propertyValue": json_scalars,
        "changeSource": st.text(max_size=10),
        "mergedObjectIds": st.lists(st.integers(), max_size=3),
        "associationType": st.sampled_from(["_TO_", "CONTACT_TO_COMPANY", "_TO_COMPANY", "CONTACT_TO_", "x"]),
        "fromObjectId": st.integers(),
        "toObjectId": st.integers() | st.text(max_size=3),
    },
)
bodies = (
    st.binary(max_size=600)
    | st.lists(event_like, max_size=4).map(_dumps)
    | st.lists(st.sampled_from(sorted(BAD_EVENTS)).map(BAD_EVENTS.get), max_size=3).map(_dumps)
    | st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=8).map(_dumps)
)
FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BATCHES = settings(FUZZ, max_examples=400)


def assert_well_answered(answer: Answer) -> None:
    assert answer.status < 500, answer.status
    label = str(answer.status) if "disconnected" not in answer.counted else "disconnected"
    assert answer.counted == {label: 1.0}, answer.counted
    if answer.status != 200:
        assert answer.published == 0
    assert {event.tenant for event in answer.events} <= {str(PORTAL)}
    for letter in answer.dead:
        assert TENANT.foreign_field(orjson.loads(letter.original_value() or b"")) is None


@FUZZ
@given(
    body=bodies,
    headers=st.dictionaries(header_names, number_like, max_size=5),
    sign=st.sampled_from(["no", "yes", "yes_then_headers"]),
    skew_s=st.sampled_from([0, 0, 0, -299, -301, 59, 61, 3600]),
    hang_up=st.booleans(),
)
def test_any_request_is_answered_below_500_counted_and_refusals_publish_nothing(
    body: bytes, headers: dict[str, str], sign: str, skew_s: int, hang_up: bool
) -> None:
    """Signed (so the body gets past the signature) or not, with a timestamp off our clock by ``skew_s``;
    the fuzzed headers win when applied last."""
    if sign == "yes":
        headers = {**headers, **sign_v3(body, skew_s=skew_s)}
    elif sign == "yes_then_headers":
        headers = {**sign_v3(body, skew_s=skew_s), **headers}
    assert_well_answered(post(body, headers, hang_up=hang_up))


FOREIGN_EVENTS: dict[str, dict[str, Any]] = {
    "portalId": {**good_event(97), "portalId": 99999},
    "appId": {**good_event(98), "appId": 7},
}


@BATCHES
@given(
    good=st.lists(st.integers(0, 80), min_size=1, max_size=6, unique=True),
    bad=st.lists(st.sampled_from(sorted(BAD_EVENTS)), min_size=1, max_size=3),
    foreign=st.lists(st.sampled_from(sorted(FOREIGN_EVENTS)), max_size=3),
    seed=st.randoms(use_true_random=False),
)
def test_a_partly_bad_batch_publishes_every_good_event_and_dead_letters_each_bad_one(
    good: list[int], bad: list[str], foreign: list[str], seed: Any
) -> None:
    """Events of another portal or app beside them are counted, and neither published nor dead-lettered."""
    items = [good_event(n) for n in good] + [BAD_EVENTS[name] for name in bad]
    items += [FOREIGN_EVENTS[name] for name in foreign]
    seed.shuffle(items)
    body = _dumps(items)
    answer = post(body, sign_v3(body))
    assert_well_answered(answer)
    assert answer.status == 200
    assert sorted(event.source_event_id or "" for event in answer.events) == sorted(
        str(5000 + n) for n in good
    )
    assert len(answer.dead) == len(bad)
    assert sorted(
        orjson.dumps(orjson.loads(letter.original_value() or b"")) for letter in answer.dead
    ) == sorted(orjson.dumps(orjson.loads(_dumps(BAD_EVENTS[name]))) for name in bad)
    assert {letter.step for letter in answer.dead} == {"webhook"}
    assert {letter.topic for letter in answer.dead} == {"test.changes.hubspot"}
    assert answer.foreign == {name: float(foreign.count(name)) for name in set(foreign)}


# The named inputs, one by one: each got an uncounted 500 (with a traceback) from the old receiver.
@pytest.mark.parametrize(
    ("case", "timestamp"),
    [
        ("310 digits: OverflowError", "9" * 310),
        ("4,301 digits: ValueError", "9" * 4301),
        ("superscript", "¹"),
    ],
)
def test_a_timestamp_header_that_is_not_ascii_digits_gets_401_counted(case: str, timestamp: str) -> None:
    body = _dumps([good_event(1)])
    answer = post(body, sign_v3(body, timestamp=timestamp))
    assert answer.status == 401, case
    assert answer.counted == {"401": 1.0}
    assert answer.published == 0


@pytest.mark.parametrize("bad", ["occurred_past_9999", "association_to_only"])
def test_the_named_bad_events_are_dead_lettered_and_their_batch_published(bad: str) -> None:
    body = _dumps([good_event(1), BAD_EVENTS[bad], good_event(2)])
    answer = post(body, sign_v3(body))
    assert answer.status == 200
    assert answer.counted == {"200": 1.0}
    assert [event.source_event_id for event in answer.events] == ["5001", "5002"]
    [letter] = answer.dead
    assert letter.error_class == "WebhookEventError"
    assert letter.error.startswith("event 1: ")
    assert orjson.loads(letter.original_value() or b"") == orjson.loads(_dumps(BAD_EVENTS[bad]))


def test_a_client_that_hangs_up_mid_body_is_counted_as_disconnected() -> None:
    body = _dumps([good_event(1)])
    answer = post(body, sign_v3(body), hang_up=True)
    assert answer.counted == {"disconnected": 1.0}
    assert answer.published == 0


def test_refusals_log_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    body = _dumps([good_event(1)])
    with caplog.at_level("INFO"):
        post(body, sign_v3(body, timestamp="¹"))
        post(b"{", sign_v3(b"{"))
    lines = [record for record in caplog.records if record.name.startswith("cdc")]
    assert [record.getMessage() for record in lines] == [
        "webhook refused with 401: invalid signature (bad timestamp)",
        "webhook refused with 400: body is not JSON",
    ]
    assert all(record.exc_info is None for record in caplog.records)
