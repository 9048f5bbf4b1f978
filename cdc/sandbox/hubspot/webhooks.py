"""Webhook events for every change, signed batches of at most 100, and their delivery with retries.

Order of one delivery attempt:

1. ``enqueue`` turns store changes into events (fact sheet §1.2 fields) routed by the subscriptions;
   events are dropped here when the app has no target URL, or by the drop knob.
2. The dispatcher takes up to 100 queued events per request (shuffled by the reorder knob), signs the
   body with v1 (``X-HubSpot-Signature``) and v3 (``X-HubSpot-Signature-v3`` + timestamp) for that attempt,
   and POSTs it with a 5-second timeout (settable), at most ``maxConcurrentRequests`` at once.
3. Anything but a 2xx answer (or a timeout / connection error) schedules a retry after an exponential,
   seeded-jitter backoff (``retry_base_seconds * 2**n``), up to 10 retries (§1.4), ``attemptNumber`` +1
   each; after the last one the events are dropped. The duplicate knob sends a delivered batch twice.

Every attempt lands in the delivery log. Backoff waits on the sandbox clock, so advancing it (admin
API) makes due retries go at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import heapq
import hmac
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from cdc.sandbox.clock import Clock
from cdc.sandbox.faults import Faults
from cdc.sandbox.hubspot.store import Change
from cdc.sandbox.hubspot.subscriptions import Subscriptions

__all__ = ["MAX_BATCH", "MAX_RETRIES", "WebhookDispatcher", "sign_request"]

MAX_BATCH = 100
MAX_RETRIES = 10
LOG_SIZE = 10_000
# HubSpot decodes these escapes in the URI before computing v3 (validating-requests page).
_DECODE = ("%3A:", "%2F/", "%3F?", "%40@", "%21!", "%24$", "%27'", "%28(", "%29)", "%2A*", "%2C,", "%3B;")


def _signed_uri(url: str) -> str:
    for pair in _DECODE:
        escape, char = pair[:3], pair[3]
        url = url.replace(escape, char).replace(escape.lower(), char)
    return url


def sign_request(secret: str, url: str, body: bytes, timestamp_ms: int) -> dict[str, str]:
    """The signature headers HubSpot puts on a webhook POST (v1 for CRM webhooks, plus v3)."""
    v1 = hashlib.sha256(secret.encode() + body).hexdigest()
    message = b"POST" + _signed_uri(url).encode() + body + str(timestamp_ms).encode()
    v3 = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature": v1,
        "X-HubSpot-Signature-Version": "v1",
        "X-HubSpot-Signature-v3": v3,
        "X-HubSpot-Request-Timestamp": str(timestamp_ms),
    }


def _association_fields(change: Change, *, generic: bool) -> dict[str, Any]:
    """The association fields of an ``associationChange`` event, by format (fact sheet hubspot.md §1.2 for
    the legacy one). The generic one names both types by id and the association by its type id, as
    community code reads ``object.associationChange`` (hubspot_2026.md §3: no HubSpot page shows it;
    unverified); the sandbox sends only those fields, not the legacy ``associationType`` beside them, and
    no ``objectId``: the harsher reading, so a receiver that needs the legacy names fails here first."""
    extra = {k: v for k, v in change.extra.items() if not k.startswith("_")}
    if not generic:
        return extra
    return {
        "fromObjectTypeId": change.object_type.type_id,
        "fromObjectId": extra["fromObjectId"],
        "toObjectTypeId": change.extra["_toObjectTypeId"],
        "toObjectId": extra["toObjectId"],
        "associationTypeId": change.extra["_associationTypeId"],
        "associationRemoved": extra["associationRemoved"],
    }


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    events: list[dict[str, Any]] = field(compare=False)
    attempt: int = field(default=0, compare=False)
    copy: bool = field(default=False, compare=False)


class WebhookDispatcher:
    def __init__(
        self,
        *,
        clock: Clock,
        faults: Faults,
        subscriptions: Subscriptions,
        seed: int,
        client_secret: str,
        app_id: int,
        portal_id: int,
        retry_base_seconds: float,
    ) -> None:
        self._clock = clock
        self._faults = faults
        self._subs = subscriptions
        self._rng = random.Random(seed)  # noqa: S311 -- event ids and jitter, not cryptography
        self.client_secret = client_secret
        self.app_id = app_id
        self.portal_id = portal_id
        self.retry_base_seconds = retry_base_seconds
        self.timeout_seconds = 5.0
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self.dropped = 0
        self._pending: deque[dict[str, Any]] = deque()
        self._retries: list[_Job] = []
        self._seq = 0
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._semaphore, self._semaphore_size = asyncio.Semaphore(10), 10

    # ---- building events -----------------------------------------------------------------------
    def enqueue(self, changes: list[Change]) -> None:
        for change in changes:
            event = self._event(change)
            if event is None:
                continue
            if self._subs.target_url is None or self._faults.roll(self._faults.knobs.webhook_drop_rate):
                self.dropped += 1
                self.log.append(
                    {"dropped": True, "eventIds": [event["eventId"]], "at": self._clock.epoch_ms()}
                )
                continue
            self._pending.append(event)
        if self._pending:
            self._idle.clear()
            self._wake.set()

    def _event(self, change: Change) -> dict[str, Any] | None:
        ot = change.object_type
        routed = self._subs.route(ot.singular, change.kind, change.property_name)
        if routed is None:
            return None
        subscription_id, subscription_type = routed
        event: dict[str, Any] = {
            "eventId": self._rng.randrange(1, 2**62),
            "subscriptionId": subscription_id,
            "portalId": self.portal_id,
            "appId": self.app_id,
            "occurredAt": change.occurred_at,
            "subscriptionType": subscription_type,
            "attemptNumber": 0,
            "objectId": int(change.object_id),
            "changeSource": change.actor.change_source,
            "sourceId": change.actor.source_id,
        }
        generic = subscription_type.startswith("object.")
        if generic:
            event["objectTypeId"] = ot.type_id
        if change.kind == "associationChange":
            if generic:
                del event["objectId"], event["objectTypeId"]
            event.update(_association_fields(change, generic=generic))
            return event
        if change.kind == "creation":
            event["changeFlag"] = "CREATED"
        elif change.kind == "deletion":
            event["changeFlag"] = "DELETED"
        elif change.kind == "propertyChange":
            event["propertyName"] = change.property_name
            event["propertyValue"] = change.property_value
        elif change.kind == "merge":
            event["objectId"] = change.extra["primaryObjectId"]
        event.update(change.extra)
        return event

    # ---- delivering ------------------------------------------------------------------------------
    def state(self) -> dict[str, int]:
        return {"queued": len(self._pending), "in_flight": self._in_flight, "retrying": len(self._retries)}

    def wake(self) -> None:
        """Re-check due retries (after the clock moved) and queued events."""
        self._wake.set()

    async def wait_idle(self, limit_s: float = 30.0) -> None:
        """Until nothing is queued, in flight or waiting for a retry."""
        await asyncio.wait_for(self._idle.wait(), limit_s)

    def _schedule(
        self, events: list[dict[str, Any]], attempt: int, delay: float, *, copy: bool = False
    ) -> None:
        self._seq += 1
        heapq.heappush(self._retries, _Job(self._clock.monotonic() + delay, self._seq, events, attempt, copy))

    def _check_idle(self) -> None:
        if not self._pending and not self._retries and self._in_flight == 0:
            self._idle.set()

    async def run(self) -> None:
        """The dispatcher loop; the app's lifespan owns it (and cancels it on shutdown)."""
        async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as group:
            while True:
                delay = self._retries[0].due - self._clock.monotonic() if self._retries else None
                if delay is None or delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                self._wake.clear()
                for job in self._take(self._clock.monotonic()):
                    self._in_flight += 1
                    group.create_task(self._attempt(session, job))
                self._check_idle()

    def _take(self, now: float) -> list[_Job]:
        jobs = []
        while self._retries and self._retries[0].due <= now:
            jobs.append(heapq.heappop(self._retries))
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(MAX_BATCH, len(self._pending)))]
            if self._faults.knobs.webhook_reorder:
                self._faults.shuffle(batch)
            self._seq += 1
            jobs.append(_Job(now, self._seq, batch))
            if self._faults.roll(self._faults.knobs.webhook_duplicate_rate):
                self._seq += 1
                jobs.append(_Job(now, self._seq, list(batch), copy=True))
        return jobs

    async def _attempt(self, session: aiohttp.ClientSession, job: _Job) -> None:
        try:
            await self._post(session, job)
        finally:
            self._in_flight -= 1
            self._check_idle()
            self._wake.set()

    async def _post(self, session: aiohttp.ClientSession, job: _Job) -> None:
        url = self._subs.target_url
        events = [{**event, "attemptNumber": job.attempt} for event in job.events]
        entry: dict[str, Any] = {
            "batch": job.seq,
            "attempt": job.attempt,
            "copy": job.copy,
            "url": url,
            "events": len(events),
            "eventIds": [e["eventId"] for e in events],
            "at": self._clock.epoch_ms(),
            "status": None,
            "error": None,
        }
        if url is None:
            entry["error"] = "no target URL"
            self.log.append(entry)
            return
        body = orjson.dumps(events)
        # Signed with the wall clock, not the sandbox's: X-HubSpot-Request-Timestamp is when HubSpot sends
        # this attempt, in the time the receiver shares with it (reference/hubspot.md, signatures: the
        # timestamp is per delivery attempt). The sandbox clock jumps ahead only to expire its own state.
        headers = sign_request(self.client_secret, url, body, int(time.time() * 1000))
        started = time.monotonic()
        try:
            async with (
                self._limit(),
                session.post(
                    url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_seconds)
                ) as response,
            ):
                entry["status"] = response.status
                await response.read()
        except TimeoutError:
            entry["error"] = "timeout"
        except aiohttp.ClientError as error:
            entry["error"] = type(error).__name__
        entry["ms"] = round((time.monotonic() - started) * 1000, 1)
        self.log.append(entry)
        if entry["status"] is not None and 200 <= entry["status"] < 300:  # noqa: PLR2004 -- only 2xx stops retries
            return
        if job.attempt >= MAX_RETRIES:
            entry["gaveUp"] = True
            return
        backoff = self.retry_base_seconds * 2**job.attempt * (1 + 0.25 * self._rng.random())
        self._schedule(job.events, job.attempt + 1, backoff, copy=job.copy)

    def _limit(self) -> asyncio.Semaphore:
        """At most ``maxConcurrentRequests`` POSTs at once (a new setting applies to later attempts)."""
        if self._semaphore_size != self._subs.max_concurrent:
            self._semaphore, self._semaphore_size = (
                asyncio.Semaphore(self._subs.max_concurrent),
                self._subs.max_concurrent,
            )
        return self._semaphore
