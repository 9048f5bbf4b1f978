"""`cdc resync` against the sandbox CRMs over real sockets and the session's real broker.

What an operator relies on: every record comes back once as a full-record event with ``origin=resync``;
``--since`` limits the read; no poller checkpoint moves; a dry run publishes nothing; a wrong object is a
usage error. The CLI runs in a worker thread (it owns its event loop) while the sandbox serves on this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from cdc.dataverse.poller import run_dataverse_poller
from cdc.exits import ExitCode
from cdc.metrics import Metrics
from cdc.ops.resync import resync
from cdc.provisioning.run import enable_change_tracking
from cdc.sandbox.runner import Sandbox, run_sandbox
from cdc.settings import PollSettings, Settings
from streams.admin import ensure_topics, open_admin
from streams.checkpoint_store import read_checkpoints
from streams.clients import make_consumer
from streams.config import KafkaSettings
from streams.events import ChangeEvent, Operation, Origin
from streams.keys import join_key
from streams.topics import TopicCatalog, TopicRole
from tests.cli_thread import cdc
from tests.kafka_reading import read_changes
from tests.settings_files import settings_file
from tests.sync_configs import CONTACT_STEPS, enabled_only

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
async def topics(kafka_settings: KafkaSettings) -> KafkaSettings:
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka_settings))
    return kafka_settings


CONTACTS = enabled_only(*CONTACT_STEPS)


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with run_sandbox(seed=41) as sandbox:
        yield sandbox


def settings_for(kafka: KafkaSettings, box: Sandbox, **poll: Any) -> Settings:
    defaults: dict[str, Any] = {
        "dataverse_tables": ("contacts",),
        "dataverse_interval_s": 0.2,
        "hubspot_objects": ("contacts", "companies"),
    }
    return box.daemon_settings(kafka, poll=PollSettings(**{**defaults, **poll}))


def config_file(settings: Settings, tmp_path: Path) -> str:
    """The settings as a YAML file for ``cdc --config`` (secrets written out: it is a test's sandbox)."""
    include = {"kafka", "hubspot", "dataverse", "poll"}
    return str(settings_file(settings, tmp_path / "cdc.yaml", include=include))


def dataverse_api(box: Sandbox) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=box.info.dataverse.ca_bundle)
    return httpx.AsyncClient(base_url=f"{box.info.dataverse.base_url}/_admin", verify=context, timeout=60)


async def seed_dataverse(box: Sandbox, rows: list[dict[str, Any]]) -> list[str]:
    async with dataverse_api(box) as api:
        answer = await api.post("/tables/contacts/rows", json={"rows": rows})
        assert answer.status_code == 201, answer.text
        return [row["contactid"] for row in answer.json()["value"]]


async def hubspot_admin(box: Sandbox, path: str, body: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=box.info.hubspot.base_url, timeout=60) as api:
        answer = await api.post(path, json=body)
        assert answer.status_code < 300, answer.text
        return answer.json()


def resynced(events: list[ChangeEvent]) -> list[ChangeEvent]:
    return [e for e in events if e.origin is Origin.RESYNC]


async def end_offsets(kafka: KafkaSettings, role: TopicRole) -> dict[int, int]:
    spec = TopicCatalog.from_settings(kafka)[role]
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(spec.name, p) for p in range(spec.partitions)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def one_poller_pass(settings: Settings) -> None:
    """Run the real change-tracking poller until its first pass is committed, then stop it."""
    metrics = Metrics(CollectorRegistry())
    stop = asyncio.Event()
    done = "cdc_poll_duration_seconds_count"
    labels = {"system": "dataverse", "table": "contacts"}
    async with asyncio.TaskGroup() as group:
        await enable_change_tracking(settings, ["contacts"])  # as `cdc provision --dataverse` does
        group.create_task(run_dataverse_poller(settings, stop, metrics=metrics, config=CONTACTS))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(20):
                while not metrics.registry.get_sample_value(done, labels):  # noqa: ASYNC110 -- a metric
                    await asyncio.sleep(0.02)
        stop.set()


async def test_dataverse_resync_publishes_each_row_once_and_moves_no_checkpoint(
    topics: KafkaSettings, box: Sandbox
) -> None:
    ids = await seed_dataverse(
        box, [{"firstname": f"R{i}", "emailaddress1": f"r{i}@x.io"} for i in range(30)]
    )
    select = {"contacts": ("firstname", "modifiedon", "versionnumber")}
    settings = settings_for(topics, box, dataverse_page_size=7, dataverse_select=select)
    await one_poller_pass(settings)
    checkpoints = await read_checkpoints(topics)
    assert len(checkpoints) == 1, "the poller committed its delta link"
    offsets = await end_offsets(topics, TopicRole.CHECKPOINTS)

    lines: list[str] = []
    report = await resync(settings, "dataverse", "contact", progress=lines.append)

    assert (report.records, report.published, report.pages) == (30, 30, 5)  # pages of 7
    assert report.object == "contacts"
    assert lines
    assert lines[0].startswith("dataverse contacts: 7 records read in 1 pages, 7 events published")
    events = resynced(await read_changes(topics, TopicRole.CHANGES_DATAVERSE))
    assert Counter(e.object_id for e in events) == dict.fromkeys(ids, 1)
    first = next(e for e in events if e.object_id == ids[0])
    assert first.operation is Operation.UPSERT
    assert first.record is not None
    assert first.record["firstname"] == "R0"
    assert "emailaddress1" not in first.record, "the configured $select is applied"
    assert first.source_version == str(first.record["versionnumber"])
    tenant = box.info.dataverse.base_url.split("://")[1]
    assert first.key == join_key("dataverse", tenant, "contact", ids[0]), "the poller's key"
    assert await end_offsets(topics, TopicRole.CHECKPOINTS) == offsets, "no checkpoint was written"
    assert await read_checkpoints(topics) == checkpoints


async def test_dataverse_since_limits_the_rows_and_the_cli_prints_json(
    topics: KafkaSettings, box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed_dataverse(box, [{"firstname": f"old{i}"} for i in range(12)])
    box.clock.advance(3600)
    recent = await seed_dataverse(box, [{"firstname": f"new{i}"} for i in range(4)])
    since = (box.clock.now() - timedelta(minutes=30)).isoformat()
    config = config_file(settings_for(topics, box, dataverse_page_size=3), tmp_path)

    argv = ["--config", config, "resync", "--system", "dataverse", "--object", "contacts", "--since", since]
    assert await cdc(*argv, "--json") == 0

    out, err = capsys.readouterr()
    report = orjson.loads(out)
    assert set(report) == {"system", "object", "records", "published", "seconds"}
    assert report | {"seconds": 0} == {
        "system": "dataverse",
        "object": "contacts",
        "records": 4,
        "published": 4,
        "seconds": 0,
    }
    assert "dataverse contacts: 3 records read in 1 pages" in err
    events = resynced(await read_changes(topics, TopicRole.CHANGES_DATAVERSE))
    assert sorted(e.object_id for e in events) == sorted(recent)


async def test_hubspot_resync_publishes_every_contact_with_associations_and_respects_since(
    topics: KafkaSettings, box: Sandbox
) -> None:
    seeded = await hubspot_admin(
        box,
        "/_admin/seed",
        {
            "contacts": [{"email": f"h{i}@x.io", "firstname": f"H{i}"} for i in range(25)],
            "companies": [{"name": f"Co {i}"} for i in range(2)],
        },
    )
    contacts, companies = seeded["contacts"], seeded["companies"]
    links = {contacts[1]: companies[0], contacts[7]: companies[1]}
    for contact, company in links.items():
        edge = {"fromType": "contacts", "fromId": contact, "toType": "companies", "toId": company}
        await hubspot_admin(box, "/_admin/associations", edge)
    box.clock.advance(3600)
    recent = (
        await hubspot_admin(box, "/_admin/seed", {"contacts": [{"email": f"late{i}@x.io"} for i in range(3)]})
    )["contacts"]
    settings = settings_for(topics, box)

    everything = await resync(settings, "hubspot", "contacts")
    since = await resync(settings, "hubspot", "contact", since=box.clock.now() - timedelta(minutes=30))

    assert (everything.records, everything.associations) == (28, 2)
    assert everything.published == 30
    assert (since.records, since.published) == (3, 3)
    events = resynced(await read_changes(topics))
    records = Counter(e.object_id for e in events if e.operation is Operation.UPSERT)
    assert records == {**dict.fromkeys(contacts, 1), **dict.fromkeys(recent, 2)}
    upsert = next(e for e in events if e.object_id == contacts[3])
    assert upsert.record is not None
    assert upsert.record["email"] == "h3@x.io"
    assert upsert.source_version == upsert.record["lastmodifieddate"]
    edges = {
        (e.object_id, e.association.to_object_type, e.association.to_object_id)
        for e in events
        if e.association is not None
    }
    assert edges == {(contact, "company", company) for contact, company in links.items()}
    assert all(e.object_type == "contact" for e in events)


async def test_a_dry_run_reads_and_counts_but_publishes_nothing(
    topics: KafkaSettings, box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed_dataverse(box, [{"firstname": f"d{i}"} for i in range(5)])
    await hubspot_admin(box, "/_admin/seed", {"contacts": [{"email": f"d{i}@x.io"} for i in range(4)]})
    config = config_file(settings_for(topics, box), tmp_path)

    assert (
        await cdc("--config", config, "resync", "--system", "dataverse", "--object", "contacts", "--dry-run")
        == 0
    )
    out, _ = capsys.readouterr()
    assert out.startswith("would resync 5 contacts from dataverse in ")
    assert "dry run: nothing published" in out
    report = await resync(settings_for(topics, box), "hubspot", "contacts", dry_run=True)
    assert (report.records, report.published) == (4, 0)

    for role in (TopicRole.CHANGES_DATAVERSE, TopicRole.CHANGES_HUBSPOT):
        assert set((await end_offsets(topics, role)).values()) == {0}


@pytest.mark.parametrize(
    ("system", "name", "expected"),
    [
        (
            "hubspot",
            "leads",
            "hubspot has no object 'leads' to resync: use one of contacts, companies, deals",
        ),
        ("dataverse", "widgets", "dataverse has no object 'widgets'"),
    ],
)
async def test_an_unknown_object_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], system: str, name: str, expected: str
) -> None:
    assert await cdc("resync", "--system", system, "--object", name) == ExitCode.USAGE
    _, err = capsys.readouterr()
    assert err.startswith("cdc: error: ")
    assert expected in err
