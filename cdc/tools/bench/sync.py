"""Benchmarks 2-6 of issue 7, the sync: latency, bulk backfill, replay, rate-limited, naive batching.

Every process is real and separate: one local Apache Kafka for the run; per repeat and stack, `cdc
sandbox`, `cdc ingest`, `cdc sync` and `cdc poll` as subprocesses (`cdc.tools.bench._stack`), with the load
generators (`cdc.tools.bench.editgen`, `cdc.tools.bench.replaygen`, `cdc.tools.bench.kafka_latency`) in
processes of their own. Per repeat, in order:

1. stack A (batching on: the daemon's default ``sync.batch_size`` and ``batch_wait_ms``): bulk backfill;
   then latency at each rate next to the raw Kafka produce -> consume hop at the same rate; then replay
   with a fresh consumer group; then HubSpot at its real rate limits;
2. stack B (``batch_size=1``, ``batch_wait_ms=0``: no batching, no coalescing): the same backfill, the
   baseline of API efficiency.

Figures are the median (min-max) over the repeats. Clocks: latency runs from the source sandbox's change
time (HubSpot ``updatedAt``, ms; Dataverse: the moment its admin API acknowledged the edit, as
``modifiedon`` has 1 s resolution) to the ``at`` of the audit record of the write, stamped by `cdc sync`
right after the target sandbox acknowledged it. All three processes read the same host wall clock.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from cdc.sandbox.calls import KINDS
from cdc.tools.bench import _peer_scenarios as peer_scenarios
from cdc.tools.bench import _scenarios as scenarios
from cdc.tools.bench import profile as profiler
from cdc.tools.bench._stack import RoleOptions, running_stack
from cdc.tools.bench.stats import summary
from cdc.tools.devkafka.runner import LocalKafka
from consumers.loader import STANDARD_FIELDS_RESOURCE
from streams.config import KafkaSettings

Say = Callable[[str], None]

SCENARIOS = frozenset({"backfill", "latency", "replay", "rate_limited", "naive_backfill", "peer"})
"""What `cdc bench sync --only` picks from; the latency scenario brings the daemon's probe beside the peer."""


@dataclass(frozen=True)
class Plan:
    """What one run does; ``quick()`` is the under-three-minutes form."""

    rates: tuple[float, ...] = (50.0, 200.0, 1000.0)
    seconds: float = 5.0
    contacts: int = 10_000
    companies: int = 2_000
    replay_events: int = 100_000
    rate_limited_records: int = 5_000
    repeats: int = 3
    dataverse_interval_s: float = 1.0
    within_s: float = 900.0
    naive_within_s: float = 300.0
    """The unbatched backfill runs ~20x slower: it is measured on what it syncs in this time."""
    peer_interval_s: float = 60.0
    """The peer baseline's poll interval (`cdc.tools.bench.peer`); its latency scales with it."""
    peer_rate: float = 20.0
    """User edits per second while the peer's latency is measured."""
    profile: bool = False
    """Sample `cdc sync` with py-spy during each replay (`cdc.tools.bench.profile`; the first is shown)."""
    only: frozenset[str] = SCENARIOS
    """The scenarios to run (`SCENARIOS`); the backfill always runs: the others start from what it synced."""

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            rates=(50.0, 200.0),
            seconds=3.0,
            contacts=1_000,
            companies=200,
            replay_events=10_000,
            rate_limited_records=1_000,
            repeats=1,
            within_s=180.0,
            naive_within_s=180.0,
            peer_interval_s=10.0,
        )


async def _repeat(kafka: KafkaSettings, plan: Plan, config: Path, logs: Path, say: Say) -> dict[str, Any]:
    batched = RoleOptions(sync_config=config, dataverse_interval_s=plan.dataverse_interval_s)
    out: dict[str, Any] = {}
    prefix = kafka.topic_prefix
    async with running_stack(
        kafka.model_copy(update={"topic_prefix": f"{prefix}a."}), batched, logs / "a"
    ) as stack:
        out["backfill"] = await scenarios.backfill(
            stack, plan.contacts, plan.companies, within=plan.within_s, say=say
        )
        pairs = out["backfill"].pop("_pairs")
        if "latency" in plan.only:
            out["latency"] = []
            for rate in plan.rates:
                row = await scenarios.latency(stack, pairs, rate, plan.seconds, say)
                row["kafka_hop"] = await scenarios.kafka_hop(stack, rate, plan.seconds)
                out["latency"].append(row)
        if {"latency", "peer"} & plan.only:
            out["daemon_probe"] = await peer_scenarios.daemon_probe(stack, pairs, say)
        if "replay" in plan.only:
            out["replay"] = await scenarios.replay(
                stack,
                plan.replay_events,
                within=plan.within_s,
                say=say,
                profile=logs / "sync-replay.pyspy" if plan.profile else None,
            )
        if "rate_limited" in plan.only:
            out["rate_limited"] = await scenarios.rate_limited(
                stack, plan.rate_limited_records, within=plan.within_s, say=say
            )
    if "naive_backfill" in plan.only:
        out["naive_backfill"] = await _naive_backfill(kafka, plan, config, logs, say)
    if "peer" in plan.only:
        out["peer"] = await peer_scenarios.peer_run(
            kafka.model_copy(update={"topic_prefix": f"{prefix}c."}), batched, logs / "c",
            contacts=plan.contacts, rate=plan.peer_rate, interval_s=plan.peer_interval_s, say=say,
        )  # fmt: skip
    return out


async def _naive_backfill(
    kafka: KafkaSettings, plan: Plan, config: Path, logs: Path, say: Say
) -> dict[str, Any]:
    naive = RoleOptions(
        sync_config=config, batch_size=1, batch_wait_ms=0, dataverse_interval_s=plan.dataverse_interval_s
    )
    prefix = kafka.topic_prefix
    async with running_stack(
        kafka.model_copy(update={"topic_prefix": f"{prefix}b."}), naive, logs / "b"
    ) as stack:
        result = await scenarios.backfill(
            stack, plan.contacts, plan.companies, within=plan.naive_within_s, say=say
        )
    result.pop("_pairs")
    return result


def run_bench(plan: Plan, *, out_dir: Path, say: Say) -> dict[str, Any]:
    """Run every scenario ``plan.repeats`` times; write and return the JSON result."""
    if plan.profile and profiler.available() is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy)")
    logs = Path(tempfile.mkdtemp(prefix="cdc-bench-sync-"))
    config = logs / "sync-config.yaml"
    config.write_text(
        resources.files("consumers").joinpath(STANDARD_FIELDS_RESOURCE).read_text(encoding="utf-8")
    )
    say(f"daemon logs: {logs}")
    say("starting a local Apache Kafka ...")
    rounds: list[dict[str, Any]] = []
    with LocalKafka() as broker:
        for repeat in range(1, plan.repeats + 1):
            say(f"repeat {repeat}/{plan.repeats}")
            kafka = KafkaSettings(
                bootstrap_servers=broker.bootstrap,
                topic_prefix=f"bs{int(time.time())}r{repeat}",
                partitions=6,
            )
            rounds.append(asyncio.run(_repeat(kafka, plan, config, logs / f"r{repeat}", say)))
    result = summarize(plan, rounds)
    result["logs"] = str(logs)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"sync-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    result["path"] = str(path)
    return result


def _s(rounds: Sequence[dict[str, Any]], *path: Any) -> dict[str, Any]:
    """The summary over repeats of the number at ``path`` in each round (absent ones left out)."""
    values = []
    for r in rounds:
        value: Any = r
        for part in path:
            value = value[part] if isinstance(value, list) or part in value else None
            if value is None:
                break
        if isinstance(value, int | float):
            values.append(float(value))
    return summary(values)


def _kinds(rounds: Sequence[dict[str, Any]], *path: str) -> dict[str, dict[str, Any]]:
    """Calls per record by kind (`cdc.sandbox.calls.call_kind`), each summarized over the repeats."""
    return {kind: _s(rounds, *path, "by_kind_per_record", kind) for kind in KINDS}


def with_baseline(result: dict[str, Any], baseline: dict[str, Any], source: str) -> dict[str, Any]:
    """``result`` with another run's figures beside it (``baseline``: the JSON of a `cdc bench sync` run of
    another checkout, main's, on the same machine in the same session, read from ``source``), shown by
    `table` next to its own."""
    keep = ("backfill", "naive_backfill", "replay", "rate_limited")
    figures = {k: baseline[k] for k in keep if k in baseline}
    return {**result, "baseline": {**figures, "path": source}}


def summarize(plan: Plan, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures over the repeats, one section per scenario run (`Plan.only`)."""
    sections = {
        "latency": _latency,
        "backfill": _backfill,
        "naive_backfill": _naive,
        "replay": _replay,
        "rate_limited": _rate_limited,
        "peer": _peer,
    }
    ran = {name: make(plan, rounds) for name, make in sections.items() if rounds and name in rounds[0]}
    return {
        "scenario": "sync",
        "mode": "subprocesses (cdc sandbox, ingest, poll, sync); load generators in their own processes",
        "plan": {
            k: (sorted(v) if isinstance(v, frozenset) else list(v) if isinstance(v, tuple) else v)
            for k, v in plan.__dict__.items()
        },
        "repeats": len(rounds),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "clock": "host wall clock: source sandbox change time -> audit `at` stamped by cdc sync after the "
        "target acknowledged the write",
        **ran,
        "rounds": rounds,
    }


def _peer(plan: Plan, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    del plan
    return peer_scenarios.summarize(rounds)


def _latency(plan: Plan, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    latency = []
    for index, rate in enumerate(plan.rates):
        directions = sorted({d for r in rounds for d in r["latency"][index]["by_direction"]})
        latency.append(
            {
                "target_per_s": rate,
                "achieved_per_s": _s(rounds, "latency", index, "achieved_per_s"),
                "by_direction": {
                    d: {
                        q: _s(rounds, "latency", index, "by_direction", d, q)
                        for q in ("p50_ms", "p99_ms", "max_ms")
                    }
                    for d in directions
                },
                "by_stage": {
                    d: {
                        stage: {
                            q: _s(rounds, "latency", index, "by_stage", d, stage, q)
                            for q in ("n", "p50_ms", "p99_ms", "max_ms")
                        }
                        for stage in scenarios.STAGES
                    }
                    for d in directions
                },
                "kafka_hop": {
                    q: _s(rounds, "latency", index, "kafka_hop", q) for q in ("p50_ms", "p99_ms", "max_ms")
                },
                "missing": sum(sum(r["latency"][index]["missing"].values()) for r in rounds),
                "writes_failed": sum(r["latency"][index]["writes_failed"] for r in rounds),
            }
        )
    return {
        "rates": latency,
        "baseline": {
            "naive_poller_floor_s": plan.dataverse_interval_s,
            "note": "a naive poller cannot beat its poll interval (here the Dataverse poll interval; "
            "the seeds poll every 10-15 min, i.e. p50 ~ 300-450 s); the raw Kafka produce -> consume "
            "hop per rate is the best any Kafka pipeline can do",
        },
    }


def _backfill(plan: Plan, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    del plan
    return {
        "wall_s": _s(rounds, "backfill", "wall_s"),
        "records_per_s": _s(rounds, "backfill", "records_per_s"),
        "calls_per_record": _s(rounds, "backfill", "api", "calls_per_record"),
        "write_calls_per_record": _s(rounds, "backfill", "api", "write_calls_per_record"),
        "by_kind_per_record": _kinds(rounds, "backfill", "api"),
        "duplicates": sum(r["backfill"]["duplicates_total"] for r in rounds),
        "completed": all(r["backfill"]["completed"] for r in rounds),
    }


def _naive(plan: Plan, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    del plan
    batched = _s(rounds, "backfill", "api", "calls_per_record")
    naive = _s(rounds, "naive_backfill", "api", "calls_per_record")
    return {
        "wall_s": _s(rounds, "naive_backfill", "wall_s"),
        "records_per_s": _s(rounds, "naive_backfill", "records_per_s"),
        "calls_per_record": naive,
        "write_calls_per_record": _s(rounds, "naive_backfill", "api", "write_calls_per_record"),
        "by_kind_per_record": _kinds(rounds, "naive_backfill", "api"),
        "records_synced": _s(rounds, "naive_backfill", "records_synced"),
        "duplicates": sum(r["naive_backfill"]["duplicates_total"] for r in rounds),
        "completed": all(r["naive_backfill"]["completed"] for r in rounds),
        "calls_saved_ratio": naive["median"] / batched["median"] if batched["median"] else 0.0,
    }


def _replay(plan: Plan, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    del plan
    return {
        "events": _s(rounds, "replay", "events"),
        "events_per_s": _s(rounds, "replay", "events_per_s"),
        "events_per_cpu_s": _s(rounds, "replay", "events_per_cpu_s"),
        "api_writes": sum(r["replay"]["api_write_calls"] for r in rounds),
        "sync_writes": sum(r["replay"]["sync_writes"] for r in rounds),
        "calls_per_event": _s(rounds, "replay", "api_calls", "calls_per_record"),
        "by_kind_per_event": _kinds(rounds, "replay", "api_calls"),
        "completed": all(r["replay"]["completed"] for r in rounds),
        **({"profile": rounds[0]["replay"]["profile"]} if "profile" in rounds[0]["replay"] else {}),
    }


def _rate_limited(plan: Plan, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    del plan
    return {
        "records_per_s": _s(rounds, "rate_limited", "records_per_s"),
        "ceiling_records_per_s": rounds[0]["rate_limited"]["ceiling_records_per_s"],
        "fraction_of_ceiling": _s(rounds, "rate_limited", "fraction_of_ceiling"),
        "hubspot_429s": sum(r["rate_limited"]["hubspot_429s"] for r in rounds),
        "failed_writes": sum(r["rate_limited"]["failed_writes"] for r in rounds),
        "completed": all(r["rate_limited"]["completed"] for r in rounds),
        "budget_bound": {
            "records_per_s": _s(rounds, "rate_limited", "budget_bound", "records_per_s"),
            "fraction_of_ceiling": _s(rounds, "rate_limited", "budget_bound", "fraction_of_ceiling"),
            "hubspot_429s": sum(r["rate_limited"]["budget_bound"]["hubspot_429s"] for r in rounds),
            "failed_writes": sum(r["rate_limited"]["budget_bound"]["failed_writes"] for r in rounds),
        },
        "baseline_budget_off": {
            "records_per_s": _s(rounds, "rate_limited", "baseline_budget_off", "records_per_s"),
            "fraction_of_ceiling": _s(rounds, "rate_limited", "baseline_budget_off", "fraction_of_ceiling"),
            "hubspot_429s": sum(r["rate_limited"]["baseline_budget_off"]["hubspot_429s"] for r in rounds),
            "failed_writes": sum(r["rate_limited"]["baseline_budget_off"]["failed_writes"] for r in rounds),
        },
    }


def _m(s: dict[str, Any], fmt: str = ",.0f") -> str:
    return f"{s['median']:{fmt}} ({s['min']:{fmt}}-{s['max']:{fmt}})"


def _by_kind(row: dict[str, Any]) -> str:
    kinds = row.get("by_kind_per_record") or {}
    return "  ".join(f"{kind} {kinds[kind]['median']:.3f}" for kind in KINDS if kind in kinds)


def _kind_lines(result: dict[str, Any]) -> list[str]:
    """Backfill calls per record by kind: this run's, and the baseline's (another checkout) when given."""
    lines = ["calls/record by kind (median):"]
    rows = [("batched", result["backfill"])]
    if "naive_backfill" in result:
        rows.append(("naive", result["naive_backfill"]))
    base = result.get("baseline") or {}
    if "backfill" in base:
        rows.append(("baseline batched", base["backfill"]))
    for label, row in rows:
        total = row["calls_per_record"]["median"]
        lines.append(f"  {label:<24} {total:.3f} = {_by_kind(row)}")
    return lines


def _baseline_replay(result: dict[str, Any]) -> list[str]:
    r = (result.get("baseline") or {}).get("replay")
    if not r:
        return []
    return [
        f"baseline replay ({result['baseline'].get('path')}): {_m(r['events'])} events at "
        f"{_m(r['events_per_s'])} events/s"
        + (f" ({_m(r['events_per_cpu_s'])} per CPU second)" if "events_per_cpu_s" in r else "")
        + f"; API writes {r['api_writes']}, sync writes {r['sync_writes']}"
    ]


def table(result: dict[str, Any]) -> str:
    lines = [
        f"sync benchmarks, median (min-max) of {result['repeats']} repeats; {result['mode']}",
        f"clock: {result['clock']}",
    ]
    if "latency" in result:
        lines += _latency_lines(result["latency"])
    lines += _backfill_lines(result)
    if "replay" in result:
        lines += _replay_lines(result)
    if "rate_limited" in result:
        lines += _rate_limited_lines(result["rate_limited"])
    if "peer" in result:
        by_direction = result["latency"]["rates"][0]["by_direction"] if "latency" in result else {}
        lines += peer_scenarios.table(result["peer"], by_direction)
    return "\n".join(lines)


def _latency_lines(lat: dict[str, Any]) -> list[str]:
    lines = ["", "end-to-end latency (ms)          p50                p99                max"]
    for row in lat["rates"]:
        lines.append(f"at {row['target_per_s']:,.0f}/s (achieved {row['achieved_per_s']['median']:,.0f}/s), "
                     f"missing {row['missing']}, failed writes {row['writes_failed']}")  # fmt: skip
        for direction, q in row["by_direction"].items():
            lines.append(
                f"  {direction:<24} {_m(q['p50_ms']):>18} {_m(q['p99_ms']):>18} {_m(q['max_ms']):>18}"
            )
            for stage, s in row.get("by_stage", {}).get(direction, {}).items():
                lines.append(
                    f"    {stage:<22} {_m(s['p50_ms']):>18} {_m(s['p99_ms']):>18} {_m(s['max_ms']):>18}"
                )
        k = row["kafka_hop"]
        lines.append(f"  {'raw kafka hop (ceiling)':<24} {_m(k['p50_ms'], ',.1f'):>18} "
                     f"{_m(k['p99_ms'], ',.1f'):>18} {_m(k['max_ms'], ',.1f'):>18}")  # fmt: skip
    floor = lat["baseline"]["naive_poller_floor_s"]
    lines.append(f"  naive poller floor: its poll interval, here {floor:.1f} s "
                 "(Dataverse side); the seeds' 10-15 min pollers: p50 ~ 300-450 s")  # fmt: skip
    return lines


def _backfill_lines(result: dict[str, Any]) -> list[str]:
    b = result["backfill"]
    lines = [
        "",
        f"{'backfill':<26} {'wall s':>22} {'records/s':>22} {'calls/record':>22} {'writes/record':>22} dups",
        f"{'batched (defaults)':<26} {_m(b['wall_s'], ',.1f'):>22} {_m(b['records_per_s']):>22} "
        f"{_m(b['calls_per_record'], '.3f'):>22} {_m(b['write_calls_per_record'], '.3f'):>22} "
        f"{b['duplicates']}" + ("" if b["completed"] else "  ** the batched backfill did not complete **"),
    ]
    n = result.get("naive_backfill")
    if n is not None:
        lines += [
            f"{'naive (1, 0 ms)':<26} {_m(n['wall_s'], ',.1f'):>22} {_m(n['records_per_s']):>22} "
            f"{_m(n['calls_per_record'], '.3f'):>22} {_m(n['write_calls_per_record'], '.3f'):>22} "
            f"{n['duplicates']}",
            f"calls saved by batching: {n['calls_saved_ratio']:.1f}x"
            + (
                ""
                if n["completed"]
                else f" (naive measured on the {_m(n['records_synced'], ',.0f')} records it synced "
                f"in {result['plan']['naive_within_s']:.0f} s)"
            ),
        ]
    return [*lines, "", *_kind_lines(result)]


def _replay_lines(result: dict[str, Any]) -> list[str]:
    r = result["replay"]
    return [
        "",
        f"replay: {_m(r['events'])} events at {_m(r['events_per_s'])} events/s "
        f"({_m(r['events_per_cpu_s'])} per CPU second of `cdc sync`); "
        f"API writes {r['api_writes']}, "
        f"sync writes {r['sync_writes']}" + ("" if r["completed"] else "  ** did not catch up **"),
        *_baseline_replay(result),
        *(profiler.table(r["profile"], "cdc sync during the replay") if "profile" in r else []),
    ]


def _rate_limited_lines(q: dict[str, Any]) -> list[str]:
    return [
        f"rate-limited HubSpot (190/10 s, 1M/day, search 5/s; 2 sync replicas and poll sharing the budget): "
        f"{_m(q['records_per_s'])} records/s = {_m(q['fraction_of_ceiling'], '.0%')} of the "
        f"{q['ceiling_records_per_s']:,.0f}/s the limits allow for the calls a record needs; "
        f"429s {q['hubspot_429s']}, failed writes {q['failed_writes']}"
        + ("" if q["completed"] else "  ** did not complete **"),
        f"  baseline, budget off: {_m(q['baseline_budget_off']['records_per_s'])} records/s = "
        f"{_m(q['baseline_budget_off']['fraction_of_ceiling'], '.0%')}; "
        f"429s {q['baseline_budget_off']['hubspot_429s']}, "
        f"failed writes {q['baseline_budget_off']['failed_writes']}",
        f"  at a tenth of the burst limit (19/10 s, search 1/s), where the budget binds: "
        f"{_m(q['budget_bound']['records_per_s'])} records/s = "
        f"{_m(q['budget_bound']['fraction_of_ceiling'], '.0%')}; 429s {q['budget_bound']['hubspot_429s']}, "
        f"failed writes {q['budget_bound']['failed_writes']}",
    ]
