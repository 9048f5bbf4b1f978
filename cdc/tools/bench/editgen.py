"""The edit load generator for the latency scenario, run in its own process: user edits at a target rate.

``python -m cdc.tools.bench.editgen PLAN RATE SECONDS TAG`` reads PLAN (JSON: both sandboxes' base URLs, the
Dataverse CA bundle and the linked pairs ``[[hubspot_id, dataverse_id], ...]``), then edits linked
contacts as a user would, alternating sides, at RATE edits/s for SECONDS with up to 64 in flight:

- HubSpot: ``PATCH /_admin/objects/contacts/{id}`` setting ``jobtitle`` (mapped HubSpot -> Dataverse only);
- Dataverse: ``PATCH /_admin/tables/contact/rows/{id}`` setting ``telephone1`` (mapped Dataverse -> HubSpot
  only), so no edit ever meets a conflict rule and each one must land exactly once on the other side.

Every value is unique (``<TAG>-<n>``), so the write that carries it can be found. Each edit goes to the
next pair in turn, so a round touches a record twice only when it makes more edits than there are pairs.
The change time reported per edit is the source sandbox's own: the record's ``updatedAt`` (ms) for
HubSpot; for Dataverse, whose ``modifiedon`` has one-second resolution, the wall-clock moment the sandbox
answered the edit (it answers after committing it). Prints one JSON line: the edits, statuses, wall time.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections import Counter
from datetime import datetime
from typing import Any

import aiohttp
import orjson

MAX_IN_FLIGHT = 64
HS_FIELD = "jobtitle"
DV_FIELD = "telephone1"


async def run(plan: dict[str, Any], rate: float, seconds: float, tag: str) -> dict[str, Any]:
    pairs: list[list[str]] = plan["pairs"]
    total = max(1, int(rate * seconds))
    interval = 1 / rate
    edits: list[dict[str, Any]] = []
    statuses: Counter[int] = Counter()
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    tls = ssl.create_default_context(cafile=plan["dataverse_ca"])
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT * 2, ssl=tls)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def edit(n: int) -> None:
            hs_id, dv_id = pairs[n % len(pairs)]
            value = f"{tag}-{n}"
            from_hubspot = n % 2 == 0
            if from_hubspot:
                url = f"{plan['hubspot']}/_admin/objects/contacts/{hs_id}"
                body: dict[str, Any] = {"properties": {HS_FIELD: value}}
            else:
                url = f"{plan['dataverse']}/_admin/tables/contact/rows/{dv_id}"
                body = {DV_FIELD: value}
            try:
                async with session.patch(url, json=body) as response:
                    answer = await response.read()
                    acked = time.time()
                    statuses[response.status] += 1
                    if response.status != 200:  # noqa: PLR2004 -- both admin APIs answer 200 with the record
                        return
                    source_at = acked
                    if from_hubspot:
                        updated = orjson.loads(answer)["updatedAt"]
                        source_at = datetime.fromisoformat(updated).timestamp()
                    edits.append(
                        {
                            "direction": "hubspot_to_dataverse" if from_hubspot else "dataverse_to_hubspot",
                            "value": value,
                            "source_at": source_at,
                            "acked_at": acked,
                        }
                    )
            except aiohttp.ClientError:
                statuses[0] += 1
            finally:
                gate.release()

        started = time.perf_counter()
        async with asyncio.TaskGroup() as tasks:
            for n in range(total):
                delay = started + n * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await gate.acquire()
                tasks.create_task(edit(n))
        wall = time.perf_counter() - started
    return {
        "edits": edits,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wall_s": wall,
        "achieved_per_s": len(edits) / wall if wall else 0.0,
    }


def main() -> None:
    with open(sys.argv[1], "rb") as file:
        plan = orjson.loads(file.read())
    rate, seconds, tag = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    sys.stdout.write(orjson.dumps(asyncio.run(run(plan, rate, seconds, tag))).decode() + "\n")


if __name__ == "__main__":
    main()
