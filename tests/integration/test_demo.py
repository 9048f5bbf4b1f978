"""The README's first command: `cdc demo` shows HubSpot edits landing on Kafka and stops on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_demo_shows_changes_syncing_prints_metrics_and_stops_on_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDC_")}
    with subprocess.Popen(
        [sys.executable, "-m", "cdc", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 120
        try:
            while sum("-> crm.changes.hubspot" in line for line in lines) < 2 and time.monotonic() < deadline:
                line = process.stdout.readline()
                if not line:
                    break
                lines.append(line)
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(60)
        lines.extend(process.stdout.readlines())
    output = "".join(lines)
    assert code == 0, output
    assert "metrics: http://127.0.0.1:" in output
    assert "seeded HubSpot with 50 companies and 200 contacts" in output
    assert sum("-> crm.changes.hubspot" in line for line in lines) >= 2, output
