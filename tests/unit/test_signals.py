"""SIGTERM to a foreground command unwinds like Ctrl-C: what it started is stopped, not orphaned."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import asyncio, contextlib, sys
from cdc.signals import sigterm_as_interrupt

@contextlib.asynccontextmanager
async def started():
    try:
        yield
    finally:
        print("stopped what it started", flush=True)

async def main():
    async with started():
        print("running", flush=True)
        await asyncio.sleep(30)

sigterm_as_interrupt()
try:
    asyncio.run(main())
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_sigterm_cancels_the_running_command_and_its_cleanup_runs(tmp_path: Path) -> None:
    script = tmp_path / "command.py"
    script.write_text(SCRIPT)
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "running"
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
    assert out.split() == ["stopped", "what", "it", "started", "interrupted"]
    assert process.returncode == 130


ROLE = """
import asyncio, logging, sys
from cdc.commands.roles import _run_role
from cdc.signals import sigterm_as_interrupt

async def role(stop):
    print("running", flush=True)
    await stop.wait()
    await asyncio.sleep(0.1)  # the role's numbered shutdown
    print("shut down in order", flush=True)

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
sigterm_as_interrupt()  # as `cdc.cli.main` does before any command
_run_role(role)
print("returned", flush=True)
"""


def test_a_role_run_by_its_command_stops_on_sigterm_through_its_own_shutdown_and_exits_0(
    tmp_path: Path,
) -> None:
    """`cdc ingest|poll|sync|admin` (and `cdc demo`) run their role through one helper: SIGUSR1 logs the
    tasks and changes nothing; SIGTERM sets the role's ``stop``, so its shutdown runs to the end (it is not
    cancelled as a foreground command is) and the command returns normally, exit 0."""
    script = tmp_path / "role.py"
    script.write_text(ROLE)
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "running"
        process.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert out.splitlines() == ["shut down in order", "returned"]
    assert process.returncode == 0
    assert "cdc.tasks asyncio tasks:" in err
    assert "cdc SIGTERM received, stopping" in err
