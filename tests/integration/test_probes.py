"""The roles' probes against a real broker: ``/readyz`` says what is wrong (a loop stuck, Kafka away) and
turns green again once it is fixed; a role with nothing to do stays ready."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from cdc.metrics import Metrics
from cdc.roles.ingest import run_ingest
from cdc.roles.probes import KafkaCheck
from cdc.roles.sync import run_sync
from cdc.sandbox.runner import Sandbox, run_sandbox
from cdc.settings import IngestSettings, SyncSettings
from cdc.sources.publisher import ChangePublisher
from cdc.tools.devkafka.runner import LocalKafka, free_port
from consumers.router import Router
from streams.admin import ensure_topics, open_admin
from streams.config import KafkaSettings
from streams.events import ChangeEvent, Operation, Origin
from streams.keys import SourceSystem
from streams.topics import TopicCatalog, TopicRole
from tests.integration.sync_stack import eventually, small_config

pytestmark = pytest.mark.kafka

BOUND_S = 1.0
"""How late a loop's beat may be in these tests (the roles' default is minutes)."""


async def _topics(kafka: KafkaSettings) -> None:
    async with open_admin(kafka) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka))


@contextlib.asynccontextmanager
async def running_sync(kafka: KafkaSettings, box: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """`cdc sync` in this process, with loops that count as stalled after ``BOUND_S``; a client of its
    probe server."""
    settings = box.daemon_settings(kafka).model_copy(
        update={"sync": SyncSettings(port=0, group_prefix=f"{kafka.topic_prefix}g-")}
    )
    stop = asyncio.Event()
    served: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    sync = asyncio.create_task(
        run_sync(settings, stop, config=small_config(), on_ready=served.set_result, stall_after_s=BOUND_S)
    )
    try:
        await asyncio.wait([served, sync], timeout=60, return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
        if sync.done():
            sync.result()
        async with httpx.AsyncClient(base_url=served.result(), timeout=10) as client:
            yield client
    finally:
        stop.set()
        await asyncio.wait_for(sync, 30)


async def ready(client: httpx.AsyncClient) -> httpx.Response | None:
    answer = await client.get("/readyz")
    return answer if answer.status_code == 200 else None


async def test_an_idle_sync_is_ready_and_stays_ready(kafka_settings: KafkaSettings) -> None:
    """Nothing to sync for several times the bound: every loop beats while it waits, so it stays ready."""
    await _topics(kafka_settings)
    async with run_sandbox(seed=41) as box, running_sync(kafka_settings, box) as sync:
        first = await eventually(lambda: ready(sync), within=60, what="cdc sync to be ready")
        answers = []
        until = time.monotonic() + 4 * BOUND_S
        while time.monotonic() < until:
            answers.append((await sync.get("/readyz")).status_code)
            await asyncio.sleep(0.2)
        alive = await sync.get("/healthz")
    assert first.json() == {"status": "ready"}
    assert set(answers) == {200}, answers
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})


async def test_a_stuck_sync_loop_turns_readyz_red_naming_it(
    kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router hangs on a change (a call that never returns): /readyz names it, not the idle apply loop,
    and turns green once the call returns."""
    released = asyncio.Event()
    enrich = Router.enrich

    async def hanging(self: Router, events: list[ChangeEvent]) -> list[ChangeEvent]:
        await released.wait()
        return await enrich(self, events)

    monkeypatch.setattr(Router, "enrich", hanging)
    await _topics(kafka_settings)
    async with run_sandbox(seed=42) as box, running_sync(kafka_settings, box) as sync:
        await eventually(lambda: ready(sync), within=60, what="cdc sync to be ready")
        publisher = ChangePublisher(kafka_settings, Metrics(CollectorRegistry()))
        await publisher.start()
        try:
            await publisher.publish([_change(box)])
        finally:
            await publisher.stop()

        async def stalled() -> httpx.Response | None:
            answer = await sync.get("/readyz")
            return answer if answer.status_code == 503 else None

        red = await eventually(stalled, within=30, what="/readyz to name the stuck router")
        released.set()
        green = await eventually(lambda: ready(sync), within=30, what="/readyz green once the router moves")
    failed = red.json()["failed"]
    assert list(failed) == ["heartbeats"], failed
    assert failed["heartbeats"].startswith("sync-route has not beaten for "), failed
    assert "sync-apply" not in failed["heartbeats"]
    assert green.json() == {"status": "ready"}


def _change(box: Sandbox) -> ChangeEvent:
    now = datetime.now(UTC)
    return ChangeEvent(
        source=SourceSystem.HUBSPOT,
        tenant=str(box.info.hubspot.portal_id),
        object_type="contact",
        object_id="1001",
        operation=Operation.UPDATE,
        origin=Origin.WEBHOOK,
        changed_properties={"email": "stuck@example.com"},
        occurred_at=now,
        received_at=now,
    )


async def test_readyz_is_red_while_the_broker_is_down_and_green_when_it_is_back(tmp_path: Path) -> None:
    """A role's own broker stopped under it (`cdc ingest` here): /readyz says Kafka does not answer, naming
    the bootstrap servers; the broker started again, /readyz is green without a restart of the role."""
    broker = await asyncio.to_thread(LocalKafka(data_dir=tmp_path / "kafka").start)
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, topic_prefix="probes.", partitions=1)
    try:
        await _topics(kafka)
        async with run_sandbox(seed=43) as box:
            settings = box.daemon_settings(kafka, ingest=IngestSettings(port=0))
            stop = asyncio.Event()
            listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(run_ingest(settings, stop, on_listening=listening.set_result))
                base = (await asyncio.wait_for(listening, 30)).removesuffix("/webhooks/hubspot")
                async with httpx.AsyncClient(base_url=base, timeout=10) as ingest:
                    before = await eventually(lambda: ready(ingest), within=30, what="cdc ingest ready")
                    await asyncio.to_thread(broker.stop)  # data dir and ports are kept

                    async def red() -> httpx.Response | None:
                        answer = await ingest.get("/readyz")
                        return answer if answer.status_code == 503 else None

                    down = await eventually(red, within=30, what="/readyz red with the broker down")
                    alive = await ingest.get("/healthz")
                    broker = await asyncio.to_thread(LocalKafka(data_dir=tmp_path / "kafka").start)
                    back = await eventually(lambda: ready(ingest), within=60, what="/readyz green again")
                stop.set()
    finally:
        await asyncio.to_thread(broker.stop)
    assert before.json() == {"status": "ready"}
    assert list(down.json()["failed"]) == ["kafka"]
    assert down.json()["failed"]["kafka"].startswith(f"Kafka at {kafka.bootstrap_servers} did not answer")
    assert alive.status_code == 200, "the process is alive: only readiness depends on Kafka"
    assert back.json() == {"status": "ready"}


async def test_kafka_check_names_the_bootstrap_servers_and_the_missing_topics(
    kafka_settings: KafkaSettings,
) -> None:
    closed = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", topic_prefix="x.")
    away = KafkaCheck(closed, ["x.crm.changes.hubspot"])
    catalog = TopicCatalog.from_settings(kafka_settings)
    missing = KafkaCheck(kafka_settings, [catalog.name(TopicRole.CHANGES_HUBSPOT)])
    try:
        no_broker, no_topic = await away(), await missing()
    finally:
        await away.aclose()
        await missing.aclose()
    assert no_broker is not None
    assert no_broker.startswith(f"Kafka at {closed.bootstrap_servers} did not answer within 2s")
    assert (
        no_topic == f"missing topics ['{catalog.name(TopicRole.CHANGES_HUBSPOT)}']: run `cdc topics ensure`"
    )
