"""The one retry policy of every client and loop, and the one way to wait until stopped.

What happens on a 429 (or a 5xx, a timeout, a dropped connection)? In order:

1. The answer is sorted by its CRM's one function (`cdc.hubspot.errors.classify`,
   `cdc.dataverse.errors.classify`): a 429, 423, 477, 5xx, network error or timeout is a *system error*
   (``RetriableError``; to the sync engine `consumers.ports.CrmUnavailableError`) and is retried here; a
   *record error* (400, 404, 409 for this input) never is, and a refused credential has a slower policy of
   its own (`cdc.sources.auth_pause`).
2. A system error that says how long to wait (its ``retry_after``: the ``Retry-After`` header, HubSpot's
   rate-limit window) waits exactly that long, capped at ``retry_after_max_s``; such waits count against
   ``throttles``. Any other waits ``min(wait_max_s, wait_initial_s * 2**(n-1) + uniform(0, jitter_s))``
   before the n-th retry of the call (stamina's formula) and counts against ``retries``.
3. Once a limit is spent the error goes to the caller. The HTTP clients keep theirs short in the sync
   engine's gateways, so the engine, which waits without limit (`ENGINE`), pauses the whole batch while its
   consumer stays in the group (``keepalive``) and a stopping role stops at once (``stop``).
4. Every retry is logged (one warning) and reported to the caller's ``on_retry`` by stamina's on-retry
   hook: `cdc.metrics.Metrics.retried` counts it as ``cdc_retries_total{what}``.

stamina does the counting of attempts and the waiting; :func:`retrying` races its wait against ``stop``
(the wait is cut short, the error that was waited on is raised) and never cancels a call in flight.
Tests switch the waits off with ``stamina.set_testing(True, attempts=N)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Literal, TypeVar

import stamina
from stamina.instrumentation import RetryDetails, set_on_retry_hooks

__all__ = [
    "ENGINE",
    "STOPPED",
    "Keepalive",
    "Retry",
    "RetryPolicy",
    "Stopped",
    "retry_after",
    "retrying",
    "unless_stopped",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
Keepalive = Callable[[], Awaitable[None]]
KEEPALIVE_S = 1.0
"""How often ``keepalive`` is awaited while waiting (a consumer polls well within max.poll.interval.ms)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long one call is retried (module docstring, steps 2 and 3)."""

    retries: int | None = 6
    """Retries of a system error that names no wait (5xx, network, timeout); None: until it succeeds."""
    throttles: int | None = None
    """Waits a server asked for (``retry_after``) per call; None: as many as it asks for."""
    wait_initial_s: float = 0.5
    wait_max_s: float = 30.0
    jitter_s: float = 0.5
    """Random extra wait, so that replicas do not retry in step."""
    retry_after_max_s: float = 3600.0
    """The longest wait a server is obeyed for: a longer ``Retry-After`` waits this long, then asks again."""


ENGINE = RetryPolicy(retries=None, throttles=None, wait_initial_s=0.4, wait_max_s=30.0, jitter_s=0.5)
"""The sync engine's waits for a CRM outage (`consumers.router`, `consumers.apply_loop`): until it ends."""


@dataclass(frozen=True)
class Retry:
    """One retry, as the on-retry hook reports it: the ``number``-th, ``wait_s`` after ``error``."""

    what: str
    number: int
    wait_s: float
    error: Exception


class Stopped(Enum):
    STOPPED = "stopped"


STOPPED = Stopped.STOPPED
"""What :func:`unless_stopped` gives back when ``stop`` came first."""


def retry_after(error: BaseException) -> float | None:
    """The wait a system error carries (``retry_after``: a server's ``Retry-After``), or None."""
    value = getattr(error, "retry_after", None)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class _Scope:
    what: str
    on_retry: Callable[[Retry], None] | None
    level: int


_SCOPE: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("cdc_retry_scope", default=None)


def _on_retry(details: RetryDetails) -> None:
    """stamina's on-retry hook: logs and reports the retries of :func:`retrying` (its scope says whose)."""
    scope = _SCOPE.get()
    if scope is None:
        return  # not one of ours
    retry = Retry(scope.what, details.retry_num, details.wait_for, details.caused_by)
    log.log(scope.level, "%s: %s; retry %d in %.2fs", retry.what, retry.error, retry.number, retry.wait_s)
    if scope.on_retry is not None:
        scope.on_retry(retry)


@functools.cache
def _instrument() -> None:
    """Install the hook once, in place of stamina's defaults (they count into prometheus_client's global
    registry; ours are per process, `cdc.metrics`)."""
    set_on_retry_hooks([_on_retry])


class _Decision:
    """stamina's ``on`` hook for one call: whether the error is retried, and the server's wait if it named one
    (step 2); counts the retries of each kind, so a throttle never uses up the retries of an outage."""

    def __init__(self, policy: RetryPolicy, on: Callable[[Exception], bool]) -> None:
        self._policy, self._on = policy, on
        self._retries = self._throttles = 0
        self.last: Exception | None = None

    def __call__(self, error: BaseException) -> bool | float:
        if not isinstance(error, Exception):
            return False  # a cancellation (tenacity hands every exception of an attempt over): never retried
        self.last = error
        if not self._on(error):
            return False
        policy, wait = self._policy, retry_after(error)
        if wait is None:
            if policy.retries is not None and self._retries >= policy.retries:
                return False
            self._retries += 1
            return True
        if policy.throttles is not None and self._throttles >= policy.throttles:
            return False
        self._throttles += 1
        return min(max(wait, 0.0), policy.retry_after_max_s)


def _predicate(on: tuple[type[Exception], ...] | Callable[[Exception], bool]) -> Callable[[Exception], bool]:
    if isinstance(on, tuple):
        kinds = on
        return lambda error: isinstance(error, kinds)
    return on


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    on: tuple[type[Exception], ...] | Callable[[Exception], bool],
    what: str,
    stop: asyncio.Event | None = None,
    keepalive: Keepalive | None = None,
    on_retry: Callable[[Retry], None] | None = None,
    level: int = logging.WARNING,
) -> T:
    """``call()`` until it succeeds, retrying the errors ``on`` names (classes, or a predicate) by ``policy``.

    Past the policy's limits, or for any other error, the error is raised. While waiting, ``keepalive`` is
    awaited every second; once ``stop`` is set the wait ends and the error waited on is raised. ``what``
    (a bounded label: ``hubspot``, ``sync``) names the retries in logs (at ``level``) and metrics.
    """
    _instrument()
    decide = _Decision(policy, _predicate(on))
    scope = _SCOPE.set(_Scope(what, on_retry, level))
    tries: AsyncIterator[stamina.Attempt] = aiter(
        stamina.retry_context(
            on=decide,
            attempts=None,  # the decision bounds them
            timeout=None,
            wait_initial=policy.wait_initial_s,
            wait_max=policy.wait_max_s,
            wait_jitter=policy.jitter_s,
        )
    )
    try:
        attempt = await anext(tries)
        while True:
            done: list[T] = []
            with attempt:  # stamina keeps the error of a failed call for its decision
                done.append(await call())
            if done:
                return done[0]
            # The call failed and the decision is to retry: stamina waits (and raises what it will not retry).
            waited = await unless_stopped(stop, anext(tries), keepalive=keepalive)
            if waited is STOPPED:
                assert decide.last is not None  # noqa: S101 -- a wait follows a failure
                raise decide.last
            attempt = waited
    finally:
        _SCOPE.reset(scope)


async def unless_stopped(
    stop: asyncio.Event | None, work: Awaitable[T], *, keepalive: Keepalive | None = None
) -> T | Literal[Stopped.STOPPED]:
    """Await ``work`` until it ends (its result; its error is raised) or ``stop`` is set (then it is cancelled
    and this gives `STOPPED`). ``keepalive`` is awaited every `KEEPALIVE_S` meanwhile.

    A pause is ``unless_stopped(stop, asyncio.sleep(seconds))``: one helper for every wait a stopping role
    must be able to cut short."""
    job = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
    waiting = {job} if stopping is None else {job, stopping}
    try:
        while True:
            await asyncio.wait(
                waiting, timeout=KEEPALIVE_S if keepalive else None, return_when=asyncio.FIRST_COMPLETED
            )
            if job.done():
                return job.result()
            if stop is not None and stop.is_set():
                return STOPPED
            if keepalive is not None:
                await keepalive()
    finally:
        for task in waiting:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiting, return_exceptions=True)
