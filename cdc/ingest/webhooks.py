"""The HubSpot webhook receiver: ``POST /webhooks/hubspot``, ``GET /healthz``, ``GET /readyz``, ``/metrics``.

Per request, in order (each step answers on its own failure, and nothing that fails reaches Kafka):

1. intake closed (shutting down) -> 503, so HubSpot retries against another replica or later;
2. headers, strictly, before anything reads them as numbers: a v3 timestamp that is not 1-15 ASCII digits
   -> 401 (``bad_timestamp``); a Content-Length that is not ASCII digits -> 400;
3. body larger than the limit -> 413 (read in chunks; never buffered past the limit);
4. signature: v3 when its headers are present, else v1/v2 if allowed -> 401 with the reason counted;
5. body not a JSON array of objects -> 400 with a short reason; an object of the array that is not a
   readable event is dead-lettered (``crm.deadletter``, step ``webhook``) beside the good events, so one bad
   event cannot make HubSpot retry, and at last drop, the batch around it;
6. every event and dead letter published and acknowledged by Kafka within the deadline -> 200; else 503.

HubSpot waits 5 s and retries any non-2xx up to 10 times over 24 h, then drops the event: the deadline
stays under 5 s, and every 2xx means the events are durable.

Every answer is counted in ``cdc_webhook_requests_total{status}`` (a client that hangs up before its body
is complete as ``status="disconnected"``), an unexpected error included as ``500`` before it propagates.
A refused request logs one short line, never a traceback: refusals are the sender's mistake, not ours.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cdc.hubspot.signatures import is_valid
from cdc.ingest.hubspot_events import Rejected, WebhookBodyError, read_body
from cdc.ingest.publisher import PublishUnavailableError
from cdc.metrics import Metrics
from streams.deadletters import WEBHOOK_STEP, DeadLetter
from streams.events import ChangeEvent
from streams.keys import SourceSystem

log = logging.getLogger("cdc.ingest.webhooks")

MAX_TIMESTAMP_AGE_MS = 300_000
V3_SIGNATURE = "x-hubspot-signature-v3"
V3_TIMESTAMP = "x-hubspot-request-timestamp"
# ASCII digits only: str.isdigit() also takes "¹" or "٣", which int() then refuses. A ms timestamp has 13
# digits until the year 2286; 15 leave room and keep int() and float arithmetic far from their limits.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_DECIMAL = re.compile(r"[0-9]+")
DEADLETTER_STEP = WEBHOOK_STEP
"""The dead letters' ``step``: `cdc deadletter list --step webhook` lists the events set aside here."""


class Publisher(Protocol):
    def changes_topic(self, system: SourceSystem) -> str: ...

    async def publish(
        self, events: Sequence[ChangeEvent], dead_letters: Sequence[DeadLetter] = ()
    ) -> None: ...


@dataclass(frozen=True)
class ReceiverConfig:
    client_secret: str
    max_body_bytes: int = 1024 * 1024
    allow_v1_v2: bool = True
    public_url: str | None = None
    """The webhook URL as HubSpot calls it (https://host/webhooks/hubspot), for v2/v3 signatures behind a
    proxy or load balancer that changes scheme or host."""
    trust_forwarded_headers: bool = False
    """Take scheme and host from X-Forwarded-Proto / X-Forwarded-Host (only behind a trusted proxy)."""


def signed_uri(request: Request, config: ReceiverConfig) -> str:
    """The URI as HubSpot saw it: the configured public URL, else the request's own (or forwarded) one."""
    query = f"?{request.url.query}" if request.url.query else ""
    if config.public_url:
        return config.public_url + query
    scheme, host = request.url.scheme, request.headers.get("host", request.url.netloc)
    if config.trust_forwarded_headers:
        scheme = request.headers.get("x-forwarded-proto", scheme).split(",")[0].strip()
        host = request.headers.get("x-forwarded-host", host).split(",")[0].strip()
    return f"{scheme}://{host}{request.url.path}{query}"


def _v3_problem(request: Request, body: bytes, config: ReceiverConfig, now: float) -> str | None:
    timestamp = request.headers.get(V3_TIMESTAMP, "")
    if not _TIMESTAMP.fullmatch(timestamp):
        return "bad_timestamp"
    if now * 1000 - int(timestamp) > MAX_TIMESTAMP_AGE_MS:
        return "stale"
    valid = is_valid(
        request.headers[V3_SIGNATURE], config.client_secret, body, http_uri=signed_uri(request, config),
        http_method=request.method, signature_version="v3", timestamp=timestamp, now=now,
    )  # fmt: skip
    return None if valid else "mismatch"


def _legacy_problem(request: Request, body: bytes, config: ReceiverConfig) -> str | None:
    signature = request.headers.get("x-hubspot-signature")
    if signature is None:
        return "missing"
    if not config.allow_v1_v2:
        return "v3_required"
    version = request.headers.get("x-hubspot-signature-version", "v1").lower()
    if version not in ("v1", "v2"):
        return "unknown_version"
    valid = is_valid(
        signature, config.client_secret, body, http_uri=signed_uri(request, config),
        http_method=request.method, signature_version=version,
    )  # fmt: skip
    return None if valid else "mismatch"


def signature_problem(request: Request, body: bytes, config: ReceiverConfig, now: float) -> str | None:
    """``None`` when HubSpot signed the request with our app's secret, else the reason it did not.

    v3 (HMAC with a timestamp) when its headers are present; else v1/v2 when the configuration allows.
    """
    if V3_SIGNATURE in request.headers:
        return _v3_problem(request, body, config, now)
    return _legacy_problem(request, body, config)


class _BodyTooLargeError(Exception):
    pass


def _malformed_header(request: Request) -> str | None:
    """A header we read as a number that is not one (a v3 timestamp is checked with the signature)."""
    declared = request.headers.get("content-length")
    if declared is not None and not _DECIMAL.fullmatch(declared):
        return "malformed Content-Length header"
    return None


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")  # ASCII digits: _header_problem checked
    if declared is not None and (len(declared.lstrip("0")) > len(str(limit)) or int(declared) > limit):
        raise _BodyTooLargeError
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message}, status_code=status)


def _refuse(status: int, message: str) -> JSONResponse:
    """A 4xx: the sender's mistake, so one short log line (no traceback, no header or body values)."""
    log.warning("webhook refused with %d: %s", status, message)
    return _error(status, message)


@dataclass
class Intake:
    """Open while the receiver takes new requests; shutdown closes it first."""

    open: bool = True


class _Receiver:
    def __init__(
        self,
        config: ReceiverConfig,
        publisher: Publisher,
        metrics: Metrics,
        intake: Intake,
        clock: Callable[[], float],
    ) -> None:
        self.config, self.publisher, self.metrics, self.intake, self.clock = (
            config, publisher, metrics, intake, clock,
        )  # fmt: skip

    async def receive(self, request: Request) -> Response:
        started = time.perf_counter()
        outcome = "500"  # what an exception escaping handle() becomes
        try:
            response = await self.handle(request)
            outcome = str(response.status_code)
        except ClientDisconnect:
            # Nobody reads this answer; HubSpot counts a hang-up as a failed delivery and retries.
            outcome = "disconnected"
            log.warning("webhook client hung up before its body was complete")
            return Response(status_code=400)
        finally:
            self.metrics.webhook_requests.labels(status=outcome).inc()
            self.metrics.webhook_answer_seconds.observe(time.perf_counter() - started)
            self.metrics.progress("webhook")
        return response

    async def _admit(self, request: Request) -> Response | bytes:
        """The body of a request we take (steps 1-4), else the answer refusing it."""
        if not self.intake.open:
            return _error(503, "shutting down; retry")
        problem = _malformed_header(request)
        if problem is not None:
            return _refuse(400, problem)
        if V3_SIGNATURE in request.headers and not _TIMESTAMP.fullmatch(
            request.headers.get(V3_TIMESTAMP, "")
        ):
            # before the body is read, so it costs nothing (signature_problem checks it the same way)
            self.metrics.webhook_signature_failures.labels(reason="bad_timestamp").inc()
            return _refuse(401, "invalid signature (bad timestamp)")
        try:
            body = await _read_limited(request, self.config.max_body_bytes)
        except _BodyTooLargeError:
            return _refuse(413, f"body exceeds {self.config.max_body_bytes} bytes")
        problem = signature_problem(request, body, self.config, self.clock())
        if problem is not None:
            self.metrics.webhook_signature_failures.labels(reason=problem).inc()
            return _refuse(401, f"invalid signature ({problem.replace('_', ' ')})")
        return body

    async def handle(self, request: Request) -> Response:
        admitted = await self._admit(request)
        if isinstance(admitted, Response):
            return admitted
        received_at = datetime.fromtimestamp(self.clock(), UTC)
        try:
            batch = read_body(admitted, received_at)
        except WebhookBodyError as error:
            return _refuse(400, str(error))
        unknown = sum(1 for item in batch.translated if not item.known_type)
        if unknown:
            self.metrics.webhook_unknown_types.inc(unknown)
        dead = [self._dead_letter(rejected, received_at) for rejected in batch.rejected]
        try:
            await self.publisher.publish([item.event for item in batch.translated], dead)
        except PublishUnavailableError as error:
            return _error(503, str(error))
        if dead:
            self.metrics.sync_deadletters.labels(step=DEADLETTER_STEP, reason="unreadable_event").inc(
                len(dead)
            )
            log.warning(
                "webhook: %d of %d event(s) dead-lettered, first: %s",
                len(dead), len(dead) + len(batch.translated), batch.rejected[0].reason,
            )  # fmt: skip
        return Response(status_code=200)

    def _dead_letter(self, rejected: Rejected, failed_at: datetime) -> DeadLetter:
        """The event as HubSpot sent it, with why it was set aside.

        It was never on Kafka, so it has no position: ``topic`` is where it was headed, partition and offset
        are 0, and ``step`` is ``webhook``.
        """
        value, encoding = DeadLetter.wrap_value(orjson.dumps(rejected.raw))
        return DeadLetter(
            topic=self.publisher.changes_topic(SourceSystem.HUBSPOT),
            partition=0,
            offset=0,
            key=None,
            value=value,
            value_encoding=encoding,
            step=DEADLETTER_STEP,
            error_class="WebhookEventError",
            error=rejected.reason[:2000],
            failed_at=failed_at,
        )


def create_app(
    config: ReceiverConfig,
    publisher: Publisher,
    metrics: Metrics,
    *,
    ready: Callable[[], Awaitable[bool]],
    intake: Intake | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The receiver as an ASGI app; the caller owns the publisher's lifecycle."""
    intake = intake or Intake()
    receiver = _Receiver(config, publisher, metrics, intake, clock)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        if not intake.open:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        if not await ready():
            return JSONResponse({"status": "kafka unavailable or topics missing"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/webhooks/hubspot", receiver.receive, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ]
    )
