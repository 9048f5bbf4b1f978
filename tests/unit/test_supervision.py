"""The sync role's loops under a bounded supervisor (`cdc.supervision`): a loop that keeps failing ends the
role with exit 70, a clear log line and the failures counted; a loop that fails once is restarted and runs
on."""

from __future__ import annotations

import asyncio
import logging

import pytest
import stamina
from prometheus_client import CollectorRegistry

from cdc import cli
from cdc.metrics import Metrics
from cdc.supervision import LoopFailedError, supervised


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def no_waits() -> object:
    """stamina's test switch: the restarts' backoff is not waited (the budget still bounds them)."""
    with stamina.set_testing(True, attempts=100):
        yield


async def test_a_loop_that_always_fails_gives_up_after_its_budget(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics(CollectorRegistry())
    runs = 0

    async def broken(stop: asyncio.Event) -> None:
        del stop
        nonlocal runs
        runs += 1
        raise KeyError("the link topic answered nonsense")

    with pytest.raises(LoopFailedError, match=r"sync-apply failed 5 times within 600s, last with KeyError"):
        await supervised("sync-apply", broken, asyncio.Event(), metrics=metrics, failures_max=5, window_s=600)
    assert runs == 5
    assert sample(metrics, "cdc_loop_failures_total", loop="sync-apply") == 5
    assert sample(metrics, "cdc_retries_total", what="sync-apply") == 4
    restarts = [r for r in caplog.records if r.name == "cdc.supervision" and r.levelno == logging.ERROR]
    assert len(restarts) == 4
    assert all(r.exc_info is not None for r in restarts)  # each failure with its traceback
    [last] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert last.getMessage() == (
        "sync-apply failed 5 times within 600s: giving up; the role exits (70) so that its supervisor starts "
        "it again"
    )


async def test_a_loop_that_fails_once_is_restarted_and_runs_on() -> None:
    metrics = Metrics(CollectorRegistry())
    stop = asyncio.Event()
    runs = 0
    running = asyncio.Event()

    async def flaky(stop: asyncio.Event) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ConnectionResetError("broker hiccup")
        running.set()
        await stop.wait()

    task = asyncio.create_task(
        supervised("sync-route", flaky, stop, metrics=metrics, failures_max=5, window_s=600)
    )
    await asyncio.wait_for(running.wait(), 5)
    await asyncio.sleep(0.05)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 5)
    assert runs == 2
    assert sample(metrics, "cdc_loop_failures_total", loop="sync-route") == 1


async def test_failures_outside_the_window_are_forgotten() -> None:
    metrics = Metrics(CollectorRegistry())
    stop = asyncio.Event()
    runs = 0

    async def slowly_failing(stop: asyncio.Event) -> None:
        nonlocal runs
        runs += 1
        if runs == 6:
            stop.set()
            return
        await asyncio.sleep(0.06)
        raise RuntimeError("once in a while")

    await supervised("sync-links", slowly_failing, stop, metrics=metrics, failures_max=2, window_s=0.05)
    assert runs == 6
    assert sample(metrics, "cdc_loop_failures_total", loop="sync-links") == 5


async def test_a_loop_failing_while_the_role_stops_is_neither_counted_nor_restarted() -> None:
    metrics = Metrics(CollectorRegistry())
    stop = asyncio.Event()

    async def stopping(stop: asyncio.Event) -> None:
        stop.set()
        raise RuntimeError("CRM unavailable while stopping")

    await supervised("sync-apply", stopping, stop, metrics=metrics, failures_max=1, window_s=600)
    assert metrics.registry.get_sample_value("cdc_loop_failures_total", {"loop": "sync-apply"}) == 0


def test_cdc_sync_exits_70_with_the_reason_when_a_loop_gave_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def gives_up(*_: object, **__: object) -> None:
        raise LoopFailedError("sync-apply failed 5 times within 600s, last with KeyError: 'x'")

    monkeypatch.setattr("cdc.roles.sync.run_sync", gives_up)
    with pytest.raises(SystemExit) as exited:
        cli.main(["sync"])
    assert exited.value.code == 70
    assert capsys.readouterr().err.strip() == (
        "cdc: error: sync-apply failed 5 times within 600s, last with KeyError: 'x'; exiting for the "
        "supervisor to restart `cdc sync`"
    )
