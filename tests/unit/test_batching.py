"""How long a consume loop waits for its batch to fill (`streams.batching`): the decision, exhaustively with
hypothesis, and `collect` over a consumer whose records arrive on a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from streams.batching import FIRST_POLL_MS, Linger, collect

TP = TopicPartition("work", 0)


@given(
    max_records=st.integers(1, 1000),
    bound_ms=st.integers(0, 1000),
    have=st.integers(0, 1000),
    waited_ms=st.integers(0, 2000),
    backlog=st.integers(0, 10_000),
)
def test_a_batch_waits_only_while_part_full_with_a_backlog_and_never_past_its_bound(
    max_records: int, bound_ms: int, have: int, waited_ms: int, backlog: int
) -> None:
    linger = Linger(max_records=max_records, bound_s=bound_ms / 1000)
    wait = linger.wait_s(have=have, waited_s=waited_ms / 1000, backlog=backlog)
    part_full = 0 < have < max_records
    if not part_full or backlog == 0 or waited_ms >= bound_ms:
        assert wait is None  # full, idle or out of time: handed on now
    else:
        assert wait is not None
        assert abs(waited_ms / 1000 + wait - bound_ms / 1000) < 1e-9  # up to the bound, not past it


@dataclass
class Arrivals:
    """A partition whose records are written at ``written`` times and readable from ``readable`` times (a
    record of a transaction: at its commit; never: a commit marker's offset, or a transaction never
    committed). ``now`` is the fake clock: a poll that finds nothing waits on it, up to its timeout, for the
    next record to become readable."""

    written: list[float]
    readable: list[float]
    now: float = 0.0
    position: int = 0
    polls: list[int] = field(default_factory=list)

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int:
        del tp
        return sum(1 for t in self.written if t <= self.now)

    async def position_of(self, tp: TopicPartition) -> int:
        del tp
        return self.position

    def _readable(self) -> int:
        return sum(1 for t in self.readable if t <= self.now)

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.polls.append(timeout_ms)
        deadline = self.now + timeout_ms / 1000
        if self._readable() == self.position:
            upcoming = sorted(t for t in self.readable if self.now < t <= deadline)
            self.now = upcoming[0] if upcoming else deadline
        count = min(self._readable() - self.position, max_records)
        records = [object() for _ in range(count)]
        self.position += count
        return {TP: records} if records else {}

    def clock(self) -> float:
        return self.now


def committed(*times: float) -> Arrivals:
    """Records each written and readable at once (no transaction)."""
    return Arrivals(written=list(times), readable=list(times))


class Consumer:
    """`Arrivals` under aiokafka's method names (``position`` is a coroutine there)."""

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals
        self.assignment = arrivals.assignment
        self.highwater = arrivals.highwater
        self.position = arrivals.position_of
        self.getmany = arrivals.getmany


async def _collect(arrivals: Arrivals, *, max_records: int = 100, wait_ms: int = 50) -> int:
    batch = await collect(
        Consumer(arrivals),
        max_records=max_records,
        wait_ms=wait_ms,
        clock=arrivals.clock,
    )
    return sum(len(m) for m in batch.values())


async def test_an_idle_loop_hands_a_lone_change_on_at_once() -> None:
    """The fixed 5 ms wait is gone: nothing is behind the one change, so nothing is waited for (the next
    one, written a second later, is the next batch's)."""
    arrivals = committed(0.0, 1.0)
    assert await _collect(arrivals) == 1
    assert arrivals.now == 0.0
    assert arrivals.polls == [FIRST_POLL_MS]


async def test_a_backlog_fills_the_batch_without_waiting() -> None:
    arrivals = committed(*[0.0] * 250)
    assert await _collect(arrivals) == 100
    assert arrivals.now == 0.0


async def test_a_part_full_batch_waits_for_a_transaction_being_written_then_goes_full() -> None:
    """The router's next transaction is being written (in the high watermark, not readable until its commit
    20 ms on): the batch waits for it instead of going with 3 records, and goes once full."""
    arrivals = Arrivals(written=[0.0] * 200, readable=[0.0] * 3 + [0.02] * 197)
    assert await _collect(arrivals) == 100
    assert abs(arrivals.now - 0.02) < 1e-9


async def test_a_part_full_batch_goes_at_the_bound_when_the_backlog_comes_slowly() -> None:
    """A record readable every 10 ms, each written 25 ms before (in a transaction) so a backlog is always
    in sight: the batch takes what became readable within the bound (50 ms after its first), part-full."""
    readable = [i * 0.01 for i in range(30)]
    arrivals = Arrivals(written=[t - 0.025 for t in readable], readable=readable)
    got = await _collect(arrivals)
    assert got == 6  # at 0, 10, ..., 50 ms
    assert abs(arrivals.now - 0.05) < 1e-9


async def test_records_in_a_transaction_never_committed_cost_the_bound_only() -> None:
    """The high watermark counts records of an open transaction, readable only at its commit: one that never
    commits (its producer gone; the broker aborts it after its timeout) costs the batch the bound."""
    never = float("inf")
    arrivals = Arrivals(written=[0.0] * 4, readable=[0.0, never, never, never])
    assert await _collect(arrivals, wait_ms=50) == 1
    assert abs(arrivals.now - 0.05) < 1e-9


async def test_a_commit_marker_alone_behind_the_position_is_no_backlog() -> None:
    """A transaction's commit marker takes an offset: high watermark = position + 1 with nothing to read."""
    arrivals = Arrivals(written=[0.0, 0.0], readable=[0.0, float("inf")])
    assert await _collect(arrivals) == 1
    assert arrivals.polls == [FIRST_POLL_MS]
