"""One sync replica's link view, in a process of its own, for `cdc bench links`: start, load the `links`
topic (into memory, or into the disk store of a state directory), time lookups, print one JSON line, then
stop cleanly, or wait to be killed (``--hang``). Its own process so that its memory is its own.

    python -m cdc.tools.bench._links_replica '<json arguments>'
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from streams.config import KafkaSettings
from streams.link_db import LinkStore
from streams.link_view import LinkView
from streams.topics import TopicCatalog, TopicRole

STARTED = time.monotonic()
LOOKUPS = 5_000


def memory_mib() -> dict[str, float]:
    """Resident memory now and at its peak (``VmRSS``, ``VmHWM``), MiB."""
    found: dict[str, float] = {}
    with Path("/proc/self/status").open() as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mib": found.get("VmRSS", 0.0), "peak_rss_mib": found.get("VmHWM", 0.0)}


async def replica(args: dict[str, Any]) -> dict[str, Any]:
    kafka = KafkaSettings.model_validate(args["kafka"])
    catalog = TopicCatalog.from_settings(kafka)
    store = None
    if args.get("state_dir"):
        store = LinkStore.open(
            Path(args["state_dir"]), topic=catalog.name(TopicRole.LINKS), cluster_id=args["cluster_id"]
        )
    view = LinkView(kafka, catalog, store)
    loaded = await view.load()
    await view.close()
    ready_s = time.monotonic() - STARTED
    count = int(args["count"])
    pick = random.Random(7)  # noqa: S311 -- which links to look up, not a secret
    latencies = []
    misses = 0
    for _ in range(LOOKUPS):
        key = f"hubspot/1/contact/{10**9 + pick.randrange(count)}"
        started = time.perf_counter()
        found = view.index.find(key)
        latencies.append((time.perf_counter() - started) * 1e6)
        misses += found is None
    latencies.sort()
    result = {
        "links": loaded.links,
        "records_read": loaded.records,
        "rebuilt": loaded.rebuilt,
        "load_s": round(loaded.seconds, 2),
        "ready_s": round(ready_s, 2),
        **memory_mib(),
        "lookup_p50_us": round(latencies[len(latencies) // 2], 1),
        "lookup_p99_us": round(latencies[int(len(latencies) * 0.99)], 1),
        "lookup_misses": misses,
    }
    if store is not None:
        result["file_mib"] = round(sum(f.stat().st_size for f in store.path.parent.glob("*")) / 2**20, 1)
    print(orjson.dumps(result).decode(), flush=True)
    if args.get("hang"):
        await asyncio.sleep(3600)  # killed here: the file is neither checkpointed nor closed
    if store is not None:
        store.close()
    return result


if __name__ == "__main__":
    asyncio.run(replica(orjson.loads(sys.argv[1])))
