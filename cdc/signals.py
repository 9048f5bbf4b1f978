"""Signals every long-running role answers.

- SIGINT, SIGTERM: set the role's ``stop`` event; its numbered shutdown follows.
- SIGTERM to a foreground command (``cdc bench``, ``cdc demo``): the same as Ctrl-C, so the local broker,
  sandbox and role processes it started are stopped, not orphaned (`sigterm_as_interrupt`).
- SIGUSR1: log where each asyncio task of the process waits, and carry on. What a stuck process needs
  explained at 3 a.m.: a thread dump (py-spy) shows an idle event loop, not the coroutine chain a task is
  parked in. The dump is one WARNING record of the ``cdc.tasks`` logger, a block per task: its name,
  then its frames, innermost last, as ``file:line in function``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger("cdc.tasks")
MAX_FRAMES = 12
_STOPPING = (signal.SIGINT, signal.SIGTERM)


def describe_tasks() -> str:
    blocks = []
    for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name()):
        frames = task.get_stack(limit=MAX_FRAMES)
        lines = [f"  {f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}" for f in frames]
        blocks.append("\n".join([f"task {task.get_name()}:", *lines]))
    return "\n".join(blocks)


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """While the block runs: SIGINT and SIGTERM set ``stop``, SIGUSR1 logs the task dump."""
    loop = asyncio.get_running_loop()

    def stopping(sig: signal.Signals) -> None:
        logging.getLogger("cdc").info("%s received, stopping", sig.name)
        stop.set()

    for sig in _STOPPING:
        loop.add_signal_handler(sig, stopping, sig)
    loop.add_signal_handler(signal.SIGUSR1, lambda: log.warning("asyncio tasks:\n%s", describe_tasks()))
    try:
        yield
    finally:
        for sig in (*_STOPPING, signal.SIGUSR1):
            loop.remove_signal_handler(sig)


def sigterm_as_interrupt() -> None:
    """From now on SIGTERM is SIGINT: a command stopped by ``kill`` or a supervisor unwinds as on Ctrl-C
    (asyncio cancels the main task; ``with`` blocks stop what they started). The roles' own handlers
    (`stop_on_signals`) take over while they run."""

    def interrupt(_signum: int, _frame: object) -> None:
        signal.raise_signal(signal.SIGINT)

    if threading.current_thread() is threading.main_thread():  # a command run from a test's thread: no
        signal.signal(signal.SIGTERM, interrupt)
