"""Shared fixtures: the session's real Kafka broker, per-test topic prefixes and group ids."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import hypothesis  # noqa: F401 -- imported early: a late import at session end trips CPython 3.11.7's
import pytest  # "AST constructor recursion depth mismatch" bug (gh-106905) in pytest's assertion rewriter

from streams.config import KafkaSettings

if TYPE_CHECKING:  # imported by pytest as a plugin below; importing it first would skip assert rewriting
    from cdc.tools.devkafka.pytest_plugin import KafkaBroker

pytest_plugins = ["cdc.tools.devkafka.pytest_plugin"]


@pytest.fixture(autouse=True)
def no_cdc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``CDC_`` variable of the shell running the tests reaches the settings under test (every test:
    one left over in the shell would change what a test runs against)."""
    for name in [n for n in os.environ if n.upper().startswith("CDC_")]:
        monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def state_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Link store files (`sync.state_dir`, by default under the user's data directory) go to the session's
    temporary directory, never the home of whoever runs the tests."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.getbasetemp() / "xdg-data"))


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    """The root logger's level and handlers as they were (a test that sets logging up leaves no trace)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)


@pytest.fixture
def unique() -> str:
    """A short id that no other test uses: for topic prefixes and group ids."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def kafka_settings(kafka_broker: KafkaBroker, unique: str) -> KafkaSettings:
    """Settings for the session broker with a topic prefix of this test's own."""
    return KafkaSettings(
        bootstrap_servers=kafka_broker.bootstrap,
        topic_prefix=f"t{unique}.",
        partitions=3,
        connect_timeout_s=30,
    )


def _closed_clients_metadata_task(task: asyncio.Task[object]) -> bool:
    """aiokafka's metadata task of a client that closed while the broker was restarting: its close cancels
    the task without waiting for it, and in two of the last three CI runs (the chaos broker-restart test)
    it was still cancelling 5 s later. It belongs to a client the test has closed, and is not a task the
    daemon left running."""
    name = getattr(task.get_coro(), "__qualname__", "")
    return task.cancelling() > 0 and name == "AIOKafkaClient._md_synchronizer"


@pytest.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
    # A task its owner already cancelled (aiokafka's metadata task, its client closed while the broker was
    # down) ends at its next step: given a moment, it is not leaked. One still running afterwards is.
    # The moment is generous (5 s): on a loaded 2-core CI machine 1 s once was not enough.
    if ending := [t for t in leaked if t.cancelling()]:
        await asyncio.wait(ending, timeout=5.0)
        leaked = [t for t in leaked if not t.done() and not _closed_clients_metadata_task(t)]
    for task in leaked:
        task.cancel()
    assert not leaked, f"the test left tasks running: {leaked}"


@pytest.fixture(autouse=True)
def _async_tests_leave_no_tasks(request: pytest.FixtureRequest) -> None:
    """Fail an async test that leaves tasks running (an unowned task is a bug in the code under test)."""
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        request.getfixturevalue("_no_leaked_tasks")
