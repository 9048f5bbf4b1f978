"""`cdc bench sync --only`: a run of some scenarios is summarized and shown with just those (the backfill,
which the others start from, always), so a user timing the replay need not wait for the rest."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from cdc.cli import cli
from cdc.sandbox.calls import KINDS
from cdc.tools.bench.sync import Plan, summarize, table

API = {
    "calls_per_record": 0.1,
    "write_calls_per_record": 0.0,
    "by_kind_per_record": dict.fromkeys(KINDS, 0.0),
}


def _round() -> dict[str, Any]:
    return {
        "backfill": {
            "wall_s": 10.0,
            "records_per_s": 200.0,
            "api": API,
            "duplicates_total": 0,
            "completed": True,
        },
        "replay": {
            "completed": True,
            "events": 20_000,
            "events_per_s": 900.0,
            "events_per_cpu_s": 4_000.0,
            "api_write_calls": 0,
            "sync_writes": 0,
            "api_calls": API,
        },
    }


def test_a_replay_only_run_shows_the_backfill_and_the_replay_and_nothing_it_did_not_run() -> None:
    plan = Plan(only=frozenset({"backfill", "replay"}), repeats=2)
    result = summarize(plan, [_round(), _round()])
    assert {"backfill", "replay"} <= result.keys()
    assert not {"latency", "naive_backfill", "rate_limited", "peer"} & result.keys()
    assert result["plan"]["only"] == ["backfill", "replay"]
    shown = table(result)
    assert "4,000 (4,000-4,000) per CPU second of `cdc sync`" in shown
    assert "batched (defaults)" in shown
    assert "naive (1, 0 ms)" not in shown
    assert "rate-limited" not in shown
    assert "end-to-end latency" not in shown


def test_an_unknown_scenario_is_refused_naming_the_ones_there_are() -> None:
    out = CliRunner().invoke(cli, ["bench", "sync", "--only", "replay,replays"])
    assert out.exit_code == 2
    assert "no scenario replays; pick from backfill, latency, naive_backfill, peer, rate_limited, replay" in (
        out.output
    )
