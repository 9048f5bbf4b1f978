"""`cdc bench ingest` runs end to end and writes the JSON it promises (figures are not asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from cdc.tools.bench.stats import percentile, summary

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
