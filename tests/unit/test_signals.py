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
