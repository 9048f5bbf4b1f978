"""Chaos: random two-sided edits while faults are injected, then the invariants once the faults stop.

Faults: sandbox 429 and 5xx on both CRMs, webhook duplicates, reorders and drops (the reconciler must
catch what is dropped), three sync replicas (two are `cdc sync` processes) with one killed by SIGKILL
mid-flight and restarted, a Dataverse delta-token expiry (7-day expiry, clock moved 8 days).

Invariants after quiescence: both sides hold equal values for every two-way mapped field of every pair;
each value is the last one written on one side (no lost update lets an older value win); no duplicate
record by email on either side; no writes once quiet (no ping-pong).

The short form runs in the default suite; ``CHAOS_LONG=1`` runs the long one (more pairs, edits, kills).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cdc.devkafka.runner import LocalKafka
from streams.config import KafkaSettings
from tests.integration.sync_stack import Stack, eventually, running_stack, small_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.chaos]

LONG = os.environ.get("CHAOS_LONG") == "1"
PAIRS = 40 if LONG else 10
EDITS = 2000 if LONG else 200
KILLS = 6 if LONG else 1
FIELDS = [("firstname", "firstname"), ("lastname", "lastname"), ("city", "address1_city")]


@pytest.fixture(autouse=True)
def _no_stray_cdc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("CDC_")]:
        monkeypatch.delenv(name)


async def set_faults(stack: Stack, *, on: bool) -> None:
    api = {"error_rate": 0.05, "throttle_rate": 0.05} if on else {"error_rate": 0.0, "throttle_rate": 0.0}
    hooks = (
        {"webhook_duplicate_rate": 0.2, "webhook_drop_rate": 0.1, "webhook_reorder": True}
        if on
        else {"webhook_duplicate_rate": 0.0, "webhook_drop_rate": 0.0, "webhook_reorder": False}
    )
    assert (await stack.hs.put("/_admin/faults", json={**api, **hooks})).status_code == 200
    assert (await stack.dv.put("/_admin/faults", json=api)).status_code == 200


async def test_two_sided_edits_under_faults_converge_without_loss_duplicates_or_ping_pong(
    kafka_settings: Any,
) -> None:
    rng = random.Random(11)  # noqa: S311 -- reproducible edits, not secrets
    started = time.monotonic()
    faults = Counter[str]()
    async with running_stack(kafka_settings, small_config(), reconcile=("contacts",)) as stack:
        hs_ids = [
            await stack.hs_create("contacts", {"email": f"chaos{n}@example.com", "firstname": f"F{n}"})
            for n in range(PAIRS)
        ]

        async def all_linked() -> list[dict[str, Any]] | None:
            rows = [
                r for r in await stack.dv_all("contact") if (r.get("emailaddress1") or "").startswith("chaos")
            ]
            return rows if len(rows) == PAIRS else None

        dv_ids = {r["emailaddress1"]: r["contactid"] for r in await eventually(all_linked, within=90)}
        await stack.dv.put("/_admin/change-tracking", json={"expiry_days": 7})
        for _ in range(2):
            await stack.add_replica()  # three sync replicas share the groups (two are real processes)
        await set_faults(stack, on=True)
        faults["api_and_webhook_fault_windows"] += 1

        last: dict[tuple[int, str, str], str] = {}  # (pair, field, side) -> last value written there

        created: list[str] = []

        async def edit(n: int) -> None:
            if n % 20 == 7:  # every 20th change is a new contact, on either side
                email = f"fresh{n}@example.com"
                created.append(email)
                if rng.random() < 0.5:
                    await stack.hs_create("contacts", {"email": email, "firstname": f"N{n}"})
                else:
                    await stack.dv_create("contact", {"emailaddress1": email, "lastname": f"N{n}"})
                return
            k = rng.randrange(PAIRS)
            hs_field, dv_field = rng.choice(FIELDS)
            value = f"e{n}"
            if rng.random() < 0.5:
                await stack.hs_update("contacts", hs_ids[k], {hs_field: value})
                last[(k, hs_field, "hubspot")] = value
            else:
                await stack.dv_update("contact", dv_ids[f"chaos{k}@example.com"], {dv_field: value})
                last[(k, hs_field, "dataverse")] = value

        kill_at = {EDITS * (i + 1) // (KILLS + 1) for i in range(KILLS)}
        expire_at = EDITS // 2
        for start in range(0, EDITS, 10):
            await asyncio.gather(*(edit(n) for n in range(start, start + 10)))
            if any(start <= k < start + 10 for k in kill_at):
                await stack.kill_replica(rng.randrange(2))
                faults["sync_replica_killed"] += 1
            if start <= expire_at < start + 10:
                # Eight days later: the delta links have expired (the poller answers with a full pass).
                await stack.dv.post("/_admin/clock/advance", json={"seconds": 8 * 24 * 3600})
                faults["delta_token_expiry"] += 1
        await set_faults(stack, on=False)

        # Quiet for longer than a killed replica's session timeout (10 s) plus the rebalance: until then its
        # partitions wait for a new owner, and their changes land late (late is not ping-pong).
        writes = await quiet_calls(stack, for_s=15.0, within=240)
        await asyncio.sleep(3.0)
        assert await stack.write_calls() == writes, "writes continued after the edits stopped (ping-pong)"

        violations = await check_invariants(stack, last)
        violations += await check_created_once(stack, created)
        elapsed = time.monotonic() - started
        print(
            f"\nchaos: {EDITS} changes on {PAIRS} pairs ({len(created)} new contacts), "
            f"faults {dict(faults)}, violations {len(violations)}, writes {int(writes)}, {elapsed:.0f}s"
        )
        assert violations == []


async def quiet_calls(stack: Stack, *, for_s: float, within: float) -> int:
    """Wait until neither sandbox has seen a write for ``for_s`` seconds (replicas run out of process)."""
    deadline = time.monotonic() + within
    count, since = await stack.write_calls(), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = await stack.write_calls()
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= for_s:
            return count
    raise AssertionError(f"sync never went quiet: still writing after {within}s")


async def check_created_once(stack: Stack, emails: list[str]) -> list[Any]:
    """Every contact created during the chaos exists exactly once on each side."""
    hs = Counter((r["properties"].get("email") or "").lower() for r in await stack.hs_all("contacts"))
    dv = Counter((r.get("emailaddress1") or "").lower() for r in await stack.dv_all("contact"))
    return [(email, hs[email], dv[email]) for email in emails if (hs[email], dv[email]) != (1, 1)]


async def check_invariants(
    stack: Stack, last: dict[tuple[int, str, str], str], *, prefix: str = "chaos"
) -> list[Any]:
    """No duplicate by email on either side; per pair and two-way field, equal values that are the last
    value written on one of the sides."""
    hs_rows = [r["properties"] for r in await stack.hs_all("contacts")]
    dv_rows = [r for r in await stack.dv_all("contact") if (r.get("emailaddress1") or "").startswith(prefix)]
    hs_by_email = Counter((r.get("email") or "").lower() for r in hs_rows)
    dv_by_email = Counter((r.get("emailaddress1") or "").lower() for r in dv_rows)
    assert [e for e, n in hs_by_email.items() if e.startswith(prefix) and n > 1] == []
    assert [e for e, n in dv_by_email.items() if n > 1] == []
    hs_of = {(r.get("email") or "").lower(): r for r in hs_rows}
    violations = []
    for row in dv_rows:
        email = row["emailaddress1"].lower()
        k = int(email.removeprefix(prefix).split("@")[0])
        for hs_field, dv_field in FIELDS:
            a, b = hs_of[email].get(hs_field) or None, row.get(dv_field) or None
            allowed = {last.get((k, hs_field, "hubspot")), last.get((k, hs_field, "dataverse"))} - {None}
            if a != b or (allowed and a not in allowed):
                violations.append((email, hs_field, a, b, sorted(v for v in allowed if v)))
    return violations


async def test_a_kafka_broker_restart_during_two_sided_edits_loses_nothing(tmp_path: Path) -> None:
    """The broker goes away for a few seconds mid-edits (data and ports kept) and comes back: ingest answers
    503 meanwhile (HubSpot retries), the poller and the sync stage retry and resume; nothing is lost."""
    rng = random.Random(5)  # noqa: S311 -- reproducible edits, not secrets
    broker = await asyncio.to_thread(LocalKafka(data_dir=tmp_path / "kafka").start)
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, topic_prefix="restart.", partitions=2)
    pairs = 6
    try:
        async with running_stack(kafka, small_config(), reconcile=("contacts",)) as stack:
            await stack.hs.put("/_admin/webhooks", json={"retry_base_seconds": 0.5})
            hs_ids = [
                await stack.hs_create("contacts", {"email": f"kr{n}@example.com", "firstname": f"K{n}"})
                for n in range(pairs)
            ]

            async def all_linked() -> list[dict[str, Any]] | None:
                rows = [
                    r
                    for r in await stack.dv_all("contact")
                    if (r.get("emailaddress1") or "").startswith("kr")
                ]
                return rows if len(rows) == pairs else None

            dv_ids = {r["emailaddress1"]: r["contactid"] for r in await eventually(all_linked, within=60)}
            last: dict[tuple[int, str, str], str] = {}

            async def edits(start: int, count: int) -> None:
                for n in range(start, start + count):
                    k = rng.randrange(pairs)
                    hs_field, dv_field = rng.choice(FIELDS)
                    value = f"k{n}"
                    if rng.random() < 0.5:
                        await stack.hs_update("contacts", hs_ids[k], {hs_field: value})
                        last[(k, hs_field, "hubspot")] = value
                    else:
                        await stack.dv_update("contact", dv_ids[f"kr{k}@example.com"], {dv_field: value})
                        last[(k, hs_field, "dataverse")] = value

            await edits(0, 20)
            await asyncio.to_thread(broker.stop)  # the outage
            await edits(20, 20)
            await asyncio.sleep(3)
            broker = await asyncio.to_thread(LocalKafka(data_dir=tmp_path / "kafka").start)
            await edits(40, 20)
            await quiet_calls(stack, for_s=8.0, within=240)
            violations = await check_invariants(stack, last, prefix="kr")
            print(f"\nkafka restart: 60 edits on {pairs} pairs, violations {len(violations)}")
            assert violations == []
    finally:
        await asyncio.to_thread(broker.stop)
