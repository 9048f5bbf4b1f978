"""Waiting out a CRM outage: a call that raises `CrmUnavailableError` (a 429, a 5xx, a timeout) is retried
with capped exponential backoff, or after the Retry-After the CRM gave, until it succeeds or the loop stops.
The router and the apply loop wait this way; a consumer is kept in its group meanwhile (``keepalive``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from consumers.ports import CrmUnavailableError

__all__ = ["pause", "retrying"]

log = logging.getLogger(__name__)
T = TypeVar("T")


async def pause(stop: asyncio.Event, seconds: float, keepalive: Callable[[], Awaitable[None]] | None) -> None:
    """Wait ``seconds`` or until stopped, keeping a consumer alive meanwhile."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        if keepalive is not None:
            await keepalive()


async def retrying(
    call: Callable[[], Awaitable[T]],
    stop: asyncio.Event,
    *,
    what: str,
    on_pause: Callable[[CrmUnavailableError], None] | None = None,
    keepalive: Callable[[], Awaitable[None]] | None = None,
) -> T:
    """Retry a call through CRM outages with capped exponential backoff (Retry-After when given)."""
    attempt = 0
    while True:
        try:
            return await call()
        except CrmUnavailableError as error:
            attempt += 1
            delay = error.retry_after_s if error.retry_after_s is not None else min(30.0, 0.2 * 2**attempt)
            delay = delay + random.uniform(0, delay / 4)  # noqa: S311 -- jitter, not cryptography
            log.warning("%s paused: %s; retrying in %.1fs (attempt %d)", what, error, delay, attempt)
            if on_pause is not None:
                on_pause(error)
            await pause(stop, delay, keepalive)
            if stop.is_set():
                raise
