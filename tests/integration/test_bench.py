"""`cdc bench ingest` runs end to end and writes the JSON it promises (figures are not asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from cdc.tools.bench.stats import percentile, summary
from streams.config import KafkaSettings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_bench_ingest_writes_results_with_baseline_and_percentiles(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDC_")}
    out = subprocess.run(
        [sys.executable, "-m", "cdc", "bench", "ingest", "--rates", "500", "--seconds", "1", "--repeats", "1",
         "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "baseline: raw aiokafka produce" in out.stdout
    [path] = tmp_path.glob("ingest-*.json")
    result = orjson.loads(path.read_bytes())
    assert result["scenario"] == "webhook_ingest"
    assert result["baseline_raw_produce_events_per_s"]["median"] > 0
    [row] = result["rates"]
    assert row["events_per_s"]["median"] > 0
    assert row["non_200"] == 0
    assert row["p99_ms"]["median"] >= row["p50_ms"]["median"] > 0


def test_percentiles_and_summaries() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) == 0.0
    assert summary([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}


def test_bench_links_compares_the_disk_store_with_the_in_memory_view(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Small counts: the figures are the bench's business; what a reader checks is that each scenario ran
    as named (a restart read only the tail, the killed replica's file was resumed, every lookup found its
    link) and that the projection is there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDC_")}
    env["CDC_KAFKA__BOOTSTRAP_SERVERS"] = kafka_settings.bootstrap_servers
    out = subprocess.run(
        [sys.executable, "-m", "cdc", "bench", "links", "--counts", "300,600", "--fields", "5",
         "--tail", "50", "--state-dir", str(tmp_path), "--out-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    [path] = tmp_path.glob("links-*.json")
    result = orjson.loads(path.read_bytes())
    for row in result["results"]:
        assert row["memory"]["links"] == row["disk_cold"]["links"] == row["links"]
        assert row["disk_cold"]["rebuilt"]
        assert row["disk_cold"]["file_mib"] > 0
        assert row["disk_restart_clean"]["records_read"] == 0
        assert not row["disk_restart_clean"]["rebuilt"]
        assert row["disk_killed"]["records_read"] == 50  # the updates after the clean restart
        assert not row["disk_restart_killed"]["rebuilt"]
        assert row["disk_restart_killed"]["records_read"] == 0
        assert all(row[s]["lookup_misses"] == 0 for s in ("memory", "disk_cold", "disk_restart_killed"))
    assert result["projection"]["links"] == 10_000_000
