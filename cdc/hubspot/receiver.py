"""The HubSpot webhook receiver: ``POST /webhooks/hubspot`` (`cdc ingest` serves its probes beside it).

Per request, in order (each step answers on its own failure, and nothing that fails reaches Kafka):

1. intake closed (shutting down) -> 503, so HubSpot retries against another replica or later;
2. headers, strictly, before the body is read: both Content-Length and Transfer-Encoding -> 400 (RFC 9112
   §6.1: a request smuggling attempt, or a broken proxy); a Content-Length that is not ASCII digits -> 400;
   the signature's headers -> 401: a v3 timestamp that is not 1-15 ASCII digits, older than 5 minutes
   (HubSpot's rule) or further ahead of our clock than ``clock_skew_s`` (ours); no v3 signature when the app
   is not a legacy one (v1/v2 carry no timestamp: a captured request could be replayed for ever);
3. body larger than the limit -> 413, or not complete within ``read_timeout_s`` -> 408 (read in chunks;
   never buffered past the limit);
4. the signature itself (v3, or v1/v2 for a legacy app) -> 401; then ``max_concurrent`` signed requests
   already being published -> 503 (``busy``; HubSpot retries). Requests still being read do not count:
   anyone can open those, so a cap on them would let anyone hold off HubSpot's requests, and the read
   timeout bounds them already;
5. body not a JSON array of objects -> 400 with a short reason; more than ``max_events`` events -> 413;
   an event of another portal (or app, when one is configured) is no change of ours: it is counted, never
   published nor dead-lettered, and a request holding nothing else gets 403; an object of the array that is
   not a readable event is dead-lettered (``crm.deadletter``, step ``webhook``) beside the good events, so
   one bad event cannot make HubSpot retry, and at last drop, the batch around it;
6. every event and dead letter published and acknowledged by Kafka within the deadline -> 200; else 503.

HubSpot waits 5 s and retries any non-2xx up to 10 times over 24 h, then drops the event: the deadline
stays under 5 s, and every 2xx means the events are durable.

Every answer is counted in ``cdc_webhook_requests_total{status}`` (a client that hangs up before its body
is complete as ``status="disconnected"``; one whose headers are not complete in time, closed by the server
(`cdc.serving`), as ``header_timeout``), an unexpected error included as ``500`` before it propagates. A
refusal is counted by its reason too: the signature's in ``cdc_webhook_signature_failures_total``, the
others in ``cdc_webhook_refusals_total``. A refusal logs one short line, never a traceback (refusals are
the sender's mistake, not ours), and closes the connection, since the body may be unread: a client that
trickles it cannot keep the connection once answered.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Protocol

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cdc.hubspot.events import (
    Foreign,
    Rejected,
    Tenant,
    TooManyEventsError,
    WebhookBodyError,
    read_body,
)
from cdc.hubspot.signatures import is_valid
from cdc.metrics import Metrics
from cdc.sources.publisher import PublishUnavailableError
from streams.deadletters import WEBHOOK_STEP, DeadLetter
from streams.events import ChangeEvent
from streams.keys import SourceSystem

log = logging.getLogger("cdc.ingest.webhooks")

MAX_TIMESTAMP_AGE_MS = 300_000
V3_SIGNATURE = "x-hubspot-signature-v3"
V3_TIMESTAMP = "x-hubspot-request-timestamp"
LEGACY_SIGNATURE = "x-hubspot-signature"
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
    ) -> object: ...

    """Acknowledged by Kafka when it returns (what it returns, the receiver does not use)."""


@dataclass(frozen=True)
class ReceiverConfig:
    client_secret: str
    tenant: Tenant
    """Our portal (and app): events of any other are refused."""
    legacy_signatures: bool = False
    """Take v1/v2 signatures when v3 is absent: only for a legacy app, which signs CRM webhooks with v1."""
    max_body_bytes: int = 1024 * 1024
    max_events: int = 100
    clock_skew_s: float = 60.0
    read_timeout_s: float = 5.0
    """The body must be complete this long after the headers (the server times the headers)."""
    max_concurrent: int = 64
    """Signed requests being published at once (requests still being read do not count)."""
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


@dataclass(frozen=True)
class Refusal:
    """A request not taken: its status, the reason counted (a bounded label) and the message answered."""

    status: int
    reason: str
    message: str


def _signature_refusal(reason: str) -> Refusal:
    return Refusal(401, reason, f"invalid signature ({reason.replace('_', ' ')})")


def _timestamp_problem(timestamp: str, config: ReceiverConfig, now: float) -> str | None:
    if not _TIMESTAMP.fullmatch(timestamp):
        return "bad_timestamp"
    age_ms = now * 1000 - int(timestamp)
    if age_ms > MAX_TIMESTAMP_AGE_MS:
        return "stale"
    # HubSpot documents no rule for a timestamp ahead of ours; without one, a captured request signed with a
    # future timestamp would stay replayable until then. Ours: clock skew up to `clock_skew_s`.
    if -age_ms > config.clock_skew_s * 1000:
        return "future"
    return None


def signature_header_problem(request: Request, config: ReceiverConfig, now: float) -> str | None:
    """What the signature headers alone show to be wrong (so the body need not be read), else ``None``.

    v3 when its headers are present; else v1/v2, only from a legacy app (fact sheet §2: CRM webhooks carry
    v1, v3 was added for OAuth apps; v1/v2 carry no timestamp).
    """
    if V3_SIGNATURE in request.headers:
        return _timestamp_problem(request.headers.get(V3_TIMESTAMP, ""), config, now)
    if LEGACY_SIGNATURE not in request.headers:
        return "missing"
    if not config.legacy_signatures:
        return "v3_required"
    if request.headers.get("x-hubspot-signature-version", "v1").lower() not in ("v1", "v2"):
        return "unknown_version"
    return None


def signature_matches(request: Request, body: bytes, config: ReceiverConfig, now: float) -> bool:
    """True when HubSpot signed this body with our app's secret (after :func:`signature_header_problem`)."""
    uri = signed_uri(request, config)
    if V3_SIGNATURE in request.headers:
        return is_valid(
            request.headers[V3_SIGNATURE], config.client_secret, body, http_uri=uri,
            http_method=request.method, signature_version="v3",
            timestamp=request.headers[V3_TIMESTAMP], now=now,
        )  # fmt: skip
    return is_valid(
        request.headers[LEGACY_SIGNATURE], config.client_secret, body, http_uri=uri,
        http_method=request.method,
        signature_version=request.headers.get("x-hubspot-signature-version", "v1").lower(),
    )  # fmt: skip


def _header_refusal(request: Request, config: ReceiverConfig, now: float) -> Refusal | None:
    """Step 2: what the headers alone refuse, before a byte of the body is read."""
    if "transfer-encoding" in request.headers and "content-length" in request.headers:
        # h11 lets Transfer-Encoding win and hands both on; RFC 9112 §6.1 lets a server refuse such a
        # request, and it must close the connection after answering (every refusal here does).
        return Refusal(400, "framing", "both Content-Length and Transfer-Encoding (RFC 9112 section 6.1)")
    declared = request.headers.get("content-length")
    if declared is not None and not _DECIMAL.fullmatch(declared):
        return Refusal(400, "malformed_header", "malformed Content-Length header")
    problem = signature_header_problem(request, config, now)
    return None if problem is None else _signature_refusal(problem)


class _BodyTooLargeError(Exception):
    pass


async def _read_limited(request: Request, limit: int, timeout_s: float) -> bytes:
    """The body; :class:`_BodyTooLargeError` past ``limit`` bytes, ``TimeoutError`` after ``timeout_s``."""
    declared = request.headers.get("content-length")  # ASCII digits: _header_refusal checked
    if declared is not None and (len(declared.lstrip("0")) > len(str(limit)) or int(declared) > limit):
        raise _BodyTooLargeError
    chunks, size = [], 0
    async with asyncio.timeout(timeout_s):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _BodyTooLargeError
            chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    """Every answer but a 200 closes the connection: the request's body may be unread, and a keep-alive
    connection would go on reading it (RFC 9112 §6.1 requires it after refusing a smuggling attempt)."""
    return JSONResponse(
        {"status": "error", "message": message}, status_code=status, headers={"Connection": "close"}
    )


def count_header_timeout(metrics: Metrics) -> None:
    """A connection the server closed because its request's headers did not arrive in time (`cdc.serving`)."""
    metrics.webhook_requests.labels(status="header_timeout").inc()
    metrics.webhook_refusals.labels(reason="header_timeout").inc()


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
        self.in_progress = 0

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

    def _refuse(self, refusal: Refusal) -> JSONResponse:
        """Counted by its reason; one short log line (no traceback, no header or body values)."""
        if refusal.status == HTTPStatus.UNAUTHORIZED:  # only the signature answers 401
            self.metrics.webhook_signature_failures.labels(reason=refusal.reason).inc()
        else:
            self.metrics.webhook_refusals.labels(reason=refusal.reason).inc()
        log.warning("webhook refused with %d: %s", refusal.status, refusal.message)
        return _error(refusal.status, refusal.message)

    async def _admit(self, request: Request) -> Response | bytes:
        """The body of a request we take (steps 1-4), else the answer refusing it."""
        if not self.intake.open:
            return _error(503, "shutting down; retry")
        now = self.clock()
        refusal = _header_refusal(request, self.config, now)
        if refusal is not None:
            return self._refuse(refusal)
        limit = self.config.max_body_bytes
        try:
            body = await _read_limited(request, limit, self.config.read_timeout_s)
        except _BodyTooLargeError:
            return self._refuse(Refusal(413, "body_too_large", f"body exceeds {limit} bytes"))
        except TimeoutError:
            message = f"body not complete within {self.config.read_timeout_s:g} s"
            return self._refuse(Refusal(408, "body_timeout", message))
        if not signature_matches(request, body, self.config, now):
            return self._refuse(_signature_refusal("mismatch"))
        return body

    async def handle(self, request: Request) -> Response:
        admitted = await self._admit(request)
        if isinstance(admitted, Response):
            return admitted
        if self.in_progress >= self.config.max_concurrent:
            return self._refuse(Refusal(503, "busy", "too many webhook requests being published; retry"))
        self.in_progress += 1
        try:
            return await self._take(admitted)
        finally:
            self.in_progress -= 1

    async def _take(self, admitted: bytes) -> Response:
        """Steps 5-6: the events of a signed body published, else the answer refusing it."""
        received_at = datetime.fromtimestamp(self.clock(), UTC)
        try:
            batch = read_body(admitted, received_at, self.config.tenant, self.config.max_events)
        except TooManyEventsError as error:
            return self._refuse(Refusal(413, "too_many_events", str(error)))
        except WebhookBodyError as error:
            return self._refuse(Refusal(400, "malformed_body", str(error)))
        if batch.foreign:
            refusal = self._set_apart(batch.foreign, kept=len(batch.translated) + len(batch.rejected))
            if refusal is not None:
                return self._refuse(refusal)
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

    def _set_apart(self, foreign: list[Foreign], kept: int) -> Refusal | None:
        """Count the events of another portal or app; the refusal when the request holds nothing else.

        Whether HubSpot ever mixes portals in one request is unverified (fact sheet §1.1): if it does, our
        events beside the foreign ones are published (a 403 would make HubSpot drop them after its retries).
        A foreign event is never dead-lettered: another account's data is not ours to keep, and an app
        installed in a second portal would fill the topic.
        """
        for item in foreign:
            self.metrics.webhook_foreign_events.labels(field=item.field).inc()
        first = foreign[0]
        what = "portal" if first.field == "portalId" else "app"
        message = f"{len(foreign)} event(s) of another {what} ({first.field} {first.value}), not taken here"
        if kept == 0:
            return Refusal(403, f"foreign_{what}", message)
        log.warning("webhook: %s; the %d other event(s) are taken", message, kept)
        return None

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
    intake: Intake | None = None,
    clock: Callable[[], float] = time.time,
    routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The receiver as an ASGI app, with ``routes`` beside it (the role's probes); the caller owns the
    publisher's lifecycle."""
    receiver = _Receiver(config, publisher, metrics, intake or Intake(), clock)
    return Starlette(routes=[Route("/webhooks/hubspot", receiver.receive, methods=["POST"]), *routes])
