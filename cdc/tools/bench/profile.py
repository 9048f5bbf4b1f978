"""`cdc bench ingest --profile` and `cdc bench sync --profile`: where `cdc ingest` (at the highest rate) and
`cdc sync` (during the replay) spend their time under the bench's load, from py-spy.

py-spy (``pip install py-spy``; it reads the process from outside, so it needs ptrace: root, or
``CAP_SYS_PTRACE`` in a container) samples the daemon while the loadgen runs at the highest rate, with
``--nonblocking`` so the sampling does not stop the process it measures, and ``--idle`` off: a sample is a
moment the event loop was busy. The raw (collapsed) stacks are kept beside the JSON result; the summary
lists the functions by self time (the frame on top, any code) and our own functions (``cdc/``,
``streams/``, ``consumers/``, less the command-line entry) by total time (anywhere on the stack), each as a
share of all busy samples.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

TOP = 15
_OURS = (" (cdc/", " (streams/", " (consumers/")
_ENTRY = ("(cdc/__main__.py)", "(cdc/cli.py)")
_COMMANDS = " (cdc/commands/"
"""The command-line entry: `cdc.cli` and the command that started the role, on every sample's stack."""
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def available() -> str | None:
    """py-spy's path (beside this Python, as a virtualenv installs it, or on the PATH), else ``None``."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    spy = available()
    if spy is None:
        raise RuntimeError("--profile needs py-spy on the PATH (pip install py-spy)")
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", "250",
         "--format", "raw", "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def stop(spy: subprocess.Popen[bytes]) -> None:
    """End the sampling before its duration (py-spy writes what it has on SIGINT)."""
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) the process has used so far, from ``/proc`` (``None`` where there is none):
    on a machine shared with other work, events per CPU second say what the code costs, where events per
    wall second say how busy the machine was."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def finish(spy: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    _, err = spy.communicate(timeout=120)
    if spy.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed (exit {spy.returncode}): {err.decode().strip()[-500:]}")
    return summarize(out.read_text(encoding="utf-8"), str(out))


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    file = match["file"].removeprefix("<frozen ").removesuffix(">")
    return f"{match['function']} ({file})"


def _ours(name: str) -> bool:
    return any(package in name for package in _OURS) and not name.endswith(_ENTRY) and _COMMANDS not in name


def summarize(collapsed: str, path: str = "") -> dict[str, Any]:
    """Top functions by self and by total share of the samples, from py-spy's raw (collapsed) output."""
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        samples += count
        self_time[frames[-1]] += count
        for name in set(frames):
            if _ours(name):
                total_time[name] += count
    share = max(samples, 1)
    return {
        "samples": samples,
        "raw": path,
        "self": [{"function": f, "share": n / share} for f, n in self_time.most_common(TOP)],
        "total": [{"function": f, "share": n / share} for f, n in total_time.most_common(TOP)],
    }


def table(profile: dict[str, Any], what: str = "cdc ingest at the highest rate") -> list[str]:
    lines = [f"profile of {what}: {profile['samples']:,} busy samples "
             f"(py-spy raw stacks: {profile['raw']})", "  self time:"]  # fmt: skip
    lines += [f"    {row['share']:>6.1%}  {row['function']}" for row in profile["self"]]
    lines.append("  total time of our functions (anywhere on the stack):")
    lines += [f"    {row['share']:>6.1%}  {row['function']}" for row in profile["total"]]
    return lines
