"""`cdc bench sync` runs its smallest form end to end and writes the JSON it promises; the guarantees it
measures hold (no duplicates, a replay writes nothing, no failed write under HubSpot's limits)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_bench_sync_quick_smallest_form(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDC_")}
    out = subprocess.run(
        [sys.executable, "-m", "cdc", "bench", "sync", "--quick", "--contacts", "40", "--companies", "10",
         "--replay-events", "500", "--rates", "50", "--seconds", "1", "--rate-limited-records", "20",
         "--peer-interval", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
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
