"""Rate limits: headers, the 429 bodies with policyName (fact sheet §5), search's own limit, fault 429s."""

from __future__ import annotations

import re

import httpx

from cdc.sandbox.hubspot import HubSpotSandbox

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f-]{27}$")


async def test_headers_count_down_and_the_burst_429_has_the_documented_body(
    client: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    sandbox.limiter.update({"burst": 3, "daily": 100})
    first = await client.get("/crm/objects/2026-09/contacts")
    assert first.headers["X-HubSpot-RateLimit-Max"] == "3"
    assert first.headers["X-HubSpot-RateLimit-Remaining"] == "2"
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert first.headers["X-HubSpot-RateLimit-Daily"] == "100"
    assert first.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "99"
    assert "X-HubSpot-RateLimit-Secondly" in first.headers
    await client.get("/crm/objects/2026-09/contacts")
    third = await client.get("/crm/objects/2026-09/contacts")
    assert third.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    limited = await client.get("/crm/objects/2026-09/contacts")
    assert limited.status_code == 429
    body = limited.json()
    assert set(body) == {"status", "message", "errorType", "correlationId", "policyName", "requestId"}
    assert body["status"] == "error"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert UUID.match(body["correlationId"])
    assert UUID.match(body["requestId"])

    sandbox.clock.advance(10)  # the rolling window empties
    assert (await client.get("/crm/objects/2026-09/contacts")).status_code == 200


async def test_daily_limit_and_its_reset_at_midnight(
    client: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    sandbox.limiter.update({"burst": None, "daily": 2})
    assert (await client.get("/crm/objects/2026-09/contacts")).status_code == 200
    second = await client.get("/crm/objects/2026-09/contacts")
    assert second.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    assert "X-HubSpot-RateLimit-Max" not in second.headers  # burst unlimited: no burst headers
    limited = await client.get("/crm/objects/2026-09/contacts")
    assert limited.status_code == 429
    assert limited.json()["policyName"] == "DAILY"
    assert limited.json()["message"] == "You have reached your daily limit."
    sandbox.clock.advance(86_400)
    assert (await client.get("/crm/objects/2026-09/contacts")).status_code == 200


async def test_search_has_its_own_limit_and_no_headers(
    client: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    sandbox.limiter.update({"burst": 1})
    answers = [await client.post("/crm/objects/2026-09/contacts/search", json={}) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert not [h for h in answers[0].headers if h.lower().startswith("x-hubspot-ratelimit")]
    assert answers[5].json()["message"] == "You have reached your secondly limit."
    assert (
        await client.get("/crm/objects/2026-09/contacts")
    ).status_code == 200  # search did not use the burst
    sandbox.clock.advance(1)
    assert (await client.post("/crm/objects/2026-09/contacts/search", json={})).status_code == 200


async def test_limits_can_be_lifted_for_benchmarks(client: httpx.AsyncClient) -> None:
    answer = await client.put(
        "/_admin/ratelimits", json={"burst": None, "daily": None, "search_per_second": None}
    )
    assert answer.json()["burst"] is None
    for _ in range(300):
        response = await client.get("/crm/objects/2026-09/contacts")
        assert response.status_code == 200
    assert "X-HubSpot-RateLimit-Daily" not in response.headers
    assert (await client.put("/_admin/ratelimits", json={"burst": 0})).status_code == 400


async def test_fault_knobs_inject_throttles_and_outages_in_hubspot_shape(client: httpx.AsyncClient) -> None:
    assert (await client.put("/_admin/faults", json={"throttle_rate": 1.0})).status_code == 200
    throttled = await client.get("/crm/objects/2026-09/contacts")
    assert throttled.status_code == 429
    assert throttled.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    await client.put("/_admin/faults", json={"throttle_rate": 0.0, "error_rate": 1.0})
    down = await client.get("/crm/objects/2026-09/contacts")
    assert down.status_code == 503
    assert down.json()["status"] == "error"
    assert (await client.put("/_admin/faults", json={"nope": 1})).status_code == 400
    calls = (await client.get("/_admin/calls")).json()
    assert calls["by_endpoint"] == {"GET /crm/objects/2026-09/{objectType}": 2}
    assert calls["by_status"] == {"429": 1, "503": 1}


async def test_another_integration_spends_the_apps_budget(
    client: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    """The admin knob a test uses to stand for another integration of the same app and account."""
    sandbox.limiter.update({"burst": 20, "daily": 100})
    assert (await client.post("/_admin/ratelimits/consume", json={"calls": 15})).json() == {"consumed": 15}
    answer = await client.get("/crm/objects/2026-09/contacts")
    assert answer.headers["X-HubSpot-RateLimit-Remaining"] == "4"
    assert answer.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "84"
    refused = await client.post("/_admin/ratelimits/consume", json={"calls": "many"})
    assert refused.status_code == 400
    assert "calls must be a non-negative integer" in refused.text
