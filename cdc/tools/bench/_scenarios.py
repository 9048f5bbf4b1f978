"""The sync scenarios of issue 7 (items 2-6), each a coroutine over a running stack, returning plain dicts.

They run in this order on one stack: backfill (also the seed of every later scenario), latency at each
rate, replay, rate-limited; the naive backfill runs the same seed on a stack of its own (batching off).
Every wait is bounded: a scenario that stalls reports ``completed: false`` with the counts it saw, rather
than hanging the run or hiding the stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families

from cdc.sandbox.calls import KINDS
from cdc.tools.bench import profile as profiler
from cdc.tools.bench._stack import Stack, SyncCounts
from cdc.tools.bench.stats import percentile
from streams.clients import make_admin, make_consumer
from streams.topics import CHANGES_ROLES, TopicCatalog, TopicRole

Say = Callable[[str], None]
OVERLAP = 0.3
QUIET_S = 3.0
SEED_CHUNK = 2000
# HubSpot's real limits for a Professional/Enterprise private app (reference/hubspot.md §5.1).
REAL_HUBSPOT_LIMITS: dict[str, Any] = {
    "burst": 190,
    "window_ms": 10_000,
    "daily": 1_000_000,
    "search_per_second": 5,
}
BATCH_RECORDS = 100


# -- seeding ---------------------------------------------------------------------------------------


def _email(n: int, tag: str) -> str:
    return f"{tag}{n:06d}@bench.example"


def _company(n: int, tag: str) -> str:
    return f"{tag} Company {n:05d}"


async def seed(stack: Stack, contacts: int, companies: int, tag: str) -> dict[str, Any]:
    """Both sides get ``contacts`` and ``companies``; 30% share an email / name (in another case).

    HubSpot through ``/_admin/seed`` (no webhooks), Dataverse through its rows endpoint (change tracking
    sees the rows, as it would see rows that existed before the daemon was installed).
    """
    shared_c, shared_a = int(contacts * OVERLAP), int(companies * OVERLAP)
    hs_contacts = [
        {
            "email": _email(n, tag),
            "firstname": f"F{n}",
            "lastname": f"L{n}",
            "jobtitle": "seeded",
            "city": "Leeds",
        }
        for n in range(contacts)
    ]
    dv_contacts = [
        {
            "emailaddress1": _email(n, tag).upper(),
            "firstname": f"F{n}",
            "lastname": f"L{n}",
            "telephone1": f"+44 {n}",
        }
        for n in [*range(shared_c), *range(contacts, 2 * contacts - shared_c)]
    ]
    hs_companies = [{"name": _company(n, tag), "city": "York"} for n in range(companies)]
    dv_accounts = [
        {"name": _company(n, tag).upper(), "address1_city": "York"}
        for n in [*range(shared_a), *range(companies, 2 * companies - shared_a)]
    ]
    for start in range(0, max(len(hs_contacts), len(hs_companies)), SEED_CHUNK):
        body = {
            "contacts": hs_contacts[start : start + SEED_CHUNK],
            "companies": hs_companies[start : start + SEED_CHUNK],
        }
        (await stack.hs.post("/_admin/seed", json=body)).raise_for_status()
    for table, rows in (("contact", dv_contacts), ("account", dv_accounts)):
        for start in range(0, len(rows), SEED_CHUNK):
            answer = await stack.dv.post(
                f"/_admin/tables/{table}/rows", json={"rows": rows[start : start + SEED_CHUNK]}
            )
            answer.raise_for_status()
    return {
        "contacts_per_side": contacts,
        "companies_per_side": companies,
        "expected_contacts": 2 * contacts - shared_c,
        "expected_companies": 2 * companies - shared_a,
        "creates": {
            "dataverse contact": contacts - shared_c,
            "hubspot contact": contacts - shared_c,
            "dataverse account": companies - shared_a,
            "hubspot company": companies - shared_a,
        },
    }


# -- waiting ---------------------------------------------------------------------------------------


async def until_quiet(
    stack: Stack, done: Callable[[SyncCounts], bool], *, within: float, quiet_s: float = QUIET_S
) -> tuple[bool, float, SyncCounts]:
    """Wait for ``done(counts)`` and no write for ``quiet_s``: (completed, time of last write, counts)."""
    deadline = time.monotonic() + within
    counts = await stack.sync_counts()
    last_change = time.monotonic()
    while time.monotonic() < deadline:
        if stack.exited():
            raise RuntimeError(f"a daemon role exited during the run: {stack.exited()}; logs in {stack.logs}")
        await asyncio.sleep(0.2)
        now = await stack.sync_counts()
        if (now.writes_ok, now.writes_failed, now.routed) != (
            counts.writes_ok,
            counts.writes_failed,
            counts.routed,
        ):
            last_change = time.monotonic()
        counts = now
        if done(counts) and time.monotonic() - last_change >= quiet_s:
            return True, last_change, counts
    return False, last_change, counts


def _normalize(name: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", name).casefold().strip())


def _duplicates(keys: list[str]) -> int:
    return sum(n - 1 for key, n in Counter(keys).items() if key and n > 1)


async def census(stack: Stack) -> dict[str, Any]:
    """Records on both sides and duplicates by match key (email, normalized name); admin reads, uncounted."""
    hs_contacts = await stack.hs_all("contacts")
    hs_companies = await stack.hs_all("companies")
    dv_contacts = await stack.dv_all("contact")
    dv_accounts = await stack.dv_all("account")
    hs_emails = [(r["properties"].get("email") or "").strip().lower() for r in hs_contacts]
    dv_emails = [(r.get("emailaddress1") or "").strip().lower() for r in dv_contacts]
    return {
        "records": {
            "hubspot contact": len(hs_contacts),
            "hubspot company": len(hs_companies),
            "dataverse contact": len(dv_contacts),
            "dataverse account": len(dv_accounts),
        },
        "duplicates": {
            "hubspot contact": _duplicates(hs_emails),
            "hubspot company": _duplicates(
                [_normalize(r["properties"].get("name") or "") for r in hs_companies]
            ),
            "dataverse contact": _duplicates(dv_emails),
            "dataverse account": _duplicates([_normalize(r.get("name") or "") for r in dv_accounts]),
        },
        "pairs": _pairs(hs_contacts, dv_contacts),
    }


def _pairs(hs: list[dict[str, Any]], dv: list[dict[str, Any]]) -> list[list[str]]:
    by_email = {(r.get("emailaddress1") or "").lower(): str(r["contactid"]) for r in dv}
    out = []
    for record in hs:
        dv_id = by_email.get((record["properties"].get("email") or "").lower())
        if dv_id:
            out.append([str(record["id"]), dv_id])
    return out


def _is_write(endpoint: str) -> bool:
    method, _, path = endpoint.partition(" ")
    reading = method == "GET" or "/batch/read" in path or "/search" in path or "token" in path
    if path.endswith("$batch"):
        return True  # Dataverse $batch carries the writes (reads go as GET)
    return not reading


def calls_per_record(calls: dict[str, Any], records: int) -> dict[str, Any]:
    by_endpoint = {
        f"{system} {endpoint}": n
        for system, snap in calls.items()
        for endpoint, n in snap["by_endpoint"].items()
    }
    total = sum(by_endpoint.values())
    writes = sum(n for key, n in by_endpoint.items() if _is_write(key.split(" ", 1)[1]))
    per = max(records, 1)
    kinds: Counter[str] = Counter()
    for snap in calls.values():
        kinds.update(snap.get("by_kind") or {})
    return {
        "records": records,
        "calls": total,
        "write_calls": writes,
        "calls_per_record": total / per,
        "write_calls_per_record": writes / per,
        "by_kind_per_record": {kind: kinds[kind] / per for kind in KINDS},
        "by_endpoint_per_record": {key: n / per for key, n in sorted(by_endpoint.items())},
        "by_status": {system: snap["by_status"] for system, snap in calls.items()},
    }


# -- 1. bulk backfill (and its naive twin) -----------------------------------------------------------


async def backfill(stack: Stack, contacts: int, companies: int, *, within: float, say: Say) -> dict[str, Any]:
    """Seed, then start `cdc poll`: the reconciler's backfill and the poller's first full pass."""
    seeded = await seed(stack, contacts, companies, "b")
    await stack.start_sync(f"{stack.kafka.topic_prefix}g1-")
    await stack.reset_calls()
    started = time.monotonic()
    await stack.start("poll")
    expected = seeded["creates"]

    def done(counts: SyncCounts) -> bool:
        return all(counts.creates(*key.split(" ")) >= n for key, n in expected.items())

    completed, last, counts = await until_quiet(stack, done, within=within)
    wall = last - started
    calls = await stack.calls()
    seen = await census(stack)
    pairs = seeded["expected_contacts"] + seeded["expected_companies"]
    # A run cut short by ``within`` is measured on what it synced: the share of the creates made.
    made = sum(min(counts.creates(*key.split(" ")), n) for key, n in expected.items())
    synced = pairs if completed else round(pairs * made / max(sum(expected.values()), 1))
    result = {
        "completed": completed,
        "wall_s": wall,
        "records_synced": synced,
        "records_per_s": synced / wall if wall > 0 else 0.0,
        "seeded": {k: v for k, v in seeded.items() if k != "creates"},
        "expected_creates": expected,
        "creates": {key: counts.creates(*key.split(" ")) for key in expected},
        "writes": counts.by_write,
        "writes_failed": counts.writes_failed,
        "deadletters": counts.deadletters,
        "api": calls_per_record(calls, synced),
        "records": seen["records"],
        "duplicates": seen["duplicates"],
        "duplicates_total": sum(seen["duplicates"].values()),
    }
    say(
        f"    backfill (batch {stack.options.batch_size or 'default'}): {synced:,} of {pairs:,} records in "
        f"{wall:.1f}s, "
        f"{result['api']['calls_per_record']:.3f} calls/record, {result['duplicates_total']} duplicates"
        + ("" if completed else "  ** did not complete **")
    )
    result["_pairs"] = seen["pairs"]
    return result


# -- 2. end-to-end latency -----------------------------------------------------------------------------


async def _ends(stack: Stack, role: TopicRole) -> dict[TopicPartition, int]:
    spec = TopicCatalog.from_settings(stack.kafka)[role]
    consumer = make_consumer(stack.kafka, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


async def _landed(
    stack: Stack, start: dict[TopicPartition, int], wanted: set[str], within: float
) -> dict[str, tuple[float, str]]:
    """Audit records since ``start`` carrying a wanted value: value -> (write time, step), first one wins."""
    found: dict[str, tuple[float, str]] = {}
    async with _reading(stack, start) as consumer:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and len(found) < len(wanted):
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    if m.value is None:
                        continue
                    audit = orjson.loads(m.value)
                    at = datetime.fromisoformat(audit["at"]).timestamp()
                    for write in audit.get("fields", ()):
                        value = write.get("new")
                        if isinstance(value, str) and value in wanted and value not in found:
                            found[value] = (at, audit["step"])
    return found


@contextlib.asynccontextmanager
async def _reading(stack: Stack, start: dict[TopicPartition, int]) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer of no group reading from ``start``."""
    consumer = make_consumer(stack.kafka, group_id=None)
    await consumer.start()
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        yield consumer
    finally:
        await consumer.stop()


async def _first_seen(stack: Stack, start: dict[TopicPartition, int], tag: str) -> dict[str, float]:
    """Messages since ``start`` (to the end now) carrying a ``<tag>-<n>`` edit value: value -> the first
    one's timestamp (when it was produced)."""
    pattern = re.compile(re.escape(tag).encode() + rb"-\d+")
    found: dict[str, float] = {}
    async with _reading(stack, start) as consumer:
        ends = await consumer.end_offsets(list(start))
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    for value in pattern.findall(m.value or b""):
                        found.setdefault(value.decode(), m.timestamp / 1000)
    return found


CHANGES = {  # each direction's change topic
    "hubspot_to_dataverse": TopicRole.CHANGES_HUBSPOT,
    "dataverse_to_hubspot": TopicRole.CHANGES_DATAVERSE,
}
STAGES = ("edit_to_change", "change_to_work", "work_to_write")
"""Where an edit's latency goes: the edit to its change event on Kafka (webhook or poll, then ingest), the
change event to its work item (the router), the work item to the audited write (the apply loop: reads,
plan, writes, the commit)."""


async def _stages(
    stack: Stack,
    starts: dict[TopicRole, dict[TopicPartition, int]],
    edits: list[dict[str, Any]],
    tag: str,
    landed: dict[str, tuple[float, str]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Per direction, each of `STAGES` as percentiles, from the messages' timestamps."""
    seen = {role: await _first_seen(stack, start, tag) for role, start in starts.items()}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for direction in sorted({e["direction"] for e in edits}):
        changes = seen[CHANGES[direction]]
        work = seen[TopicRole.WORK]
        spans: dict[str, list[float]] = {stage: [] for stage in STAGES}
        for edit in (e for e in edits if e["direction"] == direction):
            value = edit["value"]
            if value in changes:
                spans["edit_to_change"].append(max(0.0, changes[value] - edit["source_at"]))
                if value in work:
                    spans["change_to_work"].append(max(0.0, work[value] - changes[value]))
            if value in work and value in landed:
                spans["work_to_write"].append(max(0.0, landed[value][0] - work[value]))
        out[direction] = {stage: _percentiles(values) for stage, values in spans.items()}
    return out


async def _run_json(args: list[str], limit_s: float) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), limit_s)
    if process.returncode != 0:
        raise RuntimeError(f"{args[0]} failed (exit {process.returncode}): {err.decode().strip()[-500:]}")
    result: dict[str, Any] = orjson.loads(out.decode().strip().splitlines()[-1])
    return result


def _percentiles(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": percentile(values, 50) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": max(values, default=0.0) * 1000,
    }


async def edit_plan(stack: Stack, pairs: list[list[str]]) -> Path:
    """The plan file `cdc.tools.bench.editgen` reads: both sandboxes and the linked pairs to edit."""
    plan = {
        "hubspot": stack.info["hubspot"]["base_url"],
        "dataverse": stack.info["dataverse"]["base_url"],
        "dataverse_ca": stack.info["dataverse"]["ca_bundle"],
        "pairs": pairs,
    }
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as plan_file:
        plan_file.write(orjson.dumps(plan))
    return Path(plan_file.name)


async def latency(
    stack: Stack, pairs: list[list[str]], rate: float, seconds: float, say: Say
) -> dict[str, Any]:
    """User edits at ``rate``/s on linked contacts, both sides; source change time -> audited write."""
    tag = f"lat{int(rate)}x{int(time.time() * 1000) % 10**7}"
    plan_file = await edit_plan(stack, pairs)
    start = await _ends(stack, TopicRole.AUDIT)
    starts = {
        role: await _ends(stack, role)
        for role in (TopicRole.CHANGES_HUBSPOT, TopicRole.CHANGES_DATAVERSE, TopicRole.WORK)
    }
    before = await stack.sync_counts()
    run = await _run_json(
        ["cdc.tools.bench.editgen", str(plan_file), str(rate), str(seconds), tag], seconds + 120
    )
    await asyncio.to_thread(plan_file.unlink)
    edits = run["edits"]
    found = await _landed(
        stack, start, {e["value"] for e in edits}, within=30 + 2 * stack.options.dataverse_interval_s
    )
    after = await stack.sync_counts()
    by_direction: dict[str, list[float]] = {}
    by_step: dict[str, list[float]] = {}
    for edit in edits:
        landed = found.get(edit["value"])
        if landed is None:
            continue
        seconds_taken = max(0.0, landed[0] - edit["source_at"])
        by_direction.setdefault(edit["direction"], []).append(seconds_taken)
        by_step.setdefault(landed[1], []).append(seconds_taken)
    missing = Counter(e["direction"] for e in edits if e["value"] not in found)
    result = {
        "target_per_s": rate,
        "achieved_per_s": run["achieved_per_s"],
        "edits": len(edits),
        "edit_statuses": run["statuses"],
        "landed": len(found),
        "missing": dict(missing),
        "by_direction": {d: _percentiles(v) for d, v in sorted(by_direction.items())},
        "by_step": {s: _percentiles(v) for s, v in sorted(by_step.items())},
        "by_stage": await _stages(stack, starts, edits, tag, found),
        "writes_failed": after.writes_failed - before.writes_failed,
    }
    parts = ", ".join(
        f"{d}: p50 {p['p50_ms']:.0f} ms p99 {p['p99_ms']:.0f} ms" for d, p in result["by_direction"].items()
    )
    say(
        f"    latency at {rate:,.0f}/s (achieved {run['achieved_per_s']:,.0f}/s): {parts}; "
        f"missing {dict(missing)}"
    )
    for direction, stages in result["by_stage"].items():
        spans = ", ".join(
            f"{stage} p50 {p['p50_ms']:.0f} ms p99 {p['p99_ms']:.0f} ms" for stage, p in stages.items()
        )
        say(f"      {direction} by stage: {spans}")
    return result


async def kafka_hop(stack: Stack, rate: float, seconds: float) -> dict[str, Any]:
    """The ceiling: raw produce -> consume on the same broker at the same rate (own process)."""
    topic = f"{stack.kafka.topic_prefix}bench.latency"
    admin = make_admin(stack.kafka)
    await admin.start()
    try:
        existing = await admin.list_topics()
        if topic not in existing:
            await admin.create_topics([NewTopic(topic, stack.kafka.partitions, 1)])
    finally:
        await admin.close()
    await asyncio.sleep(0.5)
    run = await _run_json(
        [
            "cdc.tools.bench.kafka_latency",
            stack.kafka.bootstrap_servers,
            topic,
            str(stack.kafka.partitions),
            str(rate),
            str(seconds),
        ],
        seconds + 120,
    )
    return _percentiles(run["latencies_s"])


# -- 3. replay -------------------------------------------------------------------------------------------


async def _committed(stack: Stack, group: str) -> dict[TopicPartition, int]:
    admin = make_admin(stack.kafka)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    finally:
        await admin.close()


async def _change_ends(stack: Stack) -> dict[TopicPartition, int]:
    ends: dict[TopicPartition, int] = {}
    for role in CHANGES_ROLES.values():
        ends.update(await _ends(stack, role))
    return ends


async def replay(
    stack: Stack, events: int, *, within: float, say: Say, profile: Path | None = None
) -> dict[str, Any]:
    """Stop sync, top the change topics up to ``events``, re-read them all with a fresh consumer group;
    with ``profile`` (a file), py-spy samples `cdc sync` from its start to the end of the replay."""
    await stack.stop("sync")
    generated = await _run_json(
        ["cdc.tools.bench.replaygen", stack.kafka.bootstrap_servers, stack.kafka.topic_prefix, str(events)],
        600,
    )
    await stack.reset_calls()
    ends = await _change_ends(stack)
    group = f"{stack.kafka.topic_prefix}replay{int(time.time())}-"
    started = time.monotonic()
    await stack.start_sync(group)
    ready_s = time.monotonic() - started
    pid = stack.processes["sync"].pid
    cpu_at_start = profiler.cpu_seconds(pid)
    spy = profiler.start(pid, within, profile) if profile is not None else None
    deadline = started + within
    progress, last_move, caught_up = -1, time.monotonic(), False
    while time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        route = await _committed(stack, f"{group}sync-route")
        apply = await _committed(stack, f"{group}sync-apply")
        moved = sum(route.values()) + sum(apply.values())
        if moved != progress:
            progress, last_move = moved, time.monotonic()
        # Transaction markers may sit after the last record: within one offset of the end is the end.
        routed_all = all(route.get(tp, 0) >= end - 1 for tp, end in ends.items())
        work_ends = await _ends(stack, TopicRole.WORK)
        applied_all = all(apply.get(tp, 0) >= end - 1 for tp, end in work_ends.items() if end > 0)
        if routed_all and applied_all and time.monotonic() - last_move >= QUIET_S:
            caught_up = True
            break
    # The rate counts from `cdc sync` answering /healthz (its link view loaded) to the last offset commit.
    wall = last_move - started - ready_s
    cpu_at_end = profiler.cpu_seconds(pid)
    cpu_s = cpu_at_end - cpu_at_start if cpu_at_start is not None and cpu_at_end is not None else None
    sampled = None
    if spy is not None and profile is not None:
        profiler.stop(spy)
        sampled = await asyncio.to_thread(profiler.finish, spy, profile)
    await asyncio.sleep(1.0)
    calls = await stack.calls()
    counts = await stack.sync_counts()
    write_calls = {
        f"{system} {endpoint}": n
        for system, snap in calls.items()
        for endpoint, n in snap["by_endpoint"].items()
        if _is_write(endpoint)
    }
    result = {
        "completed": caught_up,
        "events": generated["after"],
        "events_generated": generated["added"],
        "records": generated["records"],
        "wall_s": wall,
        "startup_s": ready_s,
        "events_per_s": generated["after"] / wall if wall > 0 else 0.0,
        "sync_cpu_s": cpu_s,
        "events_per_cpu_s": generated["after"] / cpu_s if cpu_s else None,
        "api_write_calls": sum(write_calls.values()),
        "api_write_calls_by_endpoint": write_calls,
        "sync_writes": counts.writes_ok + counts.writes_failed,
        "api_calls": calls_per_record(calls, generated["after"]),
    }
    if sampled is not None:
        result["profile"] = sampled
    say(
        f"    replay: {result['events']:,} events in {wall:.1f}s ({result['events_per_s']:,.0f}/s), "
        f"{result['api_write_calls']} API writes" + ("" if caught_up else "  ** did not catch up **")
    )
    return result


# -- 4. rate-limited --------------------------------------------------------------------------------------


SYNC_REPLICAS = ("sync", "sync2")
TIGHT_HUBSPOT_LIMITS: dict[str, Any] = {**REAL_HUBSPOT_LIMITS, "burst": 19, "search_per_second": 1}
"""A tenth of the real burst limit: there the budget, not the pipeline, bounds the throughput."""


def budget_env(limits: dict[str, Any]) -> dict[str, str]:
    """The daemon's HubSpot budget as the sandbox's ``limits`` (``hubspot.limits``)."""
    return {
        "CDC_HUBSPOT__LIMITS__BURST": str(limits["burst"]),
        "CDC_HUBSPOT__LIMITS__WINDOW_S": str(limits["window_ms"] / 1000),
        "CDC_HUBSPOT__LIMITS__DAILY": str(limits["daily"]),
        "CDC_HUBSPOT__LIMITS__SEARCH_PER_SECOND": str(limits["search_per_second"]),
    }


REAL_BUDGET = budget_env(REAL_HUBSPOT_LIMITS)
BUDGET_OFF = {**REAL_BUDGET, "CDC_BUDGET__ENABLED": "false"}
"""The baseline: no budget, each call sent at once and only the 429s' retries slowing it (the old code)."""
SETTLE_S = 5.0
"""After the replicas start: the group's rebalance, and the budget board's first reports."""
WRITE_PATHS = ("/batch/create", "/batch/update", "/batch/upsert", "/batch/archive")


def call_kind(endpoint: str) -> str:
    """A HubSpot endpoint label (``POST /crm/objects/2026-09/contacts/batch/create``) as a kind of call."""
    if endpoint.endswith("/search"):
        return "lookup"
    if "association" in endpoint:
        return "association"
    if endpoint.endswith(WRITE_PATHS) or endpoint.startswith(("PATCH", "PUT", "DELETE")):
        return "write"
    return "read"


def budget_ceiling(
    by_endpoint: dict[str, int], records: int, limits: dict[str, Any] = REAL_HUBSPOT_LIMITS
) -> tuple[dict[str, float], float]:
    """Calls per record by kind, and the records/s HubSpot's limits allow for them: the burst window
    (190 per 10 s) for everything but search, search's own 5 per second for the lookups."""
    per_kind: dict[str, float] = {}
    for endpoint, n in by_endpoint.items():
        kind = call_kind(endpoint)
        per_kind[kind] = per_kind.get(kind, 0.0) + n / max(records, 1)
    burst_per_s = limits["burst"] / (limits["window_ms"] / 1000)
    burst_calls = sum(n for kind, n in per_kind.items() if kind != "lookup")
    ceilings = [burst_per_s / burst_calls] if burst_calls else []
    if per_kind.get("lookup"):
        ceilings.append(limits["search_per_second"] / per_kind["lookup"])
    return per_kind, min(ceilings) if ceilings else 0.0


async def _restart(stack: Stack, env: dict[str, str]) -> None:
    """Both sync replicas and the poller, started afresh with ``env``."""
    for role in ("poll", *reversed(SYNC_REPLICAS)):
        await stack.stop(role)
    await stack.start_sync(stack.group_prefix or f"{stack.kafka.topic_prefix}rl-", env)
    await stack.start_sync_replica("sync2", env)
    await stack.start("poll", env)
    await asyncio.sleep(SETTLE_S)


async def _budget_waits(stack: Stack) -> dict[str, float]:
    """HubSpot calls that waited for budget, and how long in all, over the sync replicas and the poller."""
    totals = {"calls": 0.0, "waited_s": 0.0}
    async with httpx.AsyncClient(timeout=10) as client:
        for role in (*SYNC_REPLICAS, "poll"):
            text = (await client.get(f"http://127.0.0.1:{stack.ports[role]}/metrics")).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.labels.get("system") != "hubspot":
                        continue
                    if sample.name == "cdc_api_budget_wait_seconds_count":
                        totals["calls"] += sample.value
                    elif sample.name == "cdc_api_budget_wait_seconds_sum":
                        totals["waited_s"] += sample.value
    return totals


async def _rate_limited_pass(
    stack: Stack,
    records: int,
    tag: str,
    *,
    within: float,
    env: dict[str, str],
    limits: dict[str, Any] = REAL_HUBSPOT_LIMITS,
) -> dict[str, Any]:
    await _restart(stack, env)
    await stack.hubspot_limits(limits)  # the counters start empty
    await stack.reset_calls()
    before = await stack.sync_counts()
    rows = [{"emailaddress1": _email(n, tag), "lastname": f"R{n}"} for n in range(records)]
    started = time.monotonic()
    for start in range(0, len(rows), SEED_CHUNK):
        answer = await stack.dv.post(
            "/_admin/tables/contact/rows", json={"rows": rows[start : start + SEED_CHUNK]}
        )
        answer.raise_for_status()
    goal = before.creates("hubspot", "contact") + records

    def done(counts: SyncCounts) -> bool:
        return counts.creates("hubspot", "contact") >= goal

    completed, last, counts = await until_quiet(stack, done, within=within)
    wall = last - started
    hs = (await stack.calls())["hubspot"]
    per_kind, ceiling = budget_ceiling(hs["by_endpoint"], records, limits)
    waits = await _budget_waits(stack)
    achieved = records / wall if wall > 0 else 0.0
    return {
        "completed": completed,
        "records": records,
        "created": counts.creates("hubspot", "contact") - before.creates("hubspot", "contact"),
        "wall_s": wall,
        "records_per_s": achieved,
        "calls_per_record_by_kind": per_kind,
        "ceiling_records_per_s": ceiling,
        "fraction_of_ceiling": achieved / ceiling if ceiling else 0.0,
        "hubspot_calls": hs["total"],
        "hubspot_429s": hs["by_status"].get("429", 0),
        "hubspot_calls_by_endpoint": hs["by_endpoint"],
        "failed_writes": counts.writes_failed - before.writes_failed,
        "deadletters": counts.deadletters - before.deadletters,
        "limits": limits,
        "budget_waits": waits,
    }


async def rate_limited(stack: Stack, records: int, *, within: float, say: Say) -> dict[str, Any]:
    """HubSpot at its real limits; ``records`` new Dataverse contacts must all reach HubSpot, written by two
    `cdc sync` replicas beside `cdc poll`, all sharing the API budget (`cdc.budget`); then as many again
    with the budget off (the baseline: only 429s slow the calls down), in the same run.

    The ceiling is what 190 calls per 10 s (and search's 5 per second) allow for the calls each record
    needed in that pass, by kind (read, lookup, association, write)."""
    result = await _rate_limited_pass(stack, records, "rl", within=within, env=REAL_BUDGET)
    baseline = await _rate_limited_pass(stack, records, "rb", within=within, env=BUDGET_OFF)
    tight = await _rate_limited_pass(
        stack, records, "rt", within=within, env=budget_env(TIGHT_HUBSPOT_LIMITS), limits=TIGHT_HUBSPOT_LIMITS
    )
    await stack.hubspot_limits({"burst": None, "daily": None, "search_per_second": None})
    result["baseline_budget_off"] = baseline
    result["budget_bound"] = tight
    result["replicas"] = len(SYNC_REPLICAS)
    for name, row in (("budget", result), ("no budget", baseline), ("budget, 19/10 s", tight)):
        kinds = ", ".join(f"{k} {v:.3f}" for k, v in sorted(row["calls_per_record_by_kind"].items()))
        say(
            f"    rate-limited, {name}: {records:,} records in {row['wall_s']:.1f}s = "
            f"{row['records_per_s']:,.0f}/s ({row['fraction_of_ceiling']:.0%} of "
            f"{row['ceiling_records_per_s']:,.0f}/s for calls/record {kinds}), {row['hubspot_429s']} 429s, "
            f"{row['failed_writes']} failed, {row['budget_waits']['waited_s']:.1f} s waited for budget"
            + ("" if row["completed"] else "  ** did not complete **")
        )
    return result
