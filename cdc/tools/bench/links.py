"""`cdc bench links`: how long the sync stage takes to rebuild its link view, and the memory it holds.

Produces N synthetic links (``fields`` fingerprinted fields per side: the default configuration tracks
about 75 on contacts) to a fresh topic prefix, then times `streams.link_view.LinkView.load` and measures
the process's resident memory before and after.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streams.admin import ensure_topics, open_admin
from streams.clients import make_producer
from streams.config import KafkaSettings
from streams.keys import SourceSystem
from streams.link_view import LinkView
from streams.links import LINK_CODEC, FieldSync, Link, LinkSide, fingerprint, link_key
from streams.topics import TopicCatalog, TopicRole

__all__ = ["run_links_bench"]


def _rss_mib() -> float:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _link(n: int, fields: dict[str, FieldSync], now: datetime) -> Link:
    return Link(
        link_id=f"{n:032x}",
        hubspot=LinkSide(
            system=SourceSystem.HUBSPOT,
            tenant="1",
            object_type="contact",
            object_id=str(10**9 + n),
            fields=fields,
        ),
        dataverse=LinkSide(
            system=SourceSystem.DATAVERSE,
            tenant="org.example",
            object_type="contact",
            object_id=f"00000000-0000-0000-0000-{n:012d}",
            fields=fields,
            version=f'W/"{n}"',
        ),
        created_at=now,
        updated_at=now,
    )


async def run_links_bench(
    kafka: KafkaSettings, *, counts: list[int], fields: int, out_dir: Path, progress: Any = print
) -> dict[str, Any]:
    """Produce and reload link views of each size; the result as JSON-ready data (also written to a file)."""
    rows: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    synced = {f"f{i}": FieldSync(fingerprint=fingerprint(f"value {i}"), synced_at=now) for i in range(fields)}
    for count in counts:
        settings = kafka.model_copy(update={"topic_prefix": f"bench-links-{uuid.uuid4().hex[:8]}."})
        catalog = TopicCatalog.from_settings(settings)
        async with open_admin(settings) as admin:
            await ensure_topics(admin, catalog)
        producer = make_producer(settings, linger_ms=50)
        await producer.start()
        started = time.monotonic()
        try:
            pending = []
            for n in range(count):
                link = _link(n, synced, now)
                pending.append(
                    await producer.send(
                        catalog.name(TopicRole.LINKS),
                        key=link_key(link.link_id).encode(),
                        value=LINK_CODEC.encode(link),
                    )
                )
                if len(pending) >= 20_000:  # noqa: PLR2004 -- bounded in-flight futures
                    await asyncio.gather(*pending)
                    pending = []
                    progress(f"links: produced {n + 1:,} of {count:,}")
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        produced_s = time.monotonic() - started
        gc.collect()
        before = _rss_mib()
        view = LinkView(settings, catalog)
        stats = await view.load()
        gc.collect()
        after = _rss_mib()
        probe = view.index.find(f"hubspot/1/contact/{10**9 + count // 2}")
        await view.close()
        row = {
            "links": stats.links,
            "fields_per_side": fields,
            "produce_s": round(produced_s, 2),
            "load_s": round(stats.seconds, 2),
            "links_per_s": round(stats.links / stats.seconds) if stats.seconds else None,
            "rss_delta_mib": round(after - before, 1),
            "bytes_per_link": round((after - before) * 1024 * 1024 / max(1, stats.links)),
            "lookup_ok": probe is not None,
        }
        progress(
            f"links: {row['links']:,} loaded in {row['load_s']} s ({row['links_per_s']:,}/s), "
            f"{row['rss_delta_mib']} MiB ({row['bytes_per_link']} B/link)"
        )
        rows.append(row)
        del view
    result = {"bench": "links", "at": now.isoformat(), "results": rows}
    result["path"] = str(_write(out_dir / f"links-{now.strftime('%Y%m%dT%H%M%SZ')}.json", result))
    return result


def _write(path: Path, result: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return path
