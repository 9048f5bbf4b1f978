"""The HubSpot webhook receiver: ``POST /webhooks/hubspot``, ``GET /healthz``, ``GET /readyz``, ``/metrics``.

Per request, in order (each step answers on its own failure, and nothing that fails reaches Kafka):

1. intake closed (shutting down) -> 503, so HubSpot retries against another replica or later;
2. body larger than the limit -> 413 (read in chunks; never buffered past the limit);
3. signature: v3 when its headers are present, else v1/v2 if allowed -> 401 with the reason counted;
4. body not HubSpot's documented shape -> 400 with a short reason;
5. every event published and acknowledged by Kafka within the deadline -> 200; else 503.

HubSpot waits 5 s and retries any non-2xx up to 10 times over 24 h, then drops the event: the deadline
stays under 5 s, and every 2xx means the events are durable.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cdc.hubspot.signatures import is_valid
from cdc.ingest.hubspot_events import WebhookBodyError, parse_body, translate
from cdc.ingest.publisher import PublishUnavailableError
from cdc.metrics import Metrics
from streams.events import ChangeEvent

MAX_TIMESTAMP_AGE_MS = 300_000
V3_SIGNATURE = "x-hubspot-signature-v3"
V3_TIMESTAMP = "x-hubspot-request-timestamp"


class Publisher(Protocol):
    async def publish(self, events: Sequence[ChangeEvent]) -> None: ...


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
    if not timestamp.isdigit():
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


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
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
        response = await self.handle(request)
        self.metrics.webhook_requests.labels(status=str(response.status_code)).inc()
        self.metrics.webhook_answer_seconds.observe(time.perf_counter() - started)
        self.metrics.progress("webhook")
        return response

    async def handle(self, request: Request) -> Response:
        if not self.intake.open:
            return _error(503, "shutting down; retry")
        try:
            body = await _read_limited(request, self.config.max_body_bytes)
        except _BodyTooLargeError:
            return _error(413, f"body exceeds {self.config.max_body_bytes} bytes")
        problem = signature_problem(request, body, self.config, self.clock())
        if problem is not None:
            self.metrics.webhook_signature_failures.labels(reason=problem).inc()
            return _error(401, f"invalid signature ({problem.replace('_', ' ')})")
        try:
            parsed = parse_body(body)
        except WebhookBodyError as error:
            return _error(400, str(error))
        received_at = datetime.fromtimestamp(self.clock(), UTC)
        translated = [translate(event, received_at) for event in parsed]
        unknown = sum(1 for item in translated if not item.known_type)
        if unknown:
            self.metrics.webhook_unknown_types.inc(unknown)
        try:
            await self.publisher.publish([item.event for item in translated])
        except PublishUnavailableError as error:
            return _error(503, str(error))
        return Response(status_code=200)


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
