"""The one probe app of the roles: what /healthz and /readyz answer, and when a loop counts as stalled."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from cdc.metrics import Metrics
from cdc.roles.probes import Check, Heartbeats, Probes, joined


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watched(bound_s: float) -> tuple[Clock, Heartbeats]:
    clock = Clock()
    return clock, Heartbeats(bound_s, clock=clock)


def answers(probes: Probes, path: str) -> tuple[int, Any]:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=probes.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://role.test") as client:
            return await client.get(path)

    response = asyncio.run(get())
    return response.status_code, response.json()


def probes(checks: dict[str, Check], *, stopping: bool = False) -> Probes:
    return Probes(Metrics(CollectorRegistry()), stopping=lambda: stopping, checks=checks)


def test_a_loop_that_beats_is_never_stalled_however_long_it_runs() -> None:
    clock, beats = watched(60.0)
    beat = beats.expect("sync-apply")
    for _ in range(100):
        clock.now += 59.0
        beat()
    assert beats.stalled() == []


def test_a_loop_silent_past_its_bound_is_named_with_how_long() -> None:
    clock, beats = watched(60.0)
    beats.expect("sync-route")
    beats.expect("sync-apply")
    clock.now += 30.0
    beats.beat("sync-apply")
    clock.now += 45.0
    assert beats.stalled() == ["sync-route has not beaten for 75s"]


def test_an_idle_wait_the_loop_named_is_not_a_stall() -> None:
    """A table polled every 10 minutes beats before its wait: silent for 10 minutes, it is not stalled."""
    clock, beats = watched(60.0)
    beat = beats.expect("hubspot/1/contacts")
    beat(600.0)
    clock.now += 650.0
    assert beats.stalled() == []
    clock.now += 11.0
    assert beats.stalled() == ["hubspot/1/contacts has not beaten for 661s"]


def test_a_loop_started_is_expected_to_beat_within_the_bound_even_before_its_first_beat() -> None:
    clock, beats = watched(5.0)
    beats.expect("sync-links")
    clock.now += 6.0
    assert beats.stalled() == ["sync-links has not beaten for 6s"]


def test_a_loop_forgotten_is_not_watched() -> None:
    """A table handed over to another replica stops beating here; that is no stall."""
    clock, beats = watched(5.0)
    beats.expect("dataverse/org/contacts")
    beats.forget("dataverse/org/contacts")
    clock.now += 60.0
    assert beats.stalled() == []


def test_readyz_names_the_stalled_loop_and_healthz_stays_ok() -> None:
    clock, beats = watched(60.0)
    beats.expect("sync-route")
    beats.expect("sync-apply")
    ready = probes({"heartbeats": beats.check})
    assert answers(ready, "/readyz") == (200, {"status": "ready"})

    clock.now += 61.0
    beats.beat("sync-apply")  # the apply loop is idle and beating; the router is stuck
    status, body = answers(ready, "/readyz")
    assert status == 503
    assert list(body["failed"]) == ["heartbeats"]
    assert body["failed"]["heartbeats"] == "sync-route has not beaten for 61s (bound 60s plus its idle wait)"
    assert body["status"] == body["failed"]["heartbeats"]
    assert answers(ready, "/healthz") == (200, {"status": "ok"})


def test_readyz_names_every_failed_check_in_order() -> None:
    async def kafka() -> str | None:
        return "Kafka at k:9092 did not answer within 2s (connection refused)"

    async def fine() -> str | None:
        return None

    in_group = {"cdc-sync-route": lambda: True, "cdc-sync-apply": lambda: False}
    status, body = answers(
        probes({"kafka": kafka, "heartbeats": fine, "groups": joined(in_group)}), "/readyz"
    )
    assert status == 503
    assert body["failed"] == {
        "kafka": "Kafka at k:9092 did not answer within 2s (connection refused)",
        "groups": "not (yet) a member of the group(s) cdc-sync-apply",
    }
    assert body["status"] == "; ".join(body["failed"].values())


def test_shutting_down_turns_both_probes_red_without_asking_the_rest() -> None:
    asked: list[str] = []

    async def kafka() -> str | None:
        asked.append("kafka")
        return None

    stopping = probes({"kafka": kafka}, stopping=True)
    assert answers(stopping, "/readyz") == (
        503,
        {"status": "shutting down", "failed": {"shutdown": "shutting down"}},
    )
    assert answers(stopping, "/healthz") == (503, {"status": "shutting down"})
    assert asked == []


def test_metrics_are_served_beside_the_probes() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.progress("sync-apply")

    async def get() -> httpx.Response:
        app = Probes(metrics, stopping=lambda: False).app()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get("/metrics")

    scraped = asyncio.run(get())
    assert scraped.status_code == 200
    assert 'cdc_last_progress_timestamp_seconds{component="sync-apply"}' in scraped.text
