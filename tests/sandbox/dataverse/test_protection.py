"""Service protection (fact sheet §4) and injected faults: 429 bodies and Retry-After."""

from __future__ import annotations

import asyncio

import httpx

from cdc.sandbox.dataverse import DataverseSandbox


async def test_request_limit_answers_429_with_retry_after(
    client: httpx.AsyncClient, sandbox: DataverseSandbox
) -> None:
    settings = await client.put("/_admin/protection", json={"requests_per_window": 3, "window_seconds": 300})
    assert settings.json()["requests_per_window"] == 3
    for _ in range(3):
        assert (await client.get("/api/data/v9.2/contacts")).status_code == 200
    throttled = await client.get("/api/data/v9.2/contacts")
    assert throttled.status_code == 429
    assert throttled.json() == {
        "error": {
            "code": "0x80072322",
            "message": "Number of requests exceeded the limit of 3 over time window of 300 seconds.",
        }
    }
    retry_after = int(throttled.headers["Retry-After"])
    assert 1 <= retry_after <= 300
    sandbox.clock.advance(retry_after)
    assert (await client.get("/api/data/v9.2/contacts")).status_code == 200
    assert sandbox.calls.snapshot()["by_status"]["429"] == 1


async def test_protection_can_be_switched_off(client: httpx.AsyncClient) -> None:
    await client.put("/_admin/protection", json={"requests_per_window": 1, "enabled": False})
    for _ in range(5):
        assert (await client.get("/api/data/v9.2/contacts")).status_code == 200


async def test_concurrency_limit_trips_at_once(client: httpx.AsyncClient) -> None:
    await client.put("/_admin/protection", json={"concurrent_requests": 2})
    await client.put("/_admin/faults", json={"latency_ms": 50})
    responses = await asyncio.gather(*(client.get("/api/data/v9.2/contacts") for _ in range(4)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429]
    throttled = next(r for r in responses if r.status_code == 429)
    assert throttled.json()["error"] == {
        "code": "0x80072326",
        "message": "Number of concurrent requests exceeded the limit of 2.",
    }
    assert "Retry-After" in throttled.headers


async def test_injected_faults_use_dataverse_shapes(client: httpx.AsyncClient) -> None:
    knobs = await client.put("/_admin/faults", json={"throttle_rate": 1.0})
    assert knobs.json()["throttle_rate"] == 1.0
    throttled = await client.get("/api/data/v9.2/contacts")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "0x80072322"
    assert int(throttled.headers["Retry-After"]) >= 1
    await client.put("/_admin/faults", json={"throttle_rate": 0.0, "error_rate": 1.0})
    down = await client.get("/api/data/v9.2/contacts")
    assert down.status_code == 503
    assert set(down.json()["error"]) == {"code", "message"}
    assert (await client.get("/_admin/state")).status_code == 200
