"""The peer beside us in `cdc bench sync`: the poll-and-upsert baseline (`cdc.tools.bench.peer`) on a stack of
its own, and the conflict probe that runs against both it and the daemon.

Per repeat, on a fresh sandbox (no `cdc sync` or `cdc poll` running; the peer is the only writer):

1. backfill: the same contacts as the daemon's backfill (no companies: the peer syncs contacts only), then
   one peer cycle from the beginning of time; its wall time, calls per record and duplicates;
2. latency: the same user edits as the daemon's latency scenario (`cdc.tools.bench.editgen`: HubSpot
   ``jobtitle``, Dataverse ``telephone1``, each value unique) for two intervals while the peer runs every
   ``interval_s``; change time -> the moment the peer's write was acknowledged; calls per edit landed;
3. :func:`probe`, also run on the daemon's own stack: what a user would find wrong afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from cdc.tools.bench import _scenarios as scenarios
from cdc.tools.bench._stack import RoleOptions, Stack, running_stack
from cdc.tools.bench.peer import OVERLAP_S, PeerCredentials, PeerSync
from cdc.tools.bench.stats import summary
from streams.config import KafkaSettings

Say = Callable[[str], None]
PROBE_RECORDS = 20
"""Records per kind of trouble the probe makes."""


def _writes_by_value(peer: PeerSync) -> dict[str, float]:
    """Every value the peer wrote -> when the first write carrying it was acknowledged."""
    out: dict[str, float] = {}
    for cycle in peer.cycles:
        for write in cycle.writes:
            for value in write.values.values():
                if isinstance(value, str):
                    out.setdefault(value, write.at)
    return out


async def _peer_latency(
    stack: Stack, peer: PeerSync, pairs: list[list[str]], rate: float, interval_s: float
) -> dict[str, Any]:
    tag = f"peer{int(rate)}x{int(time.time() * 1000) % 10**7}"
    plan_file = await scenarios.edit_plan(stack, pairs)
    await stack.reset_calls()
    stop = asyncio.Event()
    # Two intervals of edits, but no pair edited twice: a second edit of one field within a cycle
    # supersedes the first, which then never needs a write of its own (nor would the daemon write it).
    seconds = min(2 * interval_s, max(1.0, len(pairs) / rate))
    async with asyncio.TaskGroup() as tasks:
        runner = tasks.create_task(peer.run(interval_s, stop))
        run = await scenarios._run_json(
            ["cdc.tools.bench.editgen", str(plan_file), str(rate), str(seconds), tag], seconds + 120
        )
        edits = run["edits"]
        wanted = {e["value"] for e in edits}
        deadline = time.monotonic() + 3 * interval_s + 30
        while time.monotonic() < deadline and not wanted <= _writes_by_value(peer).keys():
            if runner.done():
                break
            await asyncio.sleep(0.5)
        stop.set()
    await asyncio.to_thread(plan_file.unlink)
    calls = await stack.calls()
    written = _writes_by_value(peer)
    by_direction: dict[str, list[float]] = {}
    for edit in edits:
        at = written.get(edit["value"])
        if at is not None:
            by_direction.setdefault(edit["direction"], []).append(max(0.0, at - edit["source_at"]))
    landed = sum(len(v) for v in by_direction.values())
    return {
        "target_per_s": rate,
        "interval_s": interval_s,
        "edits": len(edits),
        "landed": landed,
        "missing": dict(Counter(e["direction"] for e in edits if e["value"] not in written)),
        "by_direction": {d: scenarios._percentiles(v) for d, v in sorted(by_direction.items())},
        "api": scenarios.calls_per_record(calls, landed),
    }


# -- the probe: conflicts and duplicates, for the peer and the daemon alike -------------------------------


async def _hs_create(stack: Stack, properties: dict[str, str]) -> str:
    answer = await stack.hs.post("/_admin/objects/contacts", json={"properties": properties})
    answer.raise_for_status()
    return str(answer.json()["id"])


async def _dv_create(stack: Stack, row: dict[str, str]) -> str:
    answer = await stack.dv.post("/_admin/tables/contact/rows", json=row)
    answer.raise_for_status()
    return str(answer.json()["value"][0]["contactid"])


async def _edits(stack: Stack, pairs: list[list[str]], side: str, name: str, prefix: str) -> None:
    """A user's edit of ``name`` on ``side`` of each pair, the value ``<prefix>-<n>`` (short: Dataverse's
    ``telephone1`` holds 50 characters)."""
    for n, (hs_id, dv_id) in enumerate(pairs):
        if side == "hubspot":
            properties = {"properties": {name: f"{prefix}-{n}"}}
            answer = await stack.hs.patch(f"/_admin/objects/contacts/{hs_id}", json=properties)
        else:
            answer = await stack.dv.patch(
                f"/_admin/tables/contact/rows/{dv_id}", json={name: f"{prefix}-{n}"}
            )
        answer.raise_for_status()


async def probe(
    stack: Stack, pairs: list[list[str]], settle: Callable[[], Awaitable[None]]
) -> dict[str, Any]:
    """Edits a user makes between two polls, then ``settle()``; what is wrong afterwards.

    - ``created_both_sides``: a new contact created in both CRMs before either was synced, the email in
      another case on each side (Dataverse's and HubSpot's email match is case-insensitive): any second
      record for one email is a duplicate;
    - ``different_fields``: HubSpot ``jobtitle`` then, 0.5 s later, Dataverse ``telephone1`` of one linked
      pair (fields mapped one way each): both must arrive; one that does not is a lost update;
    - ``same_field``: ``lastname`` (mapped both ways) on Dataverse then, 0.3 s later, on HubSpot (and the
      other way round on other pairs): the later value must end on both sides; the older one on either side
      is a lost update (Dataverse's ``modifiedon`` has one-second resolution, so a poller comparing
      modification times cannot always tell which edit came last).
    """
    tag = f"pr{int(time.time() * 1000) % 10**7}"
    k = min(PROBE_RECORDS, len(pairs) // 3)
    diff, same_dv_first, same_hs_first = pairs[:k], pairs[k : 2 * k], pairs[2 * k : 3 * k]
    for i in range(PROBE_RECORDS):
        email = f"{tag}.new{i}@probe.example"
        await _hs_create(stack, {"email": email, "firstname": "New", "lastname": f"HS{i}"})
        await _dv_create(stack, {"emailaddress1": email.upper(), "firstname": "New", "lastname": f"HS{i}"})
    await _edits(stack, diff, "hubspot", "jobtitle", f"{tag}-job")
    await asyncio.sleep(0.5)
    await _edits(stack, diff, "dataverse", "telephone1", f"{tag}-tel")
    await _edits(stack, same_dv_first, "dataverse", "lastname", f"{tag}-o1")
    await _edits(stack, same_hs_first, "hubspot", "lastname", f"{tag}-o2")
    await asyncio.sleep(0.3)
    await _edits(stack, same_dv_first, "hubspot", "lastname", f"{tag}-n1")
    await _edits(stack, same_hs_first, "dataverse", "lastname", f"{tag}-n2")
    await settle()
    hs = {str(r["id"]): r["properties"] for r in await stack.hs_all("contacts")}
    dv = {str(r["contactid"]): r for r in await stack.dv_all("contact")}
    hs_emails = ((p.get("email") or "").lower() for p in hs.values())
    dv_emails = ((r.get("emailaddress1") or "").lower() for r in dv.values())
    new_hs = Counter(e for e in hs_emails if e.startswith(f"{tag}.new"))
    new_dv = Counter(e for e in dv_emails if e.startswith(f"{tag}.new"))
    lost_diff = sum(
        (hs[h].get("jobtitle") != dv[d].get("jobtitle")) + (hs[h].get("phone") != dv[d].get("telephone1"))
        for h, d in diff
    )
    lost_same = 0
    for (h, d), newer in [
        *((p, f"{tag}-n1-{n}") for n, p in enumerate(same_dv_first)),
        *((p, f"{tag}-n2-{n}") for n, p in enumerate(same_hs_first)),
    ]:
        lost_same += (hs[h].get("lastname") != newer) + (dv[d].get("lastname") != newer)
    return {
        "created_both_sides": PROBE_RECORDS,
        "duplicates": sum(n - 1 for n in (*new_hs.values(), *new_dv.values()) if n > 1),
        "unsynced_creates": sum(1 for e in new_hs.keys() ^ new_dv.keys()),
        "different_fields_pairs": len(diff),
        "lost_updates_different_fields": int(lost_diff),
        "same_field_pairs": len(same_dv_first) + len(same_hs_first),
        "lost_updates_same_field": int(lost_same),
    }


# -- the peer's run --------------------------------------------------------------------------------------


async def peer_run(
    kafka: KafkaSettings, options: RoleOptions, logs: Path, *, contacts: int, rate: float,
    interval_s: float, say: Say,
) -> dict[str, Any]:  # fmt: skip
    """The peer on a fresh stack: backfill, latency, probe (module docstring)."""
    async with running_stack(kafka, options, logs) as stack:
        await scenarios.seed(stack, contacts, 0, "p")
        peer = PeerSync(PeerCredentials.from_sandbox(stack.info), since=0.0)
        try:
            await stack.reset_calls()
            started = time.monotonic()
            first = await peer.cycle()
            wall = time.monotonic() - started
            calls = await stack.calls()
            seen = await scenarios.census(stack)
            records = len(seen["pairs"])
            backfill = {
                "wall_s": wall,
                "records_synced": records,
                "records_per_s": records / wall if wall else 0.0,
                "writes": len(first.writes),
                "api": scenarios.calls_per_record(calls, records),
                "duplicates": seen["duplicates"]["hubspot contact"] + seen["duplicates"]["dataverse contact"],
            }
            say(
                f"    peer backfill: {records:,} contacts in {wall:.1f}s, "
                f"{backfill['api']['calls_per_record']:.3f} calls/record, {backfill['duplicates']} duplicates"
            )
            # The latency edits start once the backfill's own writes have left the peer's look-back window
            # (OVERLAP_S): a record the backfill created on one side a moment before a user edits its other
            # side is "changed on both sides", and with Dataverse's one-second modifiedon the older change
            # can win, so the edit waits for, or under load misses, the cycle that would carry it. That is
            # a conflict the probe measures, not the latency of a quiet edit (a CI run once counted 2 such).
            await asyncio.sleep(OVERLAP_S + 1.0)
            peer.cursor = time.time()
            latency = await _peer_latency(stack, peer, seen["pairs"], rate, interval_s)
            parts = ", ".join(
                f"{d}: p50 {p['p50_ms'] / 1000:.1f} s p99 {p['p99_ms'] / 1000:.1f} s"
                for d, p in latency["by_direction"].items()
            )
            missing = latency["missing"]
            say(f"    peer latency at {rate:,.0f}/s, every {interval_s:g} s: {parts}; missing {missing}")
            await peer.cycle()  # a quiet start: the probe's edits fall between two polls

            async def two_cycles() -> None:
                await peer.cycle()
                await peer.cycle()  # the second sees the first's own writes come back

            found = await probe(stack, seen["pairs"], two_cycles)
            say(f"    peer probe: {found}")
        finally:
            await peer.aclose()
    return {"interval_s": interval_s, "backfill": backfill, "latency": latency, "probe": found}


async def daemon_probe(stack: Stack, pairs: list[list[str]], say: Say) -> dict[str, Any]:
    """The probe on the daemon's stack (sync and poll running): settled when no write came for a while."""

    async def quiet() -> None:
        await scenarios.until_quiet(stack, lambda _: True, within=120, quiet_s=2 * scenarios.QUIET_S)

    found = await probe(stack, pairs, quiet)
    say(f"    daemon probe: {found}")
    return found


# -- summary and table (called by `cdc.tools.bench.sync`) -------------------------------------------------


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The peer's figures and both probes, median (min-max) over the repeats; counts summed."""
    s = _summary
    runs = [r["peer"] for r in rounds]
    directions = sorted({d for run in runs for d in run["latency"]["by_direction"]})
    return {
        "interval_s": runs[0]["interval_s"] if runs else 0.0,
        "backfill": {
            "wall_s": s(run["backfill"]["wall_s"] for run in runs),
            "records_per_s": s(run["backfill"]["records_per_s"] for run in runs),
            "calls_per_record": s(run["backfill"]["api"]["calls_per_record"] for run in runs),
            "duplicates": sum(run["backfill"]["duplicates"] for run in runs),
        },
        "latency": {
            "by_direction": {
                d: {
                    q: s(run["latency"]["by_direction"].get(d, {}).get(q) for run in runs)
                    for q in ("p50_ms", "p99_ms")
                }
                for d in directions
            },
            "calls_per_record": s(run["latency"]["api"]["calls_per_record"] for run in runs),
            "missing": sum(sum(run["latency"]["missing"].values()) for run in runs),
        },
        "probe": {
            "daemon": {key: sum(r["daemon_probe"][key] for r in rounds) for key in PROBE_KEYS},
            "peer": {key: sum(run["probe"][key] for run in runs) for key in PROBE_KEYS},
        },
    }


PROBE_KEYS = (
    "created_both_sides",
    "duplicates",
    "unsynced_creates",
    "different_fields_pairs",
    "lost_updates_different_fields",
    "same_field_pairs",
    "lost_updates_same_field",
)


def _summary(values: Iterable[Any]) -> dict[str, Any]:
    return summary([float(v) for v in values if isinstance(v, int | float)])


def table(peer: dict[str, Any], daemon_latency: dict[str, Any]) -> list[str]:
    """The peer's lines beside ours: latency, calls per record, duplicates, lost updates."""

    def m(x: dict[str, Any], scale: float = 1.0, fmt: str = ",.1f") -> str:
        return f"{x['median'] / scale:{fmt}} ({x['min'] / scale:{fmt}}-{x['max'] / scale:{fmt}})"

    b, lat = peer["backfill"], peer["latency"]
    lines = [
        "",
        f"peer baseline: poll-and-upsert every {peer['interval_s']:g} s (cdc.tools.bench.peer), "
        "contacts only",
        f"  backfill: {m(b['wall_s'])} s, {m(b['records_per_s'], fmt=',.0f')} records/s, "
        f"{m(b['calls_per_record'], fmt='.3f')} calls/record, {b['duplicates']} duplicates",
        f"  latency (s){'p50':>28}{'p99':>19}; calls/record {m(lat['calls_per_record'], fmt='.2f')}, "
        f"missing {lat['missing']}",
    ]
    for direction, q in lat["by_direction"].items():
        ours = daemon_latency.get(direction)
        mine = f"  {direction:<24} {m(q['p50_ms'], 1000):>18} {m(q['p99_ms'], 1000):>18}"
        if ours:
            p50, p99 = ours["p50_ms"]["median"] / 1000, ours["p99_ms"]["median"] / 1000
            mine += f"   (ours: p50 {p50:.2f} s, p99 {p99:.2f} s)"
        lines.append(mine)
    lines.append("  probe (edits between two polls)   daemon   peer")
    probe = peer["probe"]
    for key in PROBE_KEYS:
        row = [str(probe.get(who, {}).get(key, "-")) for who in ("daemon", "peer")]
        lines.append(f"    {key:<32} {row[0]:>6} {row[1]:>6}")
    return lines
