"""`cdc bench sync` runs its smallest form end to end and writes the JSON it promises; the guarantees it
measures hold (no duplicates, a replay writes nothing, no failed write under HubSpot's limits)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from cdc.tools.bench.sync import table, with_baseline

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


# Every scenario of the bench once, the peer's included: 160-200 s alone, over 300 s under load.
@pytest.mark.timeout(900)
def test_bench_sync_quick_smallest_form(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDC_")}
    out = subprocess.run(
        [sys.executable, "-m", "cdc", "bench", "sync", "--quick", "--contacts", "40", "--companies", "10",
         "--replay-events", "500", "--rates", "50", "--seconds", "1", "--rate-limited-records", "20",
         "--peer-interval", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=840, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "raw kafka hop (ceiling)" in out.stdout
    [path] = tmp_path.glob("sync-*.json")
    result = orjson.loads(path.read_bytes())
    assert result["scenario"] == "sync"
    assert result["repeats"] == 1
    [rate] = result["latency"]["rates"]
    assert set(rate["by_direction"]) == {"hubspot_to_dataverse", "dataverse_to_hubspot"}
    assert rate["missing"] == 0
    assert rate["kafka_hop"]["p50_ms"]["median"] > 0
    # Where the time goes, per direction: each stage seen for the edits (the webhook or poll, the router,
    # the apply loop), and the stages add up to no more than the whole.
    for direction, stages in rate["by_stage"].items():
        assert set(stages) == {"edit_to_change", "change_to_work", "work_to_write"}, direction
        assert all(stage["n"]["median"] > 0 for stage in stages.values()), stages  # edits measured
    assert "by stage: edit_to_change p50" in out.stderr  # the progress lines
    assert "    work_to_write" in out.stdout  # the table
    for name in ("backfill", "naive_backfill"):
        assert result[name]["completed"], result["rounds"][0][name]
        assert result[name]["duplicates"] == 0
        assert result[name]["calls_per_record"]["median"] > 0
    assert result["naive_backfill"]["calls_saved_ratio"] > 1
    assert result["replay"]["completed"]
    assert result["replay"]["events"]["median"] >= 500
    assert result["replay"]["api_writes"] == 0
    assert result["replay"]["sync_writes"] == 0
    assert result["rate_limited"]["completed"]
    assert result["rate_limited"]["failed_writes"] == 0
    assert "peer baseline: poll-and-upsert every 2 s" in out.stdout
    peer = result["peer"]
    assert peer["backfill"]["duplicates"] == 0
    assert peer["latency"]["missing"] == 0
    assert set(peer["latency"]["by_direction"]) == {"hubspot_to_dataverse", "dataverse_to_hubspot"}
    for who in ("daemon", "peer"):
        assert peer["probe"][who]["duplicates"] == 0
        assert peer["probe"][who]["unsynced_creates"] == 0

    # Calls per record by kind add up to the total; a baseline run (main's) is shown beside this one.
    kinds = result["rounds"][0]["backfill"]["api"]["by_kind_per_record"]
    assert set(kinds) == {"read", "lookup", "association", "write", "poll", "other"}
    assert sum(kinds.values()) == pytest.approx(result["rounds"][0]["backfill"]["api"]["calls_per_record"])
    assert kinds["write"] > 0
    assert kinds["lookup"] > 0  # first sync matched records by email and name
    shown = table(with_baseline(result, result, str(path)))
    assert "calls/record by kind" in shown
    assert "baseline batched" in shown
    assert f"baseline replay ({path})" in shown


def test_bench_sync_refuses_a_baseline_that_is_not_a_bench_sync_result_before_running(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDC_")}
    wrong = ((b"{not json", "is not JSON"), (b'{"scenario": "ingest"}', "is not a `cdc bench sync`"))
    for content, why in wrong:
        bad = tmp_path / "baseline.json"
        bad.write_bytes(content)
        out = subprocess.run(
            [sys.executable, "-m", "cdc", "bench", "sync", "--quick", "--baseline", str(bad),
             "--out", str(tmp_path)],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 2, out.stderr[-2000:]
        assert why in out.stderr
        assert not list(tmp_path.glob("sync-*.json"))  # refused before the run
