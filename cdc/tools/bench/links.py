"""`cdc bench links`: the sync replica's link view at N links: the disk store (`streams.link_db`) against
today's in-memory view (`streams.link_store.LinkIndex`) in the same run.

Produces N synthetic links (``fields`` fingerprinted fields per side: the default configuration tracks
about 75 on contacts) to a fresh topic prefix, then runs replicas (`_links_replica`, each a process of its
own so its memory is its own): the in-memory load (the baseline, up to ``baseline_max`` links); a cold
rebuild of the store; a restart after a clean stop; then, after ``tail`` more link updates, a replica
killed with SIGKILL once it applied them (its file neither checkpointed nor closed), and its restart.
Each reports its load time, the time from process start to ready, resident memory (now and peak), lookup
latency p50/p99 by record key, and the store's size on disk. Counts above one are projected to 10M links
along the line through the two largest.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.admin import cluster_id, ensure_topics, open_admin
from streams.clients import connection_options
from streams.config import KafkaSettings
from streams.keys import SourceSystem
from streams.links import LINK_CODEC, FieldSync, Link, LinkSide, fingerprint, link_key
from streams.topics import TopicCatalog, TopicRole

__all__ = ["run_links_bench"]

PROJECT_TO = 10_000_000


def _link(ids: tuple[str, str, str], fields: dict[str, FieldSync], now: datetime, revision: int) -> Link:
    link_id, hubspot_id, dataverse_id = ids
    return Link(
        link_id=link_id,
        hubspot=LinkSide(
            system=SourceSystem.HUBSPOT,
            tenant="1",
            object_type="contact",
            object_id=hubspot_id,
            fields=fields,
        ),
        dataverse=LinkSide(
            system=SourceSystem.DATAVERSE,
            tenant="org.example",
            object_type="contact",
            object_id=dataverse_id,
            fields=fields,
            version=f'W/"{hubspot_id}"',
        ),
        revision=revision,
        created_at=now,
        updated_at=now,
    )


SLOTS = (b"@link@", b"@hubspot@", b"@dataverse@")


def _links(numbers: Iterable[int], template: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of link ``n``: the template's slots filled (a link encoded by pydantic per record
    would make producing, not loading, the bench's bottleneck)."""
    for n in numbers:
        link_id = f"{n:032x}".encode()
        value = template.replace(SLOTS[0], link_id).replace(SLOTS[1], str(10**9 + n).encode())
        yield link_key(link_id.decode()).encode(), value.replace(SLOTS[2], f"{n:036d}".encode())


async def _produce(
    settings: KafkaSettings,
    catalog: TopicCatalog,
    links: Iterable[tuple[bytes, bytes]],
    total: int,
    progress: Any,
) -> float:
    # Batches of up to 1 MiB (the apply loop's producer keeps the default 16 KiB: one link a batch).
    producer = AIOKafkaProducer(
        **connection_options(settings),
        acks="all",
        compression_type=None if settings.compression == "none" else settings.compression,
        linger_ms=50,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
    )
    await producer.start()
    started = time.monotonic()
    try:
        pending = []
        for n, (key, value) in enumerate(links, 1):
            pending.append(await producer.send(catalog.name(TopicRole.LINKS), key=key, value=value))
            if len(pending) >= 20_000:  # noqa: PLR2004 -- bounded in-flight futures
                await asyncio.gather(*pending)
                pending = []
                progress(f"links: produced {n:,} of {total:,}")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def _replica(args: dict[str, Any], *, kill: bool = False) -> dict[str, Any]:
    """Run one replica to ready; its JSON line (killed with SIGKILL right after it, with ``kill``)."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cdc.tools.bench._links_replica",
        orjson.dumps({**args, "hang": kill}).decode(),
        stdout=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("CDC_")},
    )
    assert process.stdout is not None  # noqa: S101 -- asked for above
    line = await process.stdout.readline()
    wall = time.monotonic() - started
    if kill:
        process.send_signal(signal.SIGKILL)
    await process.wait()
    if not line:
        raise RuntimeError(f"link replica exited {process.returncode} without a result")
    return {**orjson.loads(line), "process_ready_s": round(wall, 2)}


async def run_links_bench(
    kafka: KafkaSettings,
    *,
    counts: list[int],
    fields: int,
    out_dir: Path,
    progress: Any = print,
    tail: int = 10_000,
    baseline_max: int = 1_000_000,
    state_dir: Path | None = None,
) -> dict[str, Any]:
    """Produce and load link views of each size; the result as JSON-ready data (also written to a file)."""
    rows: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    synced = {f"f{i}": FieldSync(fingerprint=fingerprint(f"value {i}"), synced_at=now) for i in range(fields)}
    slots = tuple(slot.decode() for slot in SLOTS)
    template = LINK_CODEC.encode(_link((slots[0], slots[1], slots[2]), synced, now, 1))
    updated = LINK_CODEC.encode(_link((slots[0], slots[1], slots[2]), synced, now, 2))
    cluster = await cluster_id(kafka)
    for count in counts:
        settings = kafka.model_copy(update={"topic_prefix": f"bench-links-{uuid.uuid4().hex[:8]}."})
        catalog = TopicCatalog.from_settings(settings)
        async with open_admin(settings) as admin:
            await ensure_topics(admin, catalog)
        produced_s = await _produce(settings, catalog, _links(range(count), template), count, progress)
        with tempfile.TemporaryDirectory(prefix="bench-links-", dir=state_dir) as directory:
            args = {"kafka": settings.model_dump(mode="json"), "count": count, "cluster_id": cluster}
            row: dict[str, Any] = {
                "links": count,
                "fields_per_side": fields,
                "produce_s": round(produced_s, 2),
            }
            if count <= baseline_max:
                progress(f"links: {count:,} into memory (the baseline)")
                row["memory"] = await _replica(args)
            disk = {**args, "state_dir": directory}
            progress(f"links: {count:,} cold rebuild of the disk store")
            row["disk_cold"] = await _replica(disk)
            progress(f"links: {count:,} restart after a clean stop")
            row["disk_restart_clean"] = await _replica(disk)
            spread = (n * (count // tail or 1) % count for n in range(tail))
            await _produce(settings, catalog, _links(spread, updated), tail, progress)
            progress(f"links: {count:,} {tail:,} updates applied, then SIGKILL")
            row["disk_killed"] = await _replica(disk, kill=True)
            progress(f"links: {count:,} restart after SIGKILL")
            row["disk_restart_killed"] = await _replica(disk)
        progress(f"links: {count:,}: " + orjson.dumps(row).decode())
        rows.append(row)
    result: dict[str, Any] = {"bench": "links", "at": now.isoformat(), "results": rows}
    result["projection"] = _projection(rows)
    result["path"] = str(_write(out_dir / f"links-{now.strftime('%Y%m%dT%H%M%SZ')}.json", result))
    return result


def _projection(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The disk store at 10M links, along the line through the two largest counts (load and size grow
    with the count; resident memory should not)."""
    if len(rows) < 2:  # noqa: PLR2004 -- a line needs two points
        return None
    small, large = sorted(rows, key=lambda r: r["links"])[-2:]
    projected: dict[str, Any] = {"links": PROJECT_TO, "from": [small["links"], large["links"]]}
    for scenario, figure in (
        ("disk_cold", "load_s"),
        ("disk_cold", "file_mib"),
        ("disk_cold", "rss_mib"),
        ("disk_restart_clean", "ready_s"),
    ):
        a, b = small[scenario][figure], large[scenario][figure]
        slope = (b - a) / (large["links"] - small["links"])
        projected[f"{scenario}.{figure}"] = round(b + slope * (PROJECT_TO - large["links"]), 1)
    return projected


def _write(path: Path, result: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return path
