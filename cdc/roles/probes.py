"""The one probe app of every role: ``/healthz``, ``/readyz`` and ``/metrics``.

- ``/healthz``: the process answers and is not shutting down (200 ``{"status": "ok"}``, else 503
  ``{"status": "shutting down"}``): what liveness probes and the image's HEALTHCHECK ask.
- ``/readyz``: 200 ``{"status": "ready"}`` when every check passes, else 503 with ``failed`` (each failed
  check's name -> why) and ``status`` (those reasons, joined). The checks, in this order:

  1. ``shutdown``: not shutting down (then nothing else is asked);
  2. ``kafka``: the broker answers one metadata request within ``KAFKA_TIMEOUT_S`` and the role's topics
     exist (:class:`KafkaCheck`, cached ``KAFKA_CACHE_S`` so probes stay cheap);
  3. ``groups``: the role's consumer groups are joined: each member got its assignment (an empty one
     too: a replica more than the partitions is a stable member);
  4. ``heartbeats``: each long-running loop beat lately (:class:`Heartbeats`): a loop beats once per
     iteration and before each idle wait, so an idle role stays ready and a stuck loop is named;
  5. the role's own (`cdc poll`: a source refusing its credentials, a table without change tracking).

  None of them asks for progress: a role with nothing to do is ready.
- ``/metrics``: the role's registry in Prometheus' text format.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cdc.metrics import Metrics
from streams.clients import make_admin
from streams.config import KafkaSettings

__all__ = [
    "KAFKA_CACHE_S",
    "KAFKA_TIMEOUT_S",
    "STALL_AFTER_S",
    "Check",
    "Heartbeats",
    "KafkaCheck",
    "Probes",
    "joined",
]

Check = Callable[[], Awaitable[str | None]]
"""A readiness check: None when it passes, else why not (one line an SRE can act on)."""

KAFKA_TIMEOUT_S = 2.0
KAFKA_CACHE_S = 2.0
STALL_AFTER_S = 300.0
"""How late a loop's beat may be. Longer than one iteration's work takes with its own bounded waits (a
transaction's 60 s deadline, a client's retries); a loop that names an idle wait gets it on top."""


class Heartbeats:
    """When each long-running loop of a role is due to beat again.

    :meth:`expect` a loop when it starts (its first beat is due within the bound) and :meth:`forget` it when
    it ends on purpose (a table handed to another replica). The loop calls the beat it got back once per
    iteration, and before an idle wait with that wait's length (``beat(wait_s)``): its next beat is then due
    within the wait plus the bound, so a long interval between polls is never taken for a stall.
    """

    def __init__(
        self, bound_s: float = STALL_AFTER_S, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.bound_s = bound_s
        self._clock = clock
        self._due: dict[str, float] = {}
        self._beaten: dict[str, float] = {}

    def expect(self, loop: str) -> Callable[..., None]:
        """Start watching ``loop``; the beat it calls (``beat()`` or ``beat(wait_s)``)."""
        self.beat(loop)
        return functools.partial(self.beat, loop)

    def beat(self, loop: str, wait_s: float = 0.0) -> None:
        now = self._clock()
        self._beaten[loop] = now
        self._due[loop] = now + max(0.0, wait_s) + self.bound_s

    def forget(self, loop: str) -> None:
        self._due.pop(loop, None)
        self._beaten.pop(loop, None)

    def stalled(self) -> list[str]:
        """The loops whose beat is overdue, each with how long it has been silent, sorted by name."""
        now = self._clock()
        return [
            f"{loop} has not beaten for {now - self._beaten[loop]:.0f}s"
            for loop, due in sorted(self._due.items())
            if now > due
        ]

    async def check(self) -> str | None:
        late = self.stalled()
        return f"{'; '.join(late)} (bound {self.bound_s:g}s plus its idle wait)" if late else None


class KafkaCheck:
    """The broker answers a metadata request and the role's topics exist.

    One admin client is kept between probes (a failed one is closed, the next probe connects afresh); the
    answer is kept ``cache_s``, and concurrent probes share one request. The metadata request names no
    topic: one naming a missing topic would create it on a broker with ``auto.create.topics.enable``, with
    the broker's defaults instead of the catalog's (a `links` topic not compacted).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Sequence[str],
        *,
        timeout_s: float = KAFKA_TIMEOUT_S,
        cache_s: float = KAFKA_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kafka, self._topics = kafka, tuple(topics)
        self._timeout_s, self._cache_s, self._clock = timeout_s, cache_s, clock
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()
        self._checked_at = float("-inf")
        self._reason: str | None = None

    async def __call__(self) -> str | None:
        async with self._lock:
            if self._clock() - self._checked_at >= self._cache_s:
                self._reason = await self._ask()
                self._checked_at = self._clock()
            return self._reason

    async def _ask(self) -> str | None:
        try:
            async with asyncio.timeout(self._timeout_s):
                if self._admin is None:
                    self._admin = make_admin(self._kafka)
                    await self._admin.start()
                existing = set(await self._admin.list_topics())
        except (TimeoutError, KafkaError, OSError) as error:
            await self.aclose()
            reason = str(error) or type(error).__name__
            return (
                f"Kafka at {self._kafka.bootstrap_servers} did not answer within {self._timeout_s:g}s "
                f"({reason})"
            )
        missing = [topic for topic in self._topics if topic not in existing]
        return f"missing topics {missing}: run `cdc topics ensure`" if missing else None

    async def aclose(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()


def joined(members: Mapping[str, Callable[[], bool]]) -> Check:
    """A check that every consumer group named (group id -> whether this member is in it) is joined."""

    async def check() -> str | None:
        missing = [group for group, member in members.items() if not member()]
        return f"not (yet) a member of the group(s) {', '.join(missing)}" if missing else None

    return check


class Probes:
    """``/healthz``, ``/readyz`` and ``/metrics`` over a role's checks (module docstring)."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        stopping: Callable[[], bool],
        checks: Mapping[str, Check] | None = None,
    ) -> None:
        self._metrics, self._stopping = metrics, stopping
        self._checks = dict(checks or {})

    async def failed(self) -> dict[str, str]:
        """Each failed check's name and reason, in check order; empty when ready."""
        if self._stopping():
            return {"shutdown": "shutting down"}
        failed = {}
        for name, check in self._checks.items():
            reason = await check()
            if reason is not None:
                failed[name] = reason
        return failed

    async def healthz(self, _: Request) -> Response:
        if self._stopping():
            return JSONResponse({"status": "shutting down"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def readyz(self, _: Request) -> Response:
        failed = await self.failed()
        if failed:
            return JSONResponse({"status": "; ".join(failed.values()), "failed": failed}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics(self, _: Request) -> Response:
        return Response(generate_latest(self._metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @property
    def routes(self) -> list[BaseRoute]:
        return [
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/metrics", self.metrics),
        ]

    def app(self) -> Starlette:
        """The probes alone (`cdc sync`, `cdc poll`); `cdc ingest` serves :attr:`routes` by its webhooks."""
        return Starlette(routes=self.routes)
