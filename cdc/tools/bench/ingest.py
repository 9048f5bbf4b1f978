"""Benchmark 1, webhook ingest: signed batches of 100 events at increasing rates through `cdc ingest`.

Every process is real and separate: a local Apache Kafka, `cdc ingest` (uvicorn + aiokafka), the load
generator (`cdc.tools.bench.loadgen`) and, as the baseline in the same run, a raw aiokafka producer
(`cdc.tools.bench.produce`) writing the same events to the same broker: the ceiling the receiver can approach.
Per rate it reports events/s accepted and p50/p99 time to answer, median (min-max) over the repeats.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cdc.tools.bench import profile as profiler
from cdc.tools.bench.loadgen import PORTAL_ID
from cdc.tools.bench.stats import percentile, summary
from cdc.tools.devkafka.runner import LocalKafka, free_port
from streams.admin import ensure_topics, open_admin
from streams.config import KafkaSettings
from streams.topics import TopicCatalog, TopicRole

Say = Callable[[str], None]


def _run_json(args: Sequence[str], timeout: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, check=False, timeout=timeout
    )
    if out.returncode != 0:
        raise RuntimeError(f"{args[0]} failed (exit {out.returncode}): {out.stderr.strip()[-500:]}")
    result: dict[str, Any] = orjson.loads(out.stdout.strip().splitlines()[-1])
    return result


def _wait_healthy(url: str, process: subprocess.Popen[bytes], limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"cdc ingest exited with {process.returncode} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 -- our own loopback URL
                if response.status == 200:  # noqa: PLR2004 -- HTTP OK
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"cdc ingest did not answer {url} within {limit_s:.0f}s")


def _round(rate: float, run: dict[str, Any]) -> dict[str, Any]:
    latencies = run["latencies_s"]
    return {
        "target_events_per_s": rate,
        "events_per_s": run["events_accepted"] / run["wall_s"],
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=0) * 1000,
        "statuses": run["statuses"],
    }


def run_bench(
    *, rates: Sequence[float], seconds: float, repeats: int, out_dir: Path, say: Say, profile: bool = False
) -> dict[str, Any]:
    """Run the scenario and its baseline ``repeats`` times; write and return the JSON result.

    With ``profile``, py-spy samples `cdc ingest` during the first repeat's highest rate
    (:mod:`cdc.tools.bench.profile`)."""
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    out_dir.mkdir(parents=True, exist_ok=True)
    profiled: dict[str, Any] | None = None
    if profile and profiler.available() is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy)")
    say("starting a local Apache Kafka ...")
    with LocalKafka() as broker:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, topic_prefix=f"bench{int(time.time())}.")
        asyncio.run(_ensure(kafka))
        topic = TopicCatalog.from_settings(kafka).name(TopicRole.CHANGES_HUBSPOT)
        secret, port = secrets.token_hex(16), free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CDC_")},
            "CDC_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
            "CDC_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
            "CDC_HUBSPOT__CLIENT_SECRET": secret,
            "CDC_HUBSPOT__PORTAL_ID": str(PORTAL_ID),
            "CDC_INGEST__PORT": str(port),
            "CDC_LOG__LEVEL": "WARNING",
        }
        url = f"http://127.0.0.1:{port}/webhooks/hubspot"
        with subprocess.Popen(
            [sys.executable, "-m", "cdc", "ingest"], env=env, stderr=subprocess.DEVNULL
        ) as daemon:
            try:
                _wait_healthy(f"http://127.0.0.1:{port}/healthz", daemon)
                rounds: list[dict[str, Any]] = []
                for repeat in range(1, repeats + 1):
                    events = int(max(rates) * seconds)
                    baseline = _run_json(
                        ["cdc.tools.bench.produce", broker.bootstrap, topic, str(events)], 600
                    )
                    say(f"repeat {repeat}/{repeats}: raw produce {baseline['events_per_s']:,.0f} events/s")
                    ingest = []
                    for rate in rates:
                        spy = None
                        if profile and profiled is None and rate == max(rates):
                            spy = profiler.start(daemon.pid, seconds, out_dir / f"ingest-{stamp}.pyspy")
                        run = _run_json(
                            ["cdc.tools.bench.loadgen", url, secret, str(rate), str(seconds)], 600
                        )
                        if spy is not None:
                            profiled = profiler.finish(spy, out_dir / f"ingest-{stamp}.pyspy")
                        ingest.append(_round(rate, run))
                        say(
                            f"  target {rate:>8,.0f}/s: {ingest[-1]['events_per_s']:>8,.0f} events/s, "
                            f"p50 {ingest[-1]['p50_ms']:.1f} ms, p99 {ingest[-1]['p99_ms']:.1f} ms"
                        )
                    rounds.append({"baseline_events_per_s": baseline["events_per_s"], "ingest": ingest})
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(30)
    result = _summarize(rates, seconds, rounds)
    if profiled is not None:
        result["profile"] = profiled
    path = out_dir / f"ingest-{stamp}.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    result["path"] = str(path)
    return result


async def _ensure(kafka: KafkaSettings) -> None:
    async with open_admin(kafka) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka))


def _summarize(rates: Sequence[float], seconds: float, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    baseline = summary([r["baseline_events_per_s"] for r in rounds])
    per_rate = []
    for index, rate in enumerate(rates):
        runs = [r["ingest"][index] for r in rounds]
        throughput = summary([run["events_per_s"] for run in runs])
        per_rate.append(
            {
                "target_events_per_s": rate,
                "events_per_s": throughput,
                "p50_ms": summary([run["p50_ms"] for run in runs]),
                "p99_ms": summary([run["p99_ms"] for run in runs]),
                "ratio_to_baseline": throughput["median"] / baseline["median"] if baseline["median"] else 0.0,
                "non_200": sum(v for run in runs for k, v in run["statuses"].items() if k != "200"),
            }
        )
    return {
        "scenario": "webhook_ingest",
        "batch_size": 100,
        "seconds_per_rate": seconds,
        "repeats": len(rounds),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "baseline_raw_produce_events_per_s": baseline,
        "rates": per_rate,
        "rounds": rounds,
    }


def table(result: dict[str, Any]) -> str:
    base = result["baseline_raw_produce_events_per_s"]
    lines = [
        f"webhook ingest, batches of 100, median (min-max) of {result['repeats']} repeats",
        f"baseline: raw aiokafka produce, acks=all: {base['median']:,.0f} events/s "
        f"({base['min']:,.0f}-{base['max']:,.0f})",
        f"{'target/s':>10} {'events/s':>22} {'vs raw':>7} {'p50 ms':>8} {'p99 ms':>8} {'non-200':>8}",
    ]
    for row in result["rates"]:
        eps = row["events_per_s"]
        lines.append(
            f"{row['target_events_per_s']:>10,.0f} "
            f"{eps['median']:>9,.0f} ({eps['min']:,.0f}-{eps['max']:,.0f})".ljust(34)
            + f" {row['ratio_to_baseline']:>6.0%} {row['p50_ms']['median']:>8.1f}"
            f" {row['p99_ms']['median']:>8.1f} {row['non_200']:>8}"
        )
    if "profile" in result:
        lines += profiler.table(result["profile"])
    return "\n".join(lines)
