"""`cdc bench ingest --profile` reads py-spy's raw (collapsed) stacks into the top entries it reports."""

from __future__ import annotations

from cdc.tools.bench.profile import summarize, table

ENTRY = "process 12 (python -m cdc ingest);<module> (cdc/__main__.py:4);main (cdc/cli.py:9)"
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
