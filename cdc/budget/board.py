"""The budget board: how the processes of one deployment share each API's budget through Kafka.

Why a compacted topic rather than a central counter: every process already reaches Kafka, a report a
second is a few hundred bytes, and a process that cannot reach it still knows what to do (below); a token
server or a Redis counter would be one more thing to run and one more way for every call to fail.

Each second (``budget.report_interval_s``), in order:

1. publish this process's report (`streams.budget`: per system and window, its use and demand);
2. read every report published since, keeping the newest per process (a tombstone removes it);
3. hand each budget the reports of the *other* processes younger than ``budget.stale_after_s``, once the
   board has read for a whole interval: by then every live process has reported at least once. Handed
   over sooner, two processes that started together each found nobody else, took the whole window, and
   one of them ran into a 429 (2026-12-07); until then a budget takes only a trickle.

At a clean stop the process writes its tombstone, so the others take over its share at once; a killed
one is forgotten once its last report is stale. When Kafka cannot be reached, each budget falls back to
an equal share (its limit over the processes last seen), said once in the log, until Kafka answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from cdc.budget.limiter import Budget
from cdc.budget.shares import Use
from cdc.settings import BudgetSettings
from streams.budget import BudgetReport, decode_report, encode_report, report_key
from streams.clients import make_consumer, make_producer, running, seek_to_time
from streams.config import KafkaSettings
from streams.topics import TopicCatalog, TopicRole

__all__ = ["BudgetBoard", "process_name"]

log = logging.getLogger("cdc.budget")
SEND_TIMEOUT_S = 5.0
CLOCK_SKEW_S = 60.0
"""How far another host's clock (which stamps its reports) may run behind ours: reports that much older
than ``stale_after_s`` are still read at a start, older ones are not (they could only be stale)."""


def process_name(role: str) -> str:
    """A key no other process has, and which says where it runs."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class BudgetBoard:
    """Publishes this process's use of ``budgets`` and feeds them the others' (module docstring). Use as
    ``async with BudgetBoard(...)``: it owns its one task, which never fails (Kafka trouble means the
    fallback), and which it stops, with the tombstone, on exit."""

    def __init__(
        self,
        kafka: KafkaSettings,
        budgets: Sequence[Budget],
        *,
        settings: BudgetSettings,
        role: str,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._kafka = kafka
        self._budgets = tuple(budgets)
        self._settings = settings
        self.process = process_name(role)
        self._role = role
        self._topic = TopicCatalog.from_settings(kafka).name(TopicRole.BUDGET)
        self._wall = wall
        self._reports: dict[str, BudgetReport] = {}
        self._live_seen = 1
        self._cut_off = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="budget-board")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        for budget in self._budgets:
            budget.close()
        self._stop.set()
        if self._task is not None:
            # A round ends within a report interval; one still connecting to a broker gone away is cut short
            # (the others forget this process once its last report is stale).
            done, _ = await asyncio.wait(
                {self._task}, timeout=self._settings.report_interval_s + SEND_TIMEOUT_S
            )
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            else:
                self._task.result()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                async with self._connected() as (producer, consumer):
                    await self._rounds(producer, consumer)
                    with contextlib.suppress(KafkaError, TimeoutError):
                        await asyncio.wait_for(
                            producer.send_and_wait(self._topic, None, key=report_key(self.process)),
                            SEND_TIMEOUT_S,
                        )
            except (KafkaError, OSError, TimeoutError) as error:
                self._fall_back(error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._settings.report_interval_s * 5)

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[tuple[AIOKafkaProducer, AIOKafkaConsumer]]:
        # Each client is made only once the one before it runs: one made and never started is never closed.
        # A report not delivered within SEND_TIMEOUT_S is dropped (the next one says more; a producer's
        # request timeout is also how long a record waits for delivery), so closing in an outage ends once it
        # expires: given up on after a fixed wait instead, the producer's tasks and connections lived on (two
        # a Kafka outage, found by the chaos broker-restart test, 2026-12-07).
        quick = self._kafka.model_copy(update={"request_timeout_ms": int(SEND_TIMEOUT_S * 1000)})
        producer = make_producer(quick, linger_ms=0)
        async with running(producer, stop_timeout_s=3 * SEND_TIMEOUT_S) as producer:
            consumer = make_consumer(self._kafka, group_id=None, isolation_level="read_uncommitted")
            async with running(consumer, stop_timeout_s=SEND_TIMEOUT_S):
                partition = TopicPartition(self._topic, 0)
                consumer.assign([partition])
                # Not from the start: up to a segment (an hour) of every process's reports, once a second.
                since_s = self._wall() - self._settings.stale_after_s - CLOCK_SKEW_S
                await seek_to_time(consumer, partition, int(since_s * 1000))
                yield producer, consumer

    async def _rounds(self, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer) -> None:
        reading_since = asyncio.get_running_loop().time()
        while not self._stop.is_set():
            report = BudgetReport(
                process=self.process,
                role=self._role,
                at=self._wall(),
                systems={
                    budget.system: {name: (use.used, use.demand) for name, use in budget.report().items()}
                    for budget in self._budgets
                },
            )
            await asyncio.wait_for(
                producer.send_and_wait(self._topic, encode_report(report), key=report_key(self.process)),
                SEND_TIMEOUT_S,
            )
            await self._listen(consumer, reading_since)
            if self._cut_off:
                log.warning("budget: Kafka answers again; the budget is shared by reports once more")
                self._cut_off = False

    async def _listen(self, consumer: AIOKafkaConsumer, reading_since: float) -> None:
        """Read the others' reports, hand them over, and wait out the rest of this round's interval.

        The wait matters: ``getmany`` returns as soon as any record is there, so a round that ended with it
        made every process report again as soon as another had, a storm of reports as fast as Kafka
        answered (at idle, 60-80% of a core per process and half of the broker's, measured 2026-12-07)."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + self._settings.report_interval_s
        batches = await consumer.getmany(timeout_ms=int(self._settings.report_interval_s * 1000))
        for records in batches.values():
            for record in records:
                self._read(record.key, record.value)
        if loop.time() - reading_since >= self._settings.report_interval_s:
            self._hand_over()
        if (left := ends - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), left)

    def _read(self, key: bytes | None, value: bytes | None) -> None:
        name = key.decode("utf-8", "replace") if key else ""
        if value is None:
            self._reports.pop(name, None)
            return
        report = decode_report(value)
        if report is not None and report.process != self.process:
            self._reports[report.process] = report

    def _hand_over(self) -> None:
        oldest = self._wall() - self._settings.stale_after_s
        live = {process: r for process, r in self._reports.items() if r.at >= oldest}
        self._live_seen = 1 + len(live)
        for budget in self._budgets:
            others = {
                process: {name: Use(*pair) for name, pair in report.systems.get(budget.system, {}).items()}
                for process, report in live.items()
                if budget.system in report.systems
            }
            budget.heard(others)
            budget.export()

    def _fall_back(self, error: BaseException) -> None:
        for budget in self._budgets:
            budget.heard({}, fallback_live=self._live_seen)
            budget.export()
        if not self._cut_off:
            log.warning(
                "budget: cannot reach Kafka (%s: %s); each process takes an equal share of each API's limit "
                "(%d processes last seen) until it answers",
                type(error).__name__,
                error,
                self._live_seen,
            )
            self._cut_off = True
