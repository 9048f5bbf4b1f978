"""A polled source whose credentials are refused at run time: paused with backoff, not ended.

A token revoked or a secret rotated while `cdc poll` runs is a system error (DESIGN.md guarantee 6): the
source's tables wait and try again by the retry policy (`consumers.retries`; ``AUTH_POLICY``: 5 s
doubling to 5 min, without jitter: one probe per table, nothing to spread), while the other
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

from cdc.metrics import Metrics
from consumers.retries import RetryPolicy

__all__ = ["AUTH_POLICY", "SourceAuth"]

log = logging.getLogger("cdc.poll.auth")

AUTH_POLICY = RetryPolicy(retries=None, throttles=0, wait_initial_s=5.0, wait_max_s=300.0, jitter_s=0.0)
"""The policy of every source while its credentials are refused (read at each pause, so a test may set a
shorter one): the n-th wait in a row is ``5 s * 2**(n-1)``, at most 5 min."""


class SourceAuth:
    """Whether one polled source (``hubspot``, ``dataverse``) currently has its credentials refused."""

    def __init__(self, system: str, metrics: Metrics, *, policy: RetryPolicy | None = None) -> None:
        self.system = system
        self._policy = policy
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

    @property
    def policy(self) -> RetryPolicy:
        """How a refused table waits (`consumers.retries.retrying` with this, :meth:`refused` as ``on``)."""
        return self._policy or AUTH_POLICY

    def refused(self, unit: str, error: Exception) -> bool:
        """A call of ``unit`` (a table) was refused for its credentials: whether it pauses (by
        :attr:`policy`), or, when no call of the source ever succeeded, is fatal (the caller raises it).
        Logs only when the source turns failing."""
        if not self.ever_accepted:
            return False
        policy = self.policy
        if self.refused_since is None:
            self.refused_since, self.reason = time.time(), str(error)
            self._gauge.set(1)
            log.error(
                "%s refuses the credentials (%s): polling %s is paused and retried with backoff (first in "
                "%gs, at most every %gs); the other source keeps polling, nothing is lost",
                self.system,
                error,
                self.system,
                policy.wait_initial_s,
                policy.wait_max_s,
            )
        else:
            log.debug("%s %s: credentials still refused", self.system, unit)
        return True

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
