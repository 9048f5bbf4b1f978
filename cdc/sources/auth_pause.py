"""A polled source whose credentials are refused at run time: paused with backoff, not ended.

A token revoked or a secret rotated while `cdc poll` runs is a system error (DESIGN.md guarantee 6): the
source's tables wait and try again, bounded (``AUTH_BACKOFF``: 5 s doubling to 5 min), while the other
source keeps polling; each table's cursor stays where its last committed page left it, so the first pass
after the credentials work again reads everything changed meanwhile. Credentials refused before any call
of the source succeeded in this process are still fatal (`cdc poll` exits 78 with the reason): then no
earlier success says the settings are right, and a typo must not look like an outage.

:class:`SourceAuth` is what a source's tables share: ``cdc_poll_auth_failing{system}``, one log line per
change of state (refused, accepted again; never per retry) and the reason ``/readyz`` gives.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from cdc.metrics import Metrics

__all__ = ["AUTH_BACKOFF", "AuthBackoff", "SourceAuth"]

log = logging.getLogger("cdc.poll.auth")


@dataclass(frozen=True)
class AuthBackoff:
    """How long a table waits after its ``n``-th refusal in a row: ``first_s * factor**(n-1)``, capped."""

    first_s: float = 5.0
    max_s: float = 300.0
    factor: float = 2.0

    def delay(self, refusals: int) -> float:
        return min(self.max_s, self.first_s * self.factor ** max(0, refusals - 1))


AUTH_BACKOFF = AuthBackoff()
"""The policy of every source (read at each refusal, so a test may set a shorter one)."""


class SourceAuth:
    """Whether one polled source (``hubspot``, ``dataverse``) currently has its credentials refused."""

    def __init__(self, system: str, metrics: Metrics, *, backoff: AuthBackoff | None = None) -> None:
        self.system = system
        self._backoff = backoff
        self._gauge = metrics.poll_auth_failing.labels(system=system)
        self._gauge.set(0)
        self.ever_accepted = False
        """A call of the source succeeded in this process: from now on a refusal is paused, not fatal."""
        self.refused_since: float | None = None
        """``time.time()`` of the first refusal of the current failing state; None while accepted."""
        self.reason = ""

    @property
    def failing(self) -> bool:
        return self.refused_since is not None

    def refused(self, unit: str, error: Exception, refusals: int) -> float | None:
        """A call of ``unit`` (a table) was refused for its credentials, the ``refusals``-th time in a row
        for that table: the seconds it waits before trying again, or None when no call of the source ever
        succeeded (then the refusal is fatal: the caller raises it). Logs only when the source turns failing.
        """
        if not self.ever_accepted:
            return None
        delay = (self._backoff or AUTH_BACKOFF).delay(refusals)
        if self.refused_since is None:
            self.refused_since, self.reason = time.time(), str(error)
            self._gauge.set(1)
            log.error(
                "%s refuses the credentials (%s): polling %s is paused and retried with backoff (first in "
                "%gs, at most every %gs); the other source keeps polling, nothing is lost",
                self.system,
                error,
                self.system,
                delay,
                (self._backoff or AUTH_BACKOFF).max_s,
            )
        else:
            log.debug("%s %s: credentials still refused; next try in %gs", self.system, unit, delay)
        return delay

    def accepted(self) -> None:
        """A call succeeded: the credentials work (again). Logs only when the source was failing."""
        self.ever_accepted = True
        if self.refused_since is None:
            return
        paused = time.time() - self.refused_since
        self.refused_since, self.reason = None, ""
        self._gauge.set(0)
        log.warning(
            "%s accepts the credentials again after %.0fs: polling resumes from the stored cursors",
            self.system,
            paused,
        )
