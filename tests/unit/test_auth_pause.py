"""The pause of a source whose credentials are refused at run time: the backoff, the fatal start, the logs."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from cdc.metrics import Metrics
from cdc.sources.auth_pause import AUTH_BACKOFF, AuthBackoff, SourceAuth


def test_the_default_backoff_starts_at_5_s_and_doubles_to_5_min() -> None:
    assert [AUTH_BACKOFF.delay(n) for n in range(1, 10)] == [5, 10, 20, 40, 80, 160, 300, 300, 300]


def failing(metrics: Metrics, system: str) -> float | None:
    return metrics.registry.get_sample_value("cdc_poll_auth_failing", {"system": system})


def test_a_refusal_before_any_success_is_fatal_and_changes_nothing() -> None:
    metrics = Metrics(CollectorRegistry())
    auth = SourceAuth("hubspot", metrics)
    assert failing(metrics, "hubspot") == 0  # the series exists from the start
    assert auth.refused("contacts", RuntimeError("401"), 1) is None
    assert not auth.failing
    assert failing(metrics, "hubspot") == 0


def test_refusals_after_a_success_pause_and_log_once_per_change_of_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics(CollectorRegistry())
    auth = SourceAuth("dataverse", metrics, backoff=AuthBackoff(first_s=1, max_s=4))
    auth.accepted()
    with caplog.at_level(logging.INFO, logger="cdc.poll.auth"):
        delays = [auth.refused(table, RuntimeError("AADSTS7000215"), n) for n in (1, 2) for table in "ab"]
        assert (auth.failing, failing(metrics, "dataverse")) == (True, 1)
        assert "AADSTS7000215" in auth.reason
        assert [auth.refused("a", RuntimeError("x"), n) for n in (3, 4)] == [4, 4]
        auth.accepted()
        auth.accepted()
    assert delays == [1, 1, 2, 2]
    assert (auth.failing, failing(metrics, "dataverse")) == (False, 0)
    assert [(r.levelno, r.getMessage().split(" (")[0]) for r in caplog.records] == [
        (logging.ERROR, "dataverse refuses the credentials"),
        (
            logging.WARNING,
            "dataverse accepts the credentials again after 0s: polling resumes from the stored cursors",
        ),
    ]
