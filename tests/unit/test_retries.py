"""The one retry policy (`consumers.retries`): what is retried, how long each wait is, that a stop cuts a wait
short, that a consumer is kept alive meanwhile, and that every retry is logged and reported."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
import stamina

from consumers import retries
from consumers.retries import STOPPED, Retry, RetryPolicy, retrying, unless_stopped


class OutageError(Exception):
    """A system error, as the CRM clients raise them: ``retry_after`` when the server named a wait."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__(f"unavailable (retry after {retry_after})")
        self.retry_after = retry_after


class RefusedError(Exception):
    """A record error: never retried."""


def failing(*errors: Exception, result: str = "ok") -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """A call that raises ``errors`` one per call, then answers ``result``; and its call count."""
    calls = [0]

    async def call() -> str:
        calls[0] += 1
        if calls[0] <= len(errors):
            raise errors[calls[0] - 1]
        return result

    return call, calls


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """stamina's waits, recorded instead of slept (it sleeps through ``asyncio.sleep``)."""
    waits: list[float] = []
    real = asyncio.sleep

    async def fake(delay: float, result: object = None) -> object:
        waits.append(delay)
        return await real(0, result)

    monkeypatch.setattr(asyncio, "sleep", fake)
    return waits


async def test_a_retry_after_is_waited_exactly_and_capped(slept: list[float]) -> None:
    """What a 429 does: the server's wait is obeyed (Retry-After wins over the backoff), at most an hour."""
    call, calls = failing(OutageError(7.0), OutageError(99_999.0), OutageError(0.0))
    assert await retrying(call, policy=RetryPolicy(), on=(OutageError,), what="test") == "ok"
    assert calls[0] == 4
    assert slept == [7.0, 3600.0, 0.0]


async def test_a_record_error_is_never_retried(slept: list[float]) -> None:
    call, calls = failing(RefusedError("400: email is invalid"))
    with pytest.raises(RefusedError, match="email is invalid"):
        await retrying(call, policy=RetryPolicy(), on=(OutageError,), what="test")
    assert (calls[0], slept) == (1, [])


async def test_retries_are_bounded_then_the_error_goes_to_the_caller(slept: list[float]) -> None:
    call, calls = failing(*(OutageError() for _ in range(5)))
    with pytest.raises(OutageError):
        await retrying(call, policy=RetryPolicy(retries=2), on=(OutageError,), what="test")
    assert calls[0] == 3
    assert len(slept) == 2


@pytest.mark.usefixtures("slept")
async def test_throttles_do_not_use_up_the_retries_of_an_outage() -> None:
    """A server asking to wait is counted apart: two throttles and a 5xx pass a policy of one retry."""
    policy = RetryPolicy(retries=1, throttles=2)
    call, calls = failing(OutageError(1.0), OutageError(), OutageError(1.0))
    assert await retrying(call, policy=policy, on=(OutageError,), what="test") == "ok"
    assert calls[0] == 4
    call, calls = failing(OutageError(1.0), OutageError(1.0), OutageError(1.0))
    with pytest.raises(OutageError):
        await retrying(call, policy=policy, on=(OutageError,), what="test")
    assert calls[0] == 3


async def test_the_backoff_stays_within_its_cap(slept: list[float]) -> None:
    """Moved from the HubSpot client's tests (``Backoff(base_s=0.5, cap_s=30)``): every wait in the cap."""
    call, _ = failing(*(OutageError() for _ in range(20)))
    policy = RetryPolicy(retries=20, wait_initial_s=0.5, wait_max_s=30)
    await retrying(call, policy=policy, on=(OutageError,), what="t")
    assert len(slept) == 20
    assert all(0 <= wait <= 30 for wait in slept)


async def test_the_backoff_grows_exponentially_within_its_cap_with_jitter(slept: list[float]) -> None:
    """Moved from the Dataverse client's tests (``RetryPolicy(attempts=10, base_s=0.5, cap_s=4.0)``), for the
    one formula now (stamina's; the clients' full jitter is gone): the wait before retry n+1 is
    ``min(cap, base * 2**n + uniform(0, jitter))``, so it grows exponentially, never passes the cap, and is
    jittered below it, so replicas do not retry in step (at the cap it is the cap)."""
    policy = RetryPolicy(retries=10, wait_initial_s=0.5, wait_max_s=4.0, jitter_s=0.5)
    runs = []
    for _ in range(50):
        slept.clear()
        call, _ = failing(*(OutageError() for _ in range(10)))
        await retrying(call, policy=policy, on=(OutageError,), what="test")
        runs.append(list(slept))
    for attempt in range(10):
        floor = 0.5 * 2**attempt
        delays = [run[attempt] for run in runs]
        assert all(min(4.0, floor) <= d <= min(4.0, floor + 0.5) for d in delays)
        if floor < 4.0:
            assert len(set(delays)) > 1  # jittered


async def test_a_stop_ends_the_wait_at_once_and_raises_the_error_waited_on() -> None:
    """A stopping role stops mid-backoff: the 30 s wait ends once ``stop`` is set; no call is repeated."""
    stop = asyncio.Event()
    call, calls = failing(*(OutageError(30.0) for _ in range(3)))
    asyncio.get_running_loop().call_later(0.2, stop.set)
    started = time.monotonic()
    with pytest.raises(OutageError, match=r"retry after 30\.0"):
        await retrying(call, policy=RetryPolicy(), on=(OutageError,), what="test", stop=stop)
    assert time.monotonic() - started < 1.0
    assert calls[0] == 1


async def test_a_call_in_flight_is_never_cancelled_by_a_stop() -> None:
    stop = asyncio.Event()

    async def slow() -> str:
        stop.set()
        await asyncio.sleep(0.05)
        return "written"

    assert await retrying(slow, policy=RetryPolicy(), on=(OutageError,), what="test", stop=stop) == "written"


async def test_a_consumer_is_kept_alive_while_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retries, "KEEPALIVE_S", 0.05)
    kept = 0

    async def keepalive() -> None:
        nonlocal kept
        kept += 1

    call, _ = failing(OutageError(0.5))
    assert (
        await retrying(call, policy=RetryPolicy(), on=(OutageError,), what="t", keepalive=keepalive) == "ok"
    )
    assert kept >= 5


async def test_every_retry_is_logged_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    reported: list[Retry] = []
    call, _ = failing(OutageError(0.01), OutageError(0.02))
    with caplog.at_level(logging.WARNING, logger="consumers.retries"):
        await retrying(
            call, policy=RetryPolicy(), on=(OutageError,), what="hubspot", on_retry=reported.append
        )
    assert [(r.what, r.number, round(r.wait_s, 3), type(r.error)) for r in reported] == [
        ("hubspot", 1, 0.01, OutageError),
        ("hubspot", 2, 0.02, OutageError),
    ]
    assert [r.getMessage() for r in caplog.records] == [
        "hubspot: unavailable (retry after 0.01); retry 1 in 0.01s",
        "hubspot: unavailable (retry after 0.02); retry 2 in 0.02s",
    ]


async def test_a_predicate_decides_what_is_retried() -> None:
    call, calls = failing(ValueError("bug"), KeyError("other bug"))
    with pytest.raises(KeyError):
        await retrying(
            call,
            policy=RetryPolicy(wait_initial_s=0.0, jitter_s=0.0),
            on=lambda error: isinstance(error, ValueError),
            what="test",
        )
    assert calls[0] == 2


async def test_the_test_switch_turns_the_waits_off() -> None:
    """stamina's testing mode: no waits, and its attempts bound ours."""
    call, calls = failing(*(OutageError(600.0) for _ in range(5)))
    started = time.monotonic()
    with stamina.set_testing(True, attempts=3), pytest.raises(OutageError):
        await retrying(call, policy=RetryPolicy(), on=(OutageError,), what="test")
    assert calls[0] == 3
    assert time.monotonic() - started < 1.0


async def test_unless_stopped_gives_the_result_or_the_error_or_stopped() -> None:
    stop = asyncio.Event()
    assert await unless_stopped(stop, asyncio.sleep(0, "done")) == "done"

    async def broken() -> None:
        raise RefusedError("no")

    with pytest.raises(RefusedError):
        await unless_stopped(stop, broken())
    cancelled = asyncio.Event()

    async def endless() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert await unless_stopped(stop, endless()) is STOPPED
    assert cancelled.is_set()
