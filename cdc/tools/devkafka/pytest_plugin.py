"""pytest fixtures for a real Kafka broker: ``pytest_plugins = ["cdc.tools.devkafka.pytest_plugin"]``.

The session's broker is, in this order:

1. the cluster named by ``KAFKA_BOOTSTRAP`` (``host:port[,host:port]``), when set;
2. testcontainers' Kafka module (KRaft), when a Docker engine answers;
3. :class:`cdc.tools.devkafka.runner.LocalKafka`, the Apache Kafka jars run with ``java``.

When a test that used the broker fails, the tail of the broker's log is added to its report.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cdc.tools.devkafka.runner import LocalKafka


@dataclass(frozen=True)
class KafkaBroker:
    """What a test needs of the session's broker."""

    bootstrap: str
    origin: str
    log_tail: Callable[[], str]


_active: KafkaBroker | None = None


def _docker_answers() -> bool:
    host = os.environ.get("DOCKER_HOST")
    if not host and not Path("/var/run/docker.sock").exists():
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import docker  # noqa: PLC0415 -- optional, only where Docker may run

            docker.from_env(timeout=3).ping()
    except Exception:  # noqa: BLE001 -- any failure means "no usable engine": fall through to the jars
        return False
    return True


def _from_testcontainers() -> Iterator[KafkaBroker]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from testcontainers.kafka import KafkaContainer  # noqa: PLC0415

    container: Any = KafkaContainer().with_kraft()
    with container:

        def tail() -> str:
            out, err = container.get_logs()
            return "\n".join((out + err).decode(errors="replace").splitlines()[-60:])

        yield KafkaBroker(container.get_bootstrap_server(), "testcontainers", tail)


@pytest.fixture(scope="session")
def kafka_broker() -> Generator[KafkaBroker, None, None]:
    """The session's real Kafka broker (see the module docstring for where it comes from)."""
    global _active  # noqa: PLW0603 -- the report hook below reads the one session broker
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP"):
        _active = KafkaBroker(
            bootstrap, "KAFKA_BOOTSTRAP", lambda: f"(external broker {bootstrap}: no log here)"
        )
        yield _active
    elif _docker_answers():
        for broker in _from_testcontainers():
            _active = broker
            yield broker
    else:
        with LocalKafka() as kafka:
            _active = KafkaBroker(kafka.bootstrap, "local jars", kafka.log_tail)
            yield _active
    _active = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.failed and _active is not None and "kafka_broker" in getattr(item, "fixturenames", ()):
        report.sections.append((f"kafka broker log ({_active.origin})", _active.log_tail()))
