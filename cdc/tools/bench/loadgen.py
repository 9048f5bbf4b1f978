"""The webhook load generator, run in its own process: signed batches at a target rate, latencies out.

``python -m cdc.tools.bench.loadgen URL SECRET RATE SECONDS`` posts batches of 100 HubSpot events (v1 + v3
signed, as HubSpot sends them) at RATE events/s for SECONDS, with up to 64 requests in flight, then prints
one JSON line: events sent, events accepted, statuses, wall time and per-request answer times.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter

import aiohttp
import orjson

from cdc.sandbox.hubspot.webhooks import sign_request

BATCH = 100
MAX_IN_FLIGHT = 64
PORTAL_ID = 62515


def batch_body(seq: int) -> bytes:
    base = seq * BATCH
    return orjson.dumps(
        [
            {
                "eventId": base + n,
                "subscriptionId": 1,
                "portalId": PORTAL_ID,
                "appId": 1160452,
                "occurredAt": int(time.time() * 1000),
                "subscriptionType": "contact.propertyChange",
                "attemptNumber": 0,
                "objectId": 10_000_000 + (base + n) % 50_000,
                "propertyName": "firstname",
                "propertyValue": f"name-{base + n}",
                "changeSource": "CRM_UI",
                "sourceId": "userId:1",
            }
            for n in range(BATCH)
        ]
    )


async def run(url: str, secret: str, rate: float, seconds: float) -> dict[str, object]:
    batches = max(1, int(rate * seconds / BATCH))
    interval = BATCH / rate
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(seq: int) -> None:
            body = batch_body(seq)
            headers = {
                "Content-Type": "application/json",
                **sign_request(secret, url, body, int(time.time() * 1000)),
            }
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1
            except aiohttp.ClientError:
                statuses[0] += 1
            finally:
                latencies.append(time.perf_counter() - started)
                gate.release()

        started = time.perf_counter()
        async with asyncio.TaskGroup() as tasks:
            for seq in range(batches):
                due = started + seq * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await gate.acquire()
                tasks.create_task(post(seq))
        wall = time.perf_counter() - started
    return {
        "events_sent": batches * BATCH,
        "events_accepted": statuses[200] * BATCH,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wall_s": wall,
        "latencies_s": latencies,
    }


def main() -> None:
    url, secret, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    sys.stdout.write(orjson.dumps(asyncio.run(run(url, secret, rate, seconds))).decode() + "\n")


if __name__ == "__main__":
    main()
