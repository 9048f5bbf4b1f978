"""One API's budget in one process: calls wait here until the deployment's window has room for them.

:meth:`Budget.spend` is entered around every call of a client, in order:

1. wait, first come first served, until every window the call's kind counts against
   (`cdc.budget.windows`) has room under this process's allowance (`cdc.budget.shares`) and, for
   Dataverse, a concurrent slot is free; each wait is observed as ``cdc_api_budget_wait_seconds``;
2. count the call (its execution time after it, for a window of seconds);
3. the client hands the server's own count (HubSpot's rate-limit headers) to :meth:`Budget.observe`,
   which turns the part no process of ours reported into an ``external`` use that shrinks the limit for one
   window's time;
4. a call the server refused anyway (a 429: a stranger's burst, a start before the board was heard) is
   handed to :meth:`Budget.throttled`: the window is closed to every call of the process for the wait the
   server asked (at most the window's length), and the process reports that it wants calls meanwhile.
   Seen idle while its retry slept, the others took its share, and it found the window full again when it
   woke (one 429 starved a process of two for 10 s, 2026-12-07).

A wait never fails a call: it lasts until the window frees, or until :meth:`Budget.close` (the role is
stopping), which raises `BudgetClosedError` in the waiting calls. The budget board (`cdc.budget.board`)
feeds in the other processes' reports (:meth:`Budget.heard`) and publishes :meth:`Budget.report`;
:meth:`Budget.state` is what an admin page shows. The clock is passed in, so tests drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from cdc.budget._tally import Tally
from cdc.budget.shares import FLOOR, Use, allowance, equal_share, external_use
from cdc.budget.windows import CallKind, Limits, Window
from cdc.metrics import Metrics

__all__ = ["Budget", "BudgetClosedError", "WindowState"]

log = logging.getLogger("cdc.budget")
RECHECK_S = 0.25
"""The longest a waiting call sleeps before it looks again (the others' reports change its allowance)."""


class BudgetClosedError(Exception):
    """The role stopped while a call waited for budget: the call was not sent."""


@dataclass(frozen=True)
class WindowState:
    """One window as the deployment sees it from this process (what `cdc.metrics` and an admin page show)."""

    system: str
    window: str
    limit: float
    seconds: float
    used: float
    """The deployment's use in the window: this process's and the others' last reports."""
    own: float
    allowance: float
    external: float
    processes: int


@dataclass
class _Server:
    external: float = 0.0
    until: float = -math.inf


@dataclass
class _Others:
    uses: dict[str, Use] = field(default_factory=dict)


class Budget:
    """One system's budget in this process (module docstring). ``enabled=False`` only counts (the old
    behaviour: 429s and their retries are the only brake)."""

    def __init__(
        self,
        limits: Limits,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
        report_interval_s: float = 1.0,
        alone: bool = True,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.limits = limits
        self.system = limits.system
        self.enabled = enabled
        self._metrics = metrics
        self._clock = clock
        self._interval = report_interval_s
        self._tallies = {w.name: Tally(w.span_s, w.slots) for w in limits.windows}
        self._others: dict[str, dict[str, Use]] = {w.name: {} for w in limits.windows}
        self._server = {w.name: _Server() for w in limits.windows}
        self._fallback_live: int | None = None
        self._alone = alone
        self._heard = alone
        self._reported: dict[str, float] = {}
        self._reported_before: dict[str, float] = {}
        self._reported_demand: dict[str, float] = {}
        self._demand_before: dict[str, float] = {}
        """Whether it knows what the others use: a shared budget (``alone=False``) takes only a trickle
        (`FLOOR` of the limit) until the board's first reading, so a process starting beside busy ones
        cannot spend the whole window before it hears of them."""
        self._lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self._stop = stop
        """The role's stop: a waiting call notices it within `RECHECK_S`."""
        self._waited_at: dict[str, float] = {}
        """Per window, when a call last had to wait for it (a waiting call looks again every `RECHECK_S`)."""
        self._in_flight = 0
        self._closed_until: dict[str, float] = {}
        """Per window, until when the server refused calls (:meth:`throttled`)."""

    # -- calls -------------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def spend(self, kind: CallKind = CallKind.API) -> AsyncIterator[None]:
        """Around one call (module docstring, steps 1 and 2)."""
        names = self.limits.kinds[kind]
        if names or self.limits.concurrent:
            await self._take(names)
        started = self._clock()
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            for name in names:
                if self.limits.window(name).seconds_of_execution:
                    self._tallies[name].add(self._clock(), self._clock() - started)

    async def _take(self, names: tuple[str, ...]) -> None:
        started = self._clock()
        async with self._lock:
            while (wait := self.take_now(names)) > 0:
                if self.closing:
                    raise BudgetClosedError(f"{self.system}: stopping while a call waited for budget")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), min(wait, RECHECK_S))
        if self._metrics is not None:
            self._metrics.api_budget_wait.labels(system=self.system).observe(self._clock() - started)

    def take_now(self, names: tuple[str, ...]) -> float:
        """Count a call against ``names`` if it fits now (0.0), else how long until it may (no waiting
        here: :meth:`spend` waits; a simulation with a fake clock calls this directly)."""
        now = self._clock()
        ready = self._ready(names, now) if self.enabled else {}
        ready_at = max(ready.values(), default=now)
        if ready_at > now:
            for name, at in ready.items():
                if at > now:
                    self._waited_at[name] = now
            return ready_at - now
        for name in names:
            if not self.limits.window(name).seconds_of_execution:
                self._tallies[name].add(now)
        return 0.0

    def ready_at(self, names: tuple[str, ...], now: float) -> float:
        """When a call counting against ``names`` may be sent (``now``: at once)."""
        return max(self._ready(names, now).values(), default=now)

    def _ready(self, names: tuple[str, ...], now: float) -> dict[str, float]:
        """Per window of ``names`` (and ``""`` for the concurrent slots), when it has room for the call."""
        ready: dict[str, float] = {}
        if self.limits.concurrent and self._in_flight >= self._concurrent_share():
            ready[""] = now + RECHECK_S / 5
        for name in names:
            window = self.limits.window(name)
            cost = 0.0 if window.seconds_of_execution else 1.0
            room = self._tallies[name].room_at(now, self._allowance(window, now), cost)
            ready[name] = max(room, self._closed_until.get(name, now))
        return ready

    def _concurrent_share(self) -> int:
        assert self.limits.concurrent is not None  # noqa: S101 -- the caller checked
        live = (
            1 + len(self._others[self.limits.windows[0].name])
            if self._fallback_live is None
            else self._fallback_live
        )
        return max(self.limits.concurrent // max(live, 1), 1)

    # -- what the others and the server say --------------------------------------------------------------
    def _own(self, window: Window, now: float) -> Use:
        used = self._tallies[window.name].used(now)
        # Hungry for this window only: a call waiting on search's own window (5 per second) held a share of
        # the 10 s burst window it was not waiting for, and left it unused (`cdc poll`'s reconciler beside two
        # sync replicas at 19 per 10 s: 13 of the 19 calls used, 2026-12-07).
        waited = now - self._waited_at.get(window.name, -math.inf) < self._interval
        refused = now < self._closed_until.get(window.name, -math.inf)  # step 4
        return Use(used, used + (window.limit if waited or refused else 0.0))

    def _external(self, window: Window, now: float) -> float:
        server = self._server[window.name]
        return server.external if now < server.until else 0.0

    def _allowance(self, window: Window, now: float) -> float:
        external = self._external(window, now)
        if self._fallback_live is not None:
            return equal_share(window.limit, self._fallback_live, external=external)
        if not self._heard:
            return window.limit * FLOOR
        others = list(self._others[window.name].values())
        own = self._own(window, now)
        if self._alone:
            return allowance(window.limit, own, others, external=external)
        # The share is weighed on the demand this process reported a round ago, as old as the others' it is
        # weighed against: weighed on a newer demand than theirs, each would grow its share beyond the sum.
        # And the others may not have read the last report yet: the use in the one before they surely know.
        demand = self._demand_before.get(window.name, 0.0)
        reported = self._reported_before.get(window.name, 0.0)
        return allowance(window.limit, Use(own.used, demand), others, external=external, reported=reported)

    def throttled(self, names: tuple[str, ...], wait_s: float) -> float:
        """The server refused a call counting against ``names`` and asked for ``wait_s`` (step 4): every
        call of this process for those windows waits that long, at most one window's length (a rolling
        window has emptied of everything it held by then: HubSpot names no wait on a 429, and its SDK's 10 s
        is the length of its default window), and meanwhile the process reports that it wants calls.
        Gives back the wait for the caller's retry (a disabled budget: ``wait_s``, unchanged)."""
        if not self.enabled:
            return wait_s
        now = self._clock()
        wait = min([max(wait_s, 0.0), *(self.limits.window(name).span_s for name in names)])
        for name in names:
            self._closed_until[name] = max(self._closed_until.get(name, now), now + wait)
        return wait

    def observe(self, window_name: str, server_max: float, remaining: float) -> None:
        """The server's count for a window (HubSpot's ``-Max``/``-Remaining``, ``-Daily``/
        ``-Daily-Remaining``): what it counts beyond our reports is another integration's, taken off the
        limit for one window's time."""
        window = next((w for w in self.limits.windows if w.name == window_name), None)
        if window is None:
            return
        now = self._clock()
        others = self._others[window_name].values()
        known = self._tallies[window_name].used(now) + sum(use.used for use in others)
        tolerance = 1.0 + sum(use.used for use in others) * self._interval / window.seconds
        server = self._server[window_name]
        server.external = external_use(server_max, remaining, known, tolerance)
        server.until = now + window.span_s

    def heard(self, others: Mapping[str, Mapping[str, Use]], *, fallback_live: int | None = None) -> None:
        """The other live processes' latest reports (process -> window -> use), or, when they cannot be
        read, ``fallback_live``: how many processes were seen last (each takes an equal share)."""
        self._fallback_live = fallback_live
        self._heard = True
        for window in self.limits.windows:
            self._others[window.name] = {
                process: uses[window.name] for process, uses in others.items() if window.name in uses
            }

    def report(self) -> dict[str, Use]:
        """This process's use and demand per window, for the board to publish (step 4 of
        `cdc.budget.shares` keeps it within reach of what it said)."""
        now = self._clock()
        uses = {window.name: self._own(window, now) for window in self.limits.windows}
        self._reported_before = self._reported
        self._reported = {name: use.used for name, use in uses.items()}
        self._demand_before = self._reported_demand
        self._reported_demand = {name: use.demand for name, use in uses.items()}
        return uses

    def state(self) -> list[WindowState]:
        now = self._clock()
        states = []
        for window in self.limits.windows:
            others = self._others[window.name]
            own = self._tallies[window.name].used(now)
            states.append(
                WindowState(
                    system=self.system,
                    window=window.name,
                    limit=window.limit,
                    seconds=window.seconds,
                    used=own + sum(use.used for use in others.values()),
                    own=own,
                    allowance=self._allowance(window, now),
                    external=self._external(window, now),
                    processes=1 + len(others) if self._fallback_live is None else self._fallback_live,
                )
            )
        return states

    def close(self) -> None:
        """The role stops: calls waiting for budget raise `BudgetClosedError` (idempotent)."""
        self._closed.set()

    @property
    def closing(self) -> bool:
        """Closed, or its role stopping: a call that must wait raises `BudgetClosedError` at once, and a
        client does not retry it (it would wait again, and raise again, as fast as it could)."""
        return self._closed.is_set() or (self._stop is not None and self._stop.is_set())

    def export(self) -> None:
        """Set the budget's gauges (`cdc.metrics`) from :meth:`state`: the board calls it each round."""
        if self._metrics is None:
            return
        m = self._metrics
        states = self.state()
        for window in states:
            labels = {"system": self.system, "window": window.window}
            m.api_budget_used.labels(**labels).set(window.used)
            m.api_budget_limit.labels(**labels).set(window.limit)
            m.api_budget_allowance.labels(**labels).set(window.allowance)
            m.api_budget_external.labels(**labels).set(window.external)
        if states:
            m.api_budget_processes.labels(system=self.system).set(states[0].processes)
