"""The pause of a source whose credentials are refused at run time: the backoff, the fatal start, the logs."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from cdc.metrics import Metrics
from cdc.sources.auth_pause import AUTH_POLICY, SourceAuth
from consumers.retries import RetryPolicy, retrying


class RefusedError(Exception):
    """A 401 (or msal's token request refused)."""


async def waits(auth: SourceAuth, unit: str, refusals: int, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits of ``unit``'s loop through ``refusals`` refusals in a row (slept through as nothing)."""
    slept: list[float] = []
    real = asyncio.sleep

    async def fake(delay: float, result: object = None) -> object:
        slept.append(delay)
        return await real(0, result)

    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        if calls <= refusals:
            raise RefusedError("AADSTS7000215")

    with monkeypatch.context() as patched:
        patched.setattr(asyncio, "sleep", fake)
        pauses = lambda error: auth.refused(unit, error)  # noqa: E731 -- as the pollers pass it
        await retrying(call, policy=auth.policy, on=pauses, what="poll_auth", level=logging.DEBUG)
    return slept


async def test_the_default_backoff_starts_at_5_s_and_doubles_to_5_min(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auth = SourceAuth("hubspot", Metrics(CollectorRegistry()))
    auth.accepted()
    assert auth.policy == AUTH_POLICY
    assert await waits(auth, "contacts", 9, monkeypatch) == [5, 10, 20, 40, 80, 160, 300, 300, 300]


def failing(metrics: Metrics, system: str) -> float | None:
    return metrics.registry.get_sample_value("cdc_poll_auth_failing", {"system": system})


def test_a_refusal_before_any_success_is_fatal_and_changes_nothing() -> None:
    metrics = Metrics(CollectorRegistry())
    auth = SourceAuth("hubspot", metrics)
    assert failing(metrics, "hubspot") == 0  # the series exists from the start
    assert auth.refused("contacts", RuntimeError("401")) is False
    assert not auth.failing
    assert failing(metrics, "hubspot") == 0


async def test_refusals_after_a_success_pause_and_log_once_per_change_of_state(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = Metrics(CollectorRegistry())
    auth = SourceAuth(
        "dataverse", metrics, policy=RetryPolicy(retries=None, wait_initial_s=1, wait_max_s=4, jitter_s=0)
    )
    auth.accepted()
    with caplog.at_level(logging.INFO, logger="cdc.poll.auth"):
        delays = [await waits(auth, table, 2, monkeypatch) for table in "ab"]
        assert (auth.failing, failing(metrics, "dataverse")) == (True, 1)
        assert "AADSTS7000215" in auth.reason
        assert await waits(auth, "a", 4, monkeypatch) == [1, 2, 4, 4]
        auth.accepted()
        auth.accepted()
    assert delays == [[1, 2], [1, 2]]
    assert (auth.failing, failing(metrics, "dataverse")) == (False, 0)
    assert [(r.levelno, r.getMessage().split(" (")[0]) for r in caplog.records] == [
        (logging.ERROR, "dataverse refuses the credentials"),
        (
            logging.WARNING,
            "dataverse accepts the credentials again after 0s: polling resumes from the stored cursors",
        ),
    ]
