"""`cdc bench ingest --profile` and `cdc bench sync --profile` read py-spy's raw (collapsed) stacks into the
top entries they report; the replay is also counted per CPU second of `cdc sync`."""

from __future__ import annotations

import os
from pathlib import Path

from cdc.tools.bench.profile import cpu_seconds, summarize, table

ENTRY = (
    "process 12 (python -m cdc ingest);<module> (cdc/__main__.py:4);main (cdc/cli.py:9);"
    "ingest (cdc/commands/roles.py:70);run (cdc/commands/roles.py:31)"
)
RAW = "\n".join(
    [
        f"{ENTRY};_take (cdc/hubspot/receiver.py:300);read_body (cdc/hubspot/events.py:410);"
        "model_validate (pydantic/main.py:792) 6",
        f"{ENTRY};_take (cdc/hubspot/receiver.py:301);publish (cdc/sources/publisher.py:98);"
        "murmur2 (aiokafka/partitioner.py:63) 3",
        "process 12 (python -m cdc ingest);<module> (cdc/__main__.py:4);"
        "_run_once (<frozen asyncio.base_events>:1907) 1",
        "not a sample line",
    ]
)


def test_self_time_is_the_top_frame_and_total_time_lists_our_functions_by_share() -> None:
    profile = summarize(RAW, "out.pyspy")
    assert profile["samples"] == 10
    assert [(row["function"], row["share"]) for row in profile["self"]] == [
        ("model_validate (pydantic/main.py)", 0.6),
        ("murmur2 (aiokafka/partitioner.py)", 0.3),
        ("_run_once (asyncio.base_events)", 0.1),
    ]
    # Our functions only, the command-line entry left out; lines of one function add up.
    assert [(row["function"], row["share"]) for row in profile["total"]] == [
        ("_take (cdc/hubspot/receiver.py)", 0.9),
        ("read_body (cdc/hubspot/events.py)", 0.6),
        ("publish (cdc/sources/publisher.py)", 0.3),
    ]
    assert "  60.0%  model_validate (pydantic/main.py)" in "\n".join(table(profile))


def test_the_table_names_the_process_and_moment_it_sampled() -> None:
    lines = table(summarize(RAW, "out.pyspy"), "cdc sync during the replay")
    assert lines[0] == "profile of cdc sync during the replay: 10 busy samples (py-spy raw stacks: out.pyspy)"


def test_cpu_seconds_are_read_for_a_live_process_and_none_for_a_gone_one() -> None:
    """`cdc bench sync` reports the replay per CPU second of `cdc sync`: the figure that holds on a busy
    machine. Only Linux has ``/proc``; elsewhere the figure is left out (``None``)."""
    mine = cpu_seconds(os.getpid())
    if not Path("/proc/self/stat").exists():
        assert mine is None
        return
    assert mine is not None
    assert mine > 0
    sum(range(2_000_000))  # some CPU
    later = cpu_seconds(os.getpid())
    assert later is not None
    assert later >= mine
    assert cpu_seconds(2**22 + 1) is None  # above the kernel's pid limit: no such process
