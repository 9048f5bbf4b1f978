"""A real Prometheus scrapes the running pipeline: every target is up, every query of the Grafana dashboard
returns data, and the alert rules load and evaluate.

Grafana does not install on our machines; Prometheus does (Debian's ``prometheus``, which
``scripts/bootstrap.sh`` installs), and it is what evaluates both the panels' PromQL and ``alerts.yml``. So
the pipeline of `tests.integration.sync_stack` runs (`cdc ingest`, `cdc poll` with the HubSpot reconciler,
`cdc sync`), a Prometheus started here scrapes the three roles every second, and the test drives the
counters: edits on both sides, a conflict, a cleared field (skipped, not blanked), a webhook with a bad
signature, a short window of 429s from both sandboxes, and two Dataverse delta-token expiries (the sandbox
clock jumps eight days), the second of which must fire ``CdcDeltaTokenReset``.

The stack's roles share one metrics registry (one process), so each target exposes every metric; what this
proves is that the exposition, the panel queries and the rules fit together on real data, not the split of
metrics between roles (``cdc demo`` runs the roles with a registry each).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import yaml

from cdc.metrics import Metrics
from cdc.sandbox.hubspot.webhooks import sign_request
from cdc.tools.devkafka.runner import free_port
from tests.integration.sync_stack import Stack, eventually, quiet, running_stack, small_config

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "cdc.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__interval": "5s", "$__range": "5m"}
NEVER_EVALUATED = "0001-01-01T00:00:00Z"

# Panel queries allowed to return nothing: their series only exist once something goes wrong in a way the
# test does not provoke. Everything else must have data. Keep this short; prefer driving the counter.
MAY_BE_EMPTY = {
    "sum by (reason) (rate(cdc_produce_failures_total[5m]))": (
        "Kafka acknowledged every batch; failing it means stopping the session broker"
    ),
    "sum by (system) (rate(cdc_sync_paused_total[5m]))": (
        "the apply loop pauses only when a CRM stays unavailable after its retries"
    ),
    "sum by (step, reason) (increase(cdc_sync_deadletters_total[15m]))": (
        "every event of a healthy run applies; nothing is dead-lettered"
    ),
    "sum(increase(cdc_sync_deadletters_total[24h]))": "as above: no dead letters in a healthy run",
    "max by (step, reason) (cdc_excluded_records)": (
        "no record of this stack is refused; tests/integration/test_sync_exclusions.py checks the gauge"
    ),
    "time() - max by (step) (cdc_sync_operator_paused_since_timestamp_seconds > 0)": (
        "nothing is paused in this run; tests/integration/test_pause.py checks the pause gauges"
    ),
    "sum by (pair) (rate(cdc_sync_parked_total[5m]))": (
        "no step is paused, nothing parks; tests/integration/test_pause.py checks the parked counter"
    ),
    "sum by (outcome) (rate(cdc_journal_events_total[5m]))": (
        "this stack pages HubSpot's search (not provisioned: no journal subscriptions); the journal's "
        "counters are checked in tests/integration/test_journal.py"
    ),
}

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus") is None,
        reason="prometheus not installed (Debian package `prometheus`; scripts/bootstrap.sh installs it)",
    ),
]


def panel_queries() -> list[str]:
    """Every target expression of every panel (rows included), Grafana's variables replaced."""

    def walk(panels: list[dict[str, Any]]) -> Iterator[str]:
        for panel in panels:
            yield from walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                yield expr

    queries = list(dict.fromkeys(walk(json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"])))
    leftover = [q for q in queries if "$" in q]
    assert not leftover, f"Grafana variables without a stand-in: {leftover}"
    return queries


def prometheus_config(targets: dict[str, str]) -> dict[str, Any]:
    """Scrape each role every second as ``cdc-<role>`` (the job names alerts.yml selects on)."""
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": f"cdc-{role}", "static_configs": [{"targets": [urlsplit(url).netloc]}]}
            for role, url in sorted(targets.items())
        ],
    }


@contextlib.asynccontextmanager
async def running_prometheus(workdir: Path, targets: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """A `prometheus` process on a free loopback port; yields a client for its HTTP API. Leaving the block
    stops it with SIGTERM and checks that it shut down cleanly."""
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(targets)), encoding="utf-8")
    address = f"127.0.0.1:{free_port()}"
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address={address}",
            stdout=log,
            stderr=log,
        )

    def log_tail() -> str:
        return log_path.read_text(encoding="utf-8", errors="replace")[-3000:]

    try:
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=5) as api:

            async def ready() -> bool:
                if process.returncode is not None:
                    raise AssertionError(f"prometheus exited with {process.returncode}:\n{log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    return (await api.get("/-/ready")).status_code == 200
                return False

            await eventually(ready, within=20, what="prometheus to be ready")
            yield api
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise AssertionError(f"prometheus did not stop within 15 s:\n{log_tail()}") from None
    assert process.returncode == 0, f"prometheus exited with {process.returncode}:\n{log_tail()}"
    assert "See you next time!" in log_path.read_text(encoding="utf-8", errors="replace"), log_tail()


async def api_data(api: httpx.AsyncClient, path: str, **params: str) -> Any:
    answer = await api.get(f"/api/v1/{path}", params=params)
    assert answer.status_code == 200, f"{path} {params}: {answer.status_code} {answer.text}"
    body = answer.json()
    assert body["status"] == "success", body
    return body["data"]


def total(metrics: Metrics, name: str) -> float:
    """A counter's value summed over its labels, from the process's own registry."""
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    )


def above(metrics: Metrics, name: str, value: float) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return total(metrics, name) > value

    return check


def moved(metrics: Metrics, name: str) -> Callable[[], Awaitable[bool]]:
    return above(metrics, name, 0.0)


def row_with(rows: list[dict[str, Any]], field: str, value: str) -> dict[str, Any] | None:
    return next((r for r in rows if (r.get(field) or "").lower() == value), None)


async def drive(stack: Stack, api: httpx.AsyncClient) -> None:
    """Edits on both sides and the few faults that move the error counters; returns once sync is quiet."""
    # HubSpot -> Dataverse and Dataverse -> HubSpot, companies/accounts and contacts.
    await stack.hs_create("companies", {"name": "Scrape Ltd", "city": "Leeds"})
    hs_contact = await stack.hs_create("contacts", {"email": "prom@example.com", "firstname": "Prom"})
    await stack.dv_create("account", {"name": "Metrics plc", "address1_city": "York"})
    await stack.dv_create("contact", {"emailaddress1": "graf@example.com", "lastname": "Ana"})

    async def dv_prom() -> dict[str, Any] | None:
        return row_with(await stack.dv_all("contact"), "emailaddress1", "prom@example.com")

    async def hs_graf() -> dict[str, Any] | None:
        rows = [r["properties"] for r in await stack.hs_all("contacts")]
        return row_with(rows, "email", "graf@example.com")

    row = await eventually(dv_prom, what="the HubSpot contact in Dataverse")
    await eventually(hs_graf, what="the Dataverse contact in HubSpot")
    await quiet(stack, for_s=1.0)

    # The same field edited on both sides within one poll interval: a conflict the policy resolves.
    await asyncio.gather(
        stack.hs_update("contacts", hs_contact, {"city": "Hull"}),
        stack.dv_update("contact", row["contactid"], {"address1_city": "Bath"}),
    )
    await eventually(moved(stack.metrics, "cdc_sync_conflicts_total"), what="a conflict")
    await quiet(stack, for_s=1.0)

    # A field cleared in HubSpot does not blank the Dataverse value (the mapping has no allow_empty).
    await stack.hs_update("contacts", hs_contact, {"city": ""})
    await eventually(moved(stack.metrics, "cdc_sync_skipped_total"), what="a skipped empty value")

    # A webhook with no signature: refused with 401 and counted by reason.
    refused = await stack.hs.post(stack.webhook_url, json=[{"subscriptionType": "contact.creation"}])
    assert refused.status_code == 401, refused.text
    # A signed webhook of another portal: refused with 403, counted by reason and per foreign event.
    foreign = orjson.dumps([{"eventId": 1, "portalId": 99999, "occurredAt": 0, "subscriptionType": "x"}])
    secret = stack.box.info.hubspot.client_secret
    signed = sign_request(secret, stack.webhook_url, foreign, int(time.time() * 1000))
    refused = await stack.hs.post(stack.webhook_url, content=foreign, headers=signed)
    assert refused.status_code == 403, refused.text

    # A short window in which both CRMs throttle: 429s, Retry-After honoured, retries counted.
    for client in (stack.hs, stack.dv):
        assert (await client.put("/_admin/faults", json={"throttle_rate": 0.5})).status_code == 200
    try:
        await stack.hs_update("contacts", hs_contact, {"jobtitle": "Scraper"})
        await stack.dv_update("contact", row["contactid"], {"firstname": "Graf"})
        await eventually(moved(stack.metrics, "cdc_api_throttled_total"), what="a 429", within=20)
        await eventually(moved(stack.metrics, "cdc_api_retries_total"), what="a retry", within=20)
    finally:
        for client in (stack.hs, stack.dv):
            assert (await client.put("/_admin/faults", json={"throttle_rate": 0.0})).status_code == 200

    # The org expires change tracking after 7 days (the sandbox defaults to 90); eight days later the
    # poller's delta tokens are refused and it starts a full pass. Twice: a labelled counter's series is
    # born at 1 on its first increment, which increase() cannot see, so the first reset of a process
    # never pages (CdcDeltaTokenReset); the second, once Prometheus has scraped the 1, does.
    assert (await stack.dv.put("/_admin/change-tracking", json={"expiry_days": 7})).status_code == 200
    for _ in range(2):
        before = total(stack.metrics, "cdc_delta_token_resets_total")
        advanced = await stack.dv.post("/_admin/clock/advance", json={"seconds": 8 * 24 * 3600})
        assert advanced.status_code == 200, advanced.text
        await eventually(above(stack.metrics, "cdc_delta_token_resets_total", before), what="a token reset")
        after = total(stack.metrics, "cdc_delta_token_resets_total")

        async def scraped(seen: float = after) -> bool:
            data = await api_data(api, "query", query="sum(cdc_delta_token_resets_total)")
            return bool(data["result"]) and float(data["result"][0]["value"][1]) >= seen

        await eventually(scraped, within=10, what="Prometheus to scrape the reset")
    await quiet(stack, for_s=1.0)


async def test_prometheus_scrapes_the_pipeline_and_every_panel_and_rule_works(
    kafka_settings: Any, tmp_path: Path
) -> None:
    queries = panel_queries()
    assert set(MAY_BE_EMPTY) <= set(queries), "MAY_BE_EMPTY names a query the dashboard no longer has"
    async with running_stack(kafka_settings, small_config(), reconcile=True) as stack:

        async def poll_serving() -> bool:
            return "poll" in stack.urls

        await eventually(poll_serving, what="cdc poll serving /metrics")
        async with running_prometheus(tmp_path, dict(stack.urls)) as api:
            await drive(stack, api)

            async def all_up() -> list[dict[str, Any]] | None:
                active = (await api_data(api, "targets", state="active"))["activeTargets"]
                return active if active and all(t["health"] == "up" for t in active) else None

            targets = await eventually(all_up, within=15, what="every target up")
            assert {t["labels"]["job"] for t in targets} == {"cdc-ingest", "cdc-poll", "cdc-sync"}

            # A rate needs two scrapes of a series, so a series born late gets a few seconds.
            deadline = time.monotonic() + 15
            while True:
                results = await asyncio.gather(*(api_data(api, "query", query=q) for q in queries))
                missing = [
                    q
                    for q, data in zip(queries, results, strict=True)
                    if not data["result"] and q not in MAY_BE_EMPTY
                ]
                if not missing or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1)
            assert not missing, f"panel queries without data: {missing}"

            async def evaluated() -> list[dict[str, Any]] | None:
                groups: list[dict[str, Any]] = (await api_data(api, "rules"))["groups"]
                done = groups and all(g["lastEvaluation"] != NEVER_EVALUATED for g in groups)
                return groups if done else None

            groups = await eventually(evaluated, within=15, what="every rule group evaluated")
            expected = {g["name"] for g in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]}
            assert {g["name"] for g in groups} == expected
            for group in groups:
                assert group["evaluationTime"] >= 0, group
                for rule in group["rules"]:
                    assert rule["health"] == "ok", rule
                    assert not rule.get("lastError"), rule

            # The second delta-token expiry pages (the rule has no `for:`): a rule saw the real series.
            async def reset_alert() -> bool:
                alerts = (await api_data(api, "alerts"))["alerts"]
                return any(
                    a["labels"]["alertname"] == "CdcDeltaTokenReset" and a["state"] == "firing"
                    for a in alerts
                )

            await eventually(reset_alert, within=10, what="CdcDeltaTokenReset firing")
