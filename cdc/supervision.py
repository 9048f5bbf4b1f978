"""A role's loops under a bounded supervisor: restarted in place a few times, then the role gives up.

A loop that fails unexpectedly (a rebalance race, a broker hiccup, a bug) is logged with its traceback,
counted (``cdc_loop_failures_total{loop}``) and restarted with backoff by the retry policy
(`consumers.retries`), from where its consumer group's committed offsets say. The failures of the last
``window_s`` are the budget: the ``failures_max``-th within it raises :class:`LoopFailedError`, the role
exits 70 (`cdc.exits.ExitCode.SOFTWARE`), and its own supervisor (compose, Kubernetes, the chaos harness)
starts a fresh process. A failure while the role is stopping is neither counted nor restarted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial

from cdc.metrics import Metrics
from consumers.retries import RetryPolicy, retrying

__all__ = ["RESTARTS", "LoopFailedError", "supervised"]

log = logging.getLogger("cdc.supervision")
RESTARTS = RetryPolicy(retries=None, throttles=0, wait_initial_s=1.0, wait_max_s=30.0, jitter_s=1.0)
"""The waits before each restart: the budget, not the policy, bounds how many there are."""


class LoopFailedError(RuntimeError):
    """A loop failed ``failures_max`` times within ``window_s``: the role exits so that it is restarted."""


class _Budget:
    """The retry policy's ``on`` for one loop: restart while fewer than ``failures_max`` failures fall within
    the last ``window_s``; log and count every failure."""

    def __init__(
        self,
        name: str,
        stop: asyncio.Event,
        metrics: Metrics,
        *,
        failures_max: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self._stop, self._metrics = name, stop, metrics
        self.failures_max, self.window_s, self._clock = failures_max, window_s, clock
        self._failed_at: deque[float] = deque()
        metrics.loop_failures.labels(loop=name)  # from the start at 0: the first failure is an increase

    @property
    def failures(self) -> int:
        return len(self._failed_at)

    def __call__(self, error: Exception) -> bool:
        if self._stop.is_set():
            return False  # stopping: not a failure of the loop
        now = self._clock()
        while self._failed_at and self._failed_at[0] <= now - self.window_s:
            self._failed_at.popleft()
        self._failed_at.append(now)
        self._metrics.loop_failures.labels(loop=self.name).inc()
        if self.failures >= self.failures_max:
            return False
        log.error(
            "%s failed (%d of %d failures allowed within %.0fs); restarting it",
            self.name,
            self.failures,
            self.failures_max,
            self.window_s,
            exc_info=error,
        )
        return True


async def supervised(
    name: str,
    run: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    *,
    metrics: Metrics,
    failures_max: int,
    window_s: float,
) -> None:
    """Run ``run(stop)`` until ``stop``; restart it after an unexpected failure within the budget (module
    docstring); raise :class:`LoopFailedError` past it."""
    budget = _Budget(name, stop, metrics, failures_max=failures_max, window_s=window_s)
    while not stop.is_set():
        try:
            await retrying(
                partial(run, stop), policy=RESTARTS, on=budget, what=name, stop=stop, on_retry=metrics.retried
            )
        except Exception as error:
            if stop.is_set():
                return
            log.critical(
                "%s failed %d times within %.0fs: giving up; the role exits (70) so that its supervisor "
                "starts it again",
                name,
                budget.failures,
                window_s,
                exc_info=error,
            )
            raise LoopFailedError(
                f"{name} failed {budget.failures} times within {window_s:.0f}s, last with "
                f"{type(error).__name__}: {error}"
            ) from error
