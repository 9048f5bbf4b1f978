"""`cdc poll` end to end: both parts against the sandbox, two replicas sharing tables, a fence, SIGTERM.

The lease's pure parts (partition of a table, the assignor's spread) are tested first, without a broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import signal
import ssl
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from cdc.dataverse.poller import DataverseTables
from cdc.hubspot.errors import CredentialsRefusedError
from cdc.hubspot.errors import FatalError as HubSpotFatalError
from cdc.hubspot.paths import endpoints
from cdc.metrics import Metrics
from cdc.provisioning.run import enable_change_tracking
from cdc.roles.leases import lease_partition, spread
from cdc.roles.poll import run_poll
from cdc.sandbox.runner import Sandbox, run_sandbox
from cdc.settings import PollSettings, Settings
from cdc.signals import stop_on_signals
from consumers.config import SyncConfig
from consumers.retries import RetryPolicy
from streams.admin import ensure_topics, open_admin
from streams.checkpoint_store import TransactionalChangeWriter
from streams.checkpoints import Checkpoint
from streams.config import KafkaSettings
from streams.events import ChangeEvent, Operation
from streams.keys import join_key
from streams.topics import LEASE_PARTITIONS, TopicCatalog, TopicRole
from tests.kafka_reading import read_changes
from tests.sync_configs import CONTACT_STEPS, LEAD_STEPS, enabled_only

TABLES = {"accounts": "name", "contacts": "lastname", "leads": "lastname", "opportunities": "name"}
LOGICAL = {"accounts": "account", "contacts": "contact", "leads": "lead", "opportunities": "opportunity"}
REPLICA: contextvars.ContextVar[str] = contextvars.ContextVar("replica", default="?")
CONTACTS = enabled_only(*CONTACT_STEPS)
"""Contacts both ways: `cdc poll` polls the Dataverse and HubSpot contacts, nothing else."""
FAST_AUTH = RetryPolicy(retries=None, throttles=0, wait_initial_s=0.25, wait_max_s=1.0, jitter_s=0.0)


# --- the lease's pure parts ----------------------------------------------------------------------


def test_a_table_stands_for_the_same_partition_in_every_replica() -> None:
    name = join_key("dataverse", "contoso.crm.dynamics.com", "contacts")
    assert lease_partition(name, LEASE_PARTITIONS) == lease_partition(str(name), LEASE_PARTITIONS)
    assert 0 <= lease_partition(name, LEASE_PARTITIONS) < LEASE_PARTITIONS
    spread_over = {lease_partition(f"dataverse/org/{t}", LEASE_PARTITIONS) for t in range(100)}
    assert len(spread_over) == LEASE_PARTITIONS


def test_spread_gives_tables_out_first_and_evenly_to_members_that_have_them() -> None:
    wanted = {"b": {3, 7, 9}, "a": {3, 7, 9}}
    given = spread(range(16), wanted)
    assert given["a"][:2] == [3, 9]  # tables first, alternating, lowest member id first
    assert given["b"][:1] == [7]
    assert sorted(given["a"] + given["b"]) == list(range(16))
    # A member without a table's configuration (a rolling deploy) is not given that table's partition.
    given = spread(range(3), {"old": {1}, "new": {1, 2}})
    assert given == {"new": [2, 0], "old": [1]}
    assert spread(range(4), {}) == {}
    assert spread(range(2), {"only": set()}) == {"only": [0, 1]}


# --- against the sandbox and a real broker --------------------------------------------------------


@pytest.fixture
async def topics(kafka_settings: KafkaSettings) -> KafkaSettings:
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka_settings))
    return kafka_settings


def dataverse_admin(box: Sandbox) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=box.info.dataverse.ca_bundle)
    return httpx.AsyncClient(base_url=f"{box.info.dataverse.base_url}/_admin", verify=context, timeout=60)


async def seed_rows(api: httpx.AsyncClient, table: str, count: int) -> list[str]:
    rows = [{TABLES[table]: f"{table} {n}", "description": "seeded"} for n in range(count)]
    answer = await api.post(f"/tables/{table}/rows", json={"rows": rows})
    assert answer.status_code == 201, answer.text
    return [row[f"{LOGICAL[table]}id"] for row in answer.json()["value"]]


async def edit(api: httpx.AsyncClient, table: str, row: str, text: str) -> None:
    answer = await api.patch(f"/tables/{table}/rows/{row}", json={"description": text})
    assert answer.status_code == 200, answer.text


async def until(condition: Callable[[], bool], within: float = 30) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 -- polls plain values (metrics, test records)
            await asyncio.sleep(0.02)


async def until_events(
    kafka: KafkaSettings, role: TopicRole, done: Callable[[list[ChangeEvent]], bool], within: float = 30
) -> list[ChangeEvent]:
    async with asyncio.timeout(within):
        while not done(events := await read_changes(kafka, role)):  # noqa: ASYNC110 -- reads Kafka
            await asyncio.sleep(0.2)
    return events


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_run_poll_publishes_both_systems_serves_metrics_and_survives_a_fence(
    topics: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cdc")
    metrics = Metrics(CollectorRegistry())
    poll = PollSettings(
        port=0,
        dataverse_tables=("contacts",),
        dataverse_interval_s=0.2,
        hubspot_objects=("contacts",),
        hubspot_interval_s=0.3,
        hubspot_lookback_s=30,
    )
    async with run_sandbox(seed=41) as box, dataverse_admin(box) as dv:
        [row] = await seed_rows(dv, "contacts", 1)
        async with httpx.AsyncClient(base_url=box.info.hubspot.base_url) as hub:
            answer = await hub.post("/_admin/seed", json={"contacts": [{"email": "ada@example.com"}]})
            [contact] = answer.json()["contacts"]
        settings = box.daemon_settings(topics, poll=poll)
        await enable_change_tracking(settings, ["contacts"])
        stop = asyncio.Event()
        served: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        async with asyncio.TaskGroup() as tasks:
            running = tasks.create_task(
                run_poll(settings, stop, metrics=metrics, on_ready=served.set_result, config=CONTACTS)
            )
            try:
                base = await asyncio.wait_for(served, 30)
                await until_events(topics, TopicRole.CHANGES_DATAVERSE, lambda ev: len(ev) >= 1)
                await edit(dv, "contacts", row, "changed while cdc poll runs")
                dataverse = await until_events(topics, TopicRole.CHANGES_DATAVERSE, lambda ev: len(ev) >= 2)
                hubspot = await until_events(topics, TopicRole.CHANGES_HUBSPOT, lambda ev: len(ev) >= 1)
                async with httpx.AsyncClient(base_url=base) as http:
                    scraped = (await http.get("/metrics")).text
                    assert (await http.get("/healthz")).status_code == 200
                    await until(
                        lambda: sample(metrics, "cdc_poll_rows_total", system="hubspot", table="contacts") > 0
                    )
                    ready = await http.get("/readyz")
                    assert ready.status_code == 200, ready.text

                    # A newer writer for the table (what a new owner does first) fences this replica's:
                    # its next commit fails, that table stops with a warning, the process runs on.
                    newer_writer = TransactionalChangeWriter(topics, fenced_id(settings, "contacts"))
                    await newer_writer.start()
                    try:
                        await edit(dv, "contacts", row, "after the fence")
                        await until(lambda: "another poller took the table over" in caplog.text)
                    finally:
                        await newer_writer.stop()
                    assert not running.done()
                    assert (await http.get("/healthz")).status_code == 200
            finally:
                stop.set()

    assert [e.object_id for e in dataverse] == [row, row]
    assert dataverse[1].record is not None
    assert dataverse[1].record["description"] == "changed while cdc poll runs"
    assert any(e.object_id == contact and e.operation is Operation.UPSERT for e in hubspot)
    assert 'cdc_events_ingested_total{object="contact",source="dataverse"} 2.0' in scraped
    assert "cdc_poll_rows_total" in scraped
    # The first full pass of each part says so in the log (progress lines).
    assert "dataverse contacts: full change-tracking pass starts" in caplog.text
    assert "hubspot backfill contacts: 1 of about 1 records read" in caplog.text
    assert "poll stopped after" in caplog.text
    # Nothing was published after the fence: the fenced transaction was aborted.
    after = await read_changes(topics, TopicRole.CHANGES_DATAVERSE)
    assert not [e for e in after if e.record and e.record.get("description") == "after the fence"]


def fenced_id(settings: Settings, table: str) -> str:
    tables = DataverseTables(settings, Metrics(CollectorRegistry()), config=CONTACTS)
    return tables.transactional_id(table)


@dataclass
class Ledger:
    """Who ran which table when, and every checkpoint commit, per replica (from instrumented parts)."""

    runs: list[tuple[str, str, float, float]] = field(default_factory=list)
    active: dict[tuple[str, str], float] = field(default_factory=dict)
    commits: list[tuple[str, str, float]] = field(default_factory=list)

    def owners(self, replica: str) -> set[str]:
        return {table for (who, table) in self.active if who == replica}


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> Ledger:
    record = Ledger()
    run_table, commit = DataverseTables.run_table, TransactionalChangeWriter.commit

    async def recorded_run(
        self: DataverseTables, table: str, stop: asyncio.Event, beat: Callable[[float], None]
    ) -> None:
        who, started = REPLICA.get(), time.monotonic()
        record.active[(who, table)] = started
        try:
            await run_table(self, table, stop, beat)
        finally:
            del record.active[(who, table)]
            record.runs.append((table, who, started, time.monotonic()))

    async def recorded_commit(self: TransactionalChangeWriter, events: Any, checkpoint: Checkpoint) -> None:
        await commit(self, events, checkpoint)
        record.commits.append((REPLICA.get(), checkpoint.object_type, time.monotonic()))

    monkeypatch.setattr(DataverseTables, "run_table", recorded_run)
    monkeypatch.setattr(TransactionalChangeWriter, "commit", recorded_commit)
    return record


@contextlib.asynccontextmanager
async def replica(
    tasks: asyncio.TaskGroup, name: str, settings: Settings
) -> AsyncIterator[tuple[asyncio.Event, asyncio.Task[None]]]:
    stop = asyncio.Event()
    context = contextvars.copy_context()
    context.run(REPLICA.set, name)
    task = tasks.create_task(
        run_poll(settings, stop, metrics=Metrics(CollectorRegistry())),
        name=f"replica-{name}",
        context=context,
    )
    try:
        yield stop, task
    finally:
        stop.set()


async def test_two_replicas_never_poll_one_table_at_once_and_one_takes_over_from_the_other(
    topics: KafkaSettings, ledger: Ledger
) -> None:
    poll = PollSettings(
        port=0,
        dataverse_tables=tuple(TABLES),
        dataverse_interval_s=0.2,
        hubspot_objects=(),
        shutdown_grace_s=5,
    )
    async with run_sandbox(seed=42) as box, dataverse_admin(box) as dv:
        rows = {table: await seed_rows(dv, table, 3) for table in TABLES}
        settings = box.daemon_settings(topics, poll=poll)
        await enable_change_tracking(settings, list(TABLES))
        tenant = box.info.dataverse.base_url.split("://")[1]
        partitions = {lease_partition(join_key("dataverse", tenant, t), LEASE_PARTITIONS) for t in TABLES}
        assert len(partitions) > 1, "all four tables hash to one partition: one replica must own them all"
        all_tables = set(TABLES)
        async with asyncio.TaskGroup() as tasks, replica(tasks, "a", settings) as (stop_a, task_a):
            await until(lambda: ledger.owners("a") == all_tables)
            await until_events(topics, TopicRole.CHANGES_DATAVERSE, lambda ev: len(ev) >= 12)
            async with replica(tasks, "b", settings) as (stop_b, task_b):
                await until(
                    lambda: bool(ledger.owners("b")) and ledger.owners("a") | ledger.owners("b") == all_tables
                )
                moved = ledger.owners("b")
                for table in TABLES:
                    await edit(dv, table, rows[table][0], "while shared")
                await until_events(topics, TopicRole.CHANGES_DATAVERSE, lambda ev: len(ev) >= 16)
                stopped = time.monotonic()
                stop_b.set()
                await asyncio.wait_for(task_b, 10)
                b_gone = time.monotonic() - stopped
            await until(lambda: ledger.owners("a") == all_tables)
            took_over = time.monotonic() - stopped
            for table in TABLES:
                await edit(dv, table, rows[table][1], "after the take-over")
            events = await until_events(topics, TopicRole.CHANGES_DATAVERSE, lambda ev: len(ev) >= 20)
            moved_types = {LOGICAL[table] for table in moved}
            first_commit = min(
                t for w, o, t in ledger.commits if w == "a" and o in moved_types and t > stopped
            )
            stop_a.set()
        assert task_a.done()

    # Each row change is on Kafka exactly once: hand-overs resumed from the checkpoints, re-emitting nothing.
    await asyncio.sleep(0.5)
    events = await read_changes(topics, TopicRole.CHANGES_DATAVERSE)
    assert len(events) == 20, Counter((e.object_type, e.object_id) for e in events)
    per_row = Counter(e.object_id for e in events)
    for table, ids in rows.items():
        assert [per_row[i] for i in ids] == [2, 2, 1], table
    # One owner at a time per table: the run intervals of different replicas never overlap ...
    for table in TABLES:
        runs = [(who, start, end) for t, who, start, end in ledger.runs if t == table]
        for who, start, end in runs:
            for other, start2, end2 in runs:
                assert who == other or end <= start2 or end2 <= start, (table, runs)
    # ... and every checkpoint commit fell inside a run of the replica that made it.
    for who, object_type, at in ledger.commits:
        table = next(t for t, o in LOGICAL.items() if o == object_type)
        assert any(t == table and w == who and start <= at <= end for t, w, start, end in ledger.runs), (
            who,
            table,
            at,
        )
    assert moved, "replica b owned no table"
    print(  # the figures the report quotes; shown with -s
        f"\nb held {sorted(moved)}; b stopped in {b_gone:.2f}s; a held all tables again "
        f"{took_over:.2f}s after b was asked to stop; a's first commit {first_commit - stopped:.2f}s after"
    )


def poll_env(settings: Settings) -> dict[str, str]:
    """The settings as `CDC_` variables, for a `cdc poll` subprocess."""
    kafka, dv, poll = settings.kafka, settings.dataverse, settings.poll
    assert dv.client_secret is not None
    values: dict[str, Any] = {
        "KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "KAFKA__PARTITIONS": kafka.partitions,
        "DATAVERSE__BASE_URL": dv.base_url,
        "DATAVERSE__TENANT_ID": dv.tenant_id,
        "DATAVERSE__CLIENT_ID": dv.client_id,
        "DATAVERSE__CLIENT_SECRET": dv.client_secret.get_secret_value(),
        "DATAVERSE__AUTHORITY": dv.authority,
        "DATAVERSE__SCOPE": dv.scope,
        "DATAVERSE__CA_BUNDLE": dv.ca_bundle,
        "POLL__DATAVERSE_TABLES": json.dumps(list(poll.dataverse_tables or ())),
        "POLL__DATAVERSE_INTERVAL_S": poll.dataverse_interval_s,
        "POLL__HUBSPOT_OBJECTS": "[]",
        "POLL__PORT": 0,
        "POLL__LEASE_SESSION_TIMEOUT_S": poll.lease_session_timeout_s,
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CDC_")}
    return {**clean, **{f"CDC_{name}": str(value) for name, value in values.items()}}


async def test_a_killed_replica_loses_its_tables_after_the_session_timeout_and_nothing_repeats(
    topics: KafkaSettings, ledger: Ledger, tmp_path: Path
) -> None:
    """`cdc poll` in a subprocess, killed with SIGKILL: no LeaveGroup, no clean close of its writers."""
    session = 6.0
    poll = PollSettings(
        port=0,
        dataverse_tables=tuple(TABLES),
        dataverse_interval_s=0.2,
        hubspot_objects=(),
        lease_session_timeout_s=session,
    )
    async with run_sandbox(seed=44) as box, dataverse_admin(box) as dv:
        rows = {table: await seed_rows(dv, table, 2) for table in TABLES}
        settings = box.daemon_settings(topics, poll=poll)
        await enable_change_tracking(settings, list(TABLES))
        all_tables = set(TABLES)
        held_by_b: set[str] = set()
        log_file = tmp_path / "b.log"
        with log_file.open("wb") as log_out:  # a file, not a pipe: a full pipe would stall b's heartbeats
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cdc", "poll", env=poll_env(settings), stderr=log_out
            )
        try:

            def b_holds() -> bool:
                assert process.returncode is None, log_file.read_text()
                for line in log_file.read_text().splitlines():
                    if "this replica polls dataverse" in line:
                        held_by_b.update(t for t in TABLES if f"/{t}" in line.split("polls", 1)[1])
                return bool(held_by_b)

            await until(b_holds)  # b polls everything first: a joins later
            await until_events(topics, TopicRole.CHANGES_DATAVERSE, lambda ev: len(ev) >= 8)
            async with asyncio.TaskGroup() as tasks, replica(tasks, "a", settings) as (stop_a, _):
                await until(lambda: bool(ledger.owners("a")))
                for table in TABLES:
                    await edit(dv, table, rows[table][0], "while shared")
                await until_events(topics, TopicRole.CHANGES_DATAVERSE, lambda ev: len(ev) >= 12)
                assert ledger.owners("a") != all_tables, "b owned nothing once a joined"
                killed = time.monotonic()
                process.kill()
                await process.wait()
                await until(lambda: ledger.owners("a") == all_tables, within=session + 10)
                took_over = time.monotonic() - killed
                for table in TABLES:
                    await edit(dv, table, rows[table][1], "after the crash")
                await until_events(topics, TopicRole.CHANGES_DATAVERSE, lambda ev: len(ev) >= 16)
                stop_a.set()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    await asyncio.sleep(0.5)
    events = await read_changes(topics, TopicRole.CHANGES_DATAVERSE)
    per_row = Counter(e.object_id for e in events)
    assert len(events) == 16, per_row
    for table, ids in rows.items():
        assert [per_row[i] for i in ids] == [2, 2], table
    assert took_over <= session + 3, took_over
    print(f"\nSIGKILLed replica: a polled all tables {took_over:.2f}s later (session timeout {session:g}s)")


async def test_sigterm_ends_run_poll_within_the_grace_in_the_documented_order(
    topics: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    grace = 3.0
    poll = PollSettings(
        port=0,
        dataverse_tables=("contacts",),
        dataverse_interval_s=0.2,
        hubspot_objects=(),
        shutdown_grace_s=grace,
    )
    async with run_sandbox(seed=43) as box, dataverse_admin(box) as dv:
        await seed_rows(dv, "contacts", 2)
        settings = box.daemon_settings(topics, poll=poll)
        await enable_change_tracking(settings, ["contacts"])
        metrics = Metrics(CollectorRegistry())
        stop = asyncio.Event()
        with stop_on_signals(stop):
            task = asyncio.create_task(run_poll(settings, stop, metrics=metrics, config=CONTACTS))
            try:
                await until(
                    lambda: sample(metrics, "cdc_poll_rows_total", system="dataverse", table="contacts") >= 2
                )
                signalled = time.monotonic()
                os.kill(os.getpid(), signal.SIGTERM)
                await asyncio.wait_for(asyncio.shield(task), grace + 5)
                took = time.monotonic() - signalled
            finally:
                if not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
    assert task.done()
    assert task.exception() is None
    assert took < grace, took
    lines = [r.getMessage() for r in caplog.records]

    def first(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    # The lease consumer then leaves its group (aiokafka logs "LeaveGroup request succeeded" from a task of
    # its own, sometimes after this): the graceful takeover test shows the effect, a hand-over within 1 s.
    assert first("SIGTERM received") < first("shutting down: stopped") < first("poll stopped")
    print(f"\nSIGTERM -> run_poll returned in {took:.2f}s")  # shown with -s


async def test_sigusr1_logs_where_every_task_waits_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`kill -USR1 <pid>` on a stuck role: one log record naming each task and the line it waits on."""
    stop = asyncio.Event()

    async def parked() -> None:
        await stop.wait()

    with stop_on_signals(stop), caplog.at_level(logging.WARNING, logger="cdc.tasks"):
        task = asyncio.create_task(parked(), name="parked-role")
        await asyncio.sleep(0)
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(50):
            if "asyncio tasks" in caplog.text:
                break
            await asyncio.sleep(0.01)
        assert not stop.is_set()
        stop.set()
        await task
    assert "task parked-role:" in caplog.text
    assert "in parked" in caplog.text


async def test_a_table_without_change_tracking_publishes_nothing_says_so_and_the_others_keep_polling(
    topics: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Accounts and contacts are synced; only contacts has change tracking. Nothing of accounts reaches
    Kafka, one error names it and the command that fixes it, /readyz and a metric say so, contacts keep
    flowing; once tracking is turned on (no restart), accounts are polled."""
    caplog.set_level(logging.INFO, logger="cdc")
    config = enabled_only(*CONTACT_STEPS, "s1_companies_to_accounts", "s3_accounts_to_companies")
    poll = PollSettings(port=0, dataverse_interval_s=0.2, dataverse_recheck_s=0.5, hubspot_objects=())
    metrics = Metrics(CollectorRegistry())
    async with run_sandbox(seed=45) as box, dataverse_admin(box) as dv:
        accounts = await seed_rows(dv, "accounts", 3)
        [contact] = await seed_rows(dv, "contacts", 1)
        settings = box.daemon_settings(topics, poll=poll)
        await enable_change_tracking(settings, ["contacts"])
        stop = asyncio.Event()
        served: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        async with asyncio.TaskGroup() as tasks:
            running = tasks.create_task(
                run_poll(settings, stop, metrics=metrics, on_ready=served.set_result, config=config)
            )
            try:
                base = await asyncio.wait_for(served, 30)
                await until_events(topics, TopicRole.CHANGES_DATAVERSE, lambda ev: len(ev) >= 1)
                await edit(dv, "contacts", contact, "the other table keeps polling")
                await until_events(topics, TopicRole.CHANGES_DATAVERSE, lambda ev: len(ev) >= 2)
                await asyncio.sleep(1.5)  # three re-checks of accounts
                untracked = await read_changes(topics, TopicRole.CHANGES_DATAVERSE)
                async with httpx.AsyncClient(base_url=base) as http:
                    not_ready = await http.get("/readyz")
                    gauge = sample(metrics, "cdc_dataverse_change_tracking_enabled", table="accounts")
                    assert not running.done()
                    await enable_change_tracking(settings, ["accounts"])  # `cdc provision --dataverse`
                    await until_events(topics, TopicRole.CHANGES_DATAVERSE, lambda ev: len(ev) >= 5)
                    await until(
                        lambda: (
                            sample(metrics, "cdc_dataverse_change_tracking_enabled", table="accounts") == 1
                        )
                    )
                    ready = await http.get("/readyz")
            finally:
                stop.set()

    assert [e.object_type for e in untracked] == ["contact", "contact"]
    assert not_ready.status_code == 503
    assert "change tracking is not enabled on accounts" in not_ready.json()["status"]
    assert gauge == 0
    assert ready.status_code == 200, ready.text
    errors = [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("cdc")
    ]
    assert len(errors) == 1, errors
    assert "dataverse accounts: change tracking is not enabled on table 'account'" in errors[0]
    assert "cdc provision --dataverse" in errors[0]
    events = await read_changes(topics, TopicRole.CHANGES_DATAVERSE)
    assert sorted(e.object_id for e in events if e.object_type == "account") == sorted(accounts)


def _config_file(config: SyncConfig, tmp_path: Path) -> Path:
    path = tmp_path / "sync.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True)))
    return path


async def test_lead_steps_make_cdc_poll_poll_leads_with_no_table_setting(
    topics: KafkaSettings, tmp_path: Path
) -> None:
    """`cdc poll` reads the sync configuration `cdc sync` runs (CDC_SYNC__CONFIG): lead steps poll leads."""
    poll = PollSettings(port=0, dataverse_interval_s=0.2, hubspot_objects=())
    async with run_sandbox(seed=46) as box, dataverse_admin(box) as dv:
        [lead] = await seed_rows(dv, "leads", 1)
        settings = box.daemon_settings(topics, poll=poll)
        await enable_change_tracking(settings, ["leads"])
        env = poll_env(settings)
        del env["CDC_POLL__DATAVERSE_TABLES"]
        env["CDC_SYNC__CONFIG"] = str(_config_file(enabled_only(*LEAD_STEPS), tmp_path))
        log_file = tmp_path / "poll.log"
        with log_file.open("wb") as log_out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cdc", "poll", env=env, stderr=log_out
            )
        try:
            events = await until_events(
                topics,
                TopicRole.CHANGES_DATAVERSE,
                lambda ev: any(e.object_id == lead for e in ev),
                within=45,
            )
        except TimeoutError:
            raise AssertionError(f"no lead event; cdc poll said:\n{log_file.read_text()}") from None
        finally:
            process.terminate()
            await process.wait()
    assert [(e.object_type, e.object_id) for e in events] == [("lead", lead)]


async def test_a_table_setting_that_leaves_out_a_synced_table_stops_cdc_poll_at_start(tmp_path: Path) -> None:
    """An explicit poll.dataverse_tables must name every table an enabled step syncs: exit 78, one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDC_")}
    env |= {
        "CDC_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "CDC_DATAVERSE__BASE_URL": "https://org.example.crm.dynamics.com",
        "CDC_SYNC__CONFIG": str(_config_file(enabled_only(*LEAD_STEPS), tmp_path)),
        "CDC_POLL__DATAVERSE_TABLES": '["contacts"]',
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdc", "poll", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    lines = err.decode().strip().splitlines()
    assert process.returncode == 78, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("cdc: error: poll.dataverse_tables (CDC_POLL__DATAVERSE_TABLES) leaves out")
    assert "'lead' (enabled steps l1_hubspot_contacts_to_leads, l2_leads_to_hubspot_contacts)" in lines[0]


MEANWHILE = "Changed while revoked"


@dataclass
class Polling:
    """`cdc poll` running on contacts of both CRMs, each side's first event published."""

    box: Sandbox
    hub: httpx.AsyncClient
    """The HubSpot sandbox's admin API."""
    dv: httpx.AsyncClient
    """The Dataverse sandbox's admin API."""
    row: str
    contact: str
    metrics: Metrics
    base: str
    """`cdc poll`'s probes and metrics."""
    running: asyncio.Task[None]


@contextlib.asynccontextmanager
async def polling_contacts(topics: KafkaSettings, *, seed: int) -> AsyncIterator[Polling]:
    """One Dataverse row and one HubSpot contact, `cdc poll` following both (fast auth backoff set by the
    caller), until the block ends."""
    metrics = Metrics(CollectorRegistry())
    poll = PollSettings(
        port=0,
        dataverse_tables=("contacts",),
        dataverse_interval_s=0.2,
        hubspot_objects=("contacts",),
        hubspot_interval_s=0.3,
        hubspot_lookback_s=30,
    )
    async with run_sandbox(seed=seed) as box, dataverse_admin(box) as dv:
        [row] = await seed_rows(dv, "contacts", 1)
        async with httpx.AsyncClient(base_url=f"{box.info.hubspot.base_url}/_admin") as hub:
            answer = await hub.post("/seed", json={"contacts": [{"email": "ada@example.com"}]})
            [contact] = answer.json()["contacts"]
            settings = box.daemon_settings(topics, poll=poll)
            await enable_change_tracking(settings, ["contacts"])
            stop = asyncio.Event()
            served: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            async with asyncio.TaskGroup() as tasks:
                running = tasks.create_task(
                    run_poll(settings, stop, metrics=metrics, on_ready=served.set_result, config=CONTACTS)
                )
                try:
                    base = await asyncio.wait_for(served, 30)
                    await until_events(topics, TopicRole.CHANGES_DATAVERSE, lambda ev: len(ev) >= 1)
                    await until_events(topics, TopicRole.CHANGES_HUBSPOT, lambda ev: len(ev) >= 1)
                    yield Polling(box, hub, dv, row, contact, metrics, base, running)
                finally:
                    stop.set()


async def test_a_revoked_hubspot_token_pauses_hubspot_only_and_nothing_is_lost_once_it_works_again(
    topics: KafkaSettings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HubSpot token is revoked while `cdc poll` runs (an admin uninstalled the app or rotated its
    token), for long enough that the reconciler is refused several times. The process stays up, Dataverse
    changes keep flowing, ``/readyz`` and ``cdc_poll_auth_failing`` name HubSpot, one error line says so
    (not one per retry); once the token works again, the HubSpot change made meanwhile is published."""
    monkeypatch.setattr("cdc.sources.auth_pause.AUTH_POLICY", FAST_AUTH)
    caplog.set_level(logging.INFO, logger="cdc")
    refused_calls = {"system": "hubspot", "endpoint": endpoints().search.label, "status": "401"}
    async with polling_contacts(topics, seed=47) as polling:
        box, hub, dv, metrics = polling.box, polling.hub, polling.dv, polling.metrics
        row, contact, base, running = polling.row, polling.contact, polling.base, polling.running
        assert (await hub.post("/token/revoke")).status_code == 200
        revoked = time.monotonic()
        await until(lambda: sample(metrics, "cdc_poll_auth_failing", system="hubspot") == 1)
        answer = await hub.patch(
            f"/objects/contacts/{contact}", json={"properties": {"firstname": MEANWHILE}}
        )
        assert answer.status_code == 200, answer.text
        await edit(dv, "contacts", row, "while hubspot refuses the token")
        dataverse = await until_events(topics, TopicRole.CHANGES_DATAVERSE, lambda ev: len(ev) >= 2)
        # Revoked for a while: the reconciler is refused again and again, with backoff.
        await until(lambda: sample(metrics, "cdc_api_requests_total", **refused_calls) >= 6)
        async with httpx.AsyncClient(base_url=base) as http:
            not_ready = await http.get("/readyz")
            alive = await http.get("/healthz")
            assert not running.done()
            published_while_revoked = await read_changes(topics, TopicRole.CHANGES_HUBSPOT)
            refused_for = time.monotonic() - revoked

            assert (await hub.post("/token/restore")).status_code == 200
            restored = time.monotonic()
            hubspot = await until_events(
                topics,
                TopicRole.CHANGES_HUBSPOT,
                lambda ev: any(e.record and e.record.get("firstname") == MEANWHILE for e in ev),
            )
            resumed_in = time.monotonic() - restored
            await until(lambda: sample(metrics, "cdc_poll_auth_failing", system="hubspot") == 0)
            ready = await http.get("/readyz")

    assert dataverse[1].record is not None
    assert dataverse[1].record["description"] == "while hubspot refuses the token"
    assert not [e for e in published_while_revoked if e.record and e.record.get("firstname")]
    assert [e.object_id for e in hubspot if e.record and e.record.get("firstname")] == [contact]
    assert sample(metrics, "cdc_poll_auth_failing", system="dataverse") == 0
    assert not_ready.status_code == 503
    assert "hubspot refuses the credentials" in not_ready.json()["status"]
    assert alive.status_code == 200
    assert ready.status_code == 200, ready.text
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("cdc")]
    refusals = [text for level, text in lines if "refuses the credentials" in text]
    assert len(refusals) == 1, refusals  # once per change of state, not per retry
    assert [level for level, text in lines if "refuses the credentials" in text] == [logging.ERROR]
    assert len([text for _, text in lines if "accepts the credentials again" in text]) == 1
    assert box.info.hubspot.token not in caplog.text
    searches = sample(metrics, "cdc_api_requests_total", **refused_calls)
    print(  # shown with -s
        f"\nhubspot refused for {refused_for:.1f}s ({searches:.0f} refused searches); the change made "
        f"meanwhile was published {resumed_in:.2f}s after the restore"
    )


async def test_a_hubspot_token_refused_at_start_still_stops_cdc_poll(topics: KafkaSettings) -> None:
    """Refused before any success, the token is a settings error: run_poll raises (`cdc poll` exits 78)."""
    poll = PollSettings(port=0, dataverse_interval_s=0.2, hubspot_objects=("contacts",))
    async with run_sandbox(seed=48) as box:
        settings = box.daemon_settings(topics, poll=poll, hubspot_auth="static")
        wrong = settings.model_copy(
            update={"hubspot": settings.hubspot.model_copy(update={"token": SecretStr("pat-na1-wrong")})}
        )
        with pytest.raises(HubSpotFatalError, match=r"401.*CDC_HUBSPOT__TOKEN") as caught:
            await asyncio.wait_for(
                run_poll(wrong, asyncio.Event(), metrics=Metrics(CollectorRegistry()), config=CONTACTS), 60
            )
    assert "pat-na1-wrong" not in str(caught.value)


async def test_an_oauth_refresh_token_refused_at_start_stops_cdc_poll_saying_what_to_do(
    topics: KafkaSettings,
) -> None:
    """Issue 15: the app's refresh token no longer works when `cdc poll` starts (the app was uninstalled):
    a settings error that names the setting to renew, not a pause that looks like an outage."""
    poll = PollSettings(port=0, dataverse_interval_s=0.2, hubspot_objects=("contacts",))
    async with run_sandbox(seed=48) as box, httpx.AsyncClient(base_url=box.info.hubspot.base_url) as hub:
        await hub.post("/_admin/oauth/revoke", json={})
        settings = box.daemon_settings(topics, poll=poll)
        with pytest.raises(
            CredentialsRefusedError, match=r"BAD_REFRESH_TOKEN.*CDC_HUBSPOT__AUTH__REFRESH_TOKEN"
        ):
            await asyncio.wait_for(
                run_poll(settings, asyncio.Event(), metrics=Metrics(CollectorRegistry()), config=CONTACTS), 60
            )


async def test_a_revoked_dataverse_secret_pauses_dataverse_only_and_nothing_is_lost_once_it_works_again(
    topics: KafkaSettings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's client secret is deleted while `cdc poll` runs; once msal's access token runs out (the
    sandbox clock jumps an hour), Dataverse answers 401 and the identity provider refuses a new token. The
    process stays up, HubSpot changes keep flowing, and the Dataverse change made meanwhile is published
    once the secret is accepted again."""
    monkeypatch.setattr("cdc.sources.auth_pause.AUTH_POLICY", FAST_AUTH)
    caplog.set_level(logging.INFO, logger="cdc")
    caplog.set_level(logging.DEBUG, logger="cdc.poll.auth")  # last: it sets the capturing handler's level too

    def retries() -> int:
        return sum("credentials still refused" in r.getMessage() for r in caplog.records)

    async with polling_contacts(topics, seed=49) as polling:
        box, hub, dv, metrics = polling.box, polling.hub, polling.dv, polling.metrics
        row, contact, base, running = polling.row, polling.contact, polling.base, polling.running
        assert (await dv.post("/secret/revoke")).status_code == 200
        assert (await dv.post("/clock/advance", json={"seconds": 3600})).status_code == 200
        await until(lambda: sample(metrics, "cdc_poll_auth_failing", system="dataverse") == 1)
        await edit(dv, "contacts", row, MEANWHILE)
        answer = await hub.patch(
            f"/objects/contacts/{contact}", json={"properties": {"firstname": MEANWHILE}}
        )
        assert answer.status_code == 200, answer.text
        hubspot = await until_events(
            topics,
            TopicRole.CHANGES_HUBSPOT,
            lambda ev: any(e.record and e.record.get("firstname") == MEANWHILE for e in ev),
        )
        await until(lambda: retries() >= 4)  # refused for a while, with backoff
        async with httpx.AsyncClient(base_url=base) as http:
            not_ready = await http.get("/readyz")
            assert not running.done()
            published_while_revoked = await read_changes(topics, TopicRole.CHANGES_DATAVERSE)

            assert (await dv.post("/secret/restore")).status_code == 200
            restored = time.monotonic()
            dataverse = await until_events(
                topics,
                TopicRole.CHANGES_DATAVERSE,
                lambda ev: any(e.record and e.record.get("description") == MEANWHILE for e in ev),
            )
            resumed_in = time.monotonic() - restored
            await until(lambda: sample(metrics, "cdc_poll_auth_failing", system="dataverse") == 0)
            ready = await http.get("/readyz")

    assert [e.object_id for e in hubspot if e.record and e.record.get("firstname") == MEANWHILE] == [contact]
    assert not [e for e in published_while_revoked if e.record and e.record.get("description") == MEANWHILE]
    assert [e.object_id for e in dataverse if e.record and e.record.get("description") == MEANWHILE] == [row]
    assert not_ready.status_code == 503
    assert "dataverse refuses the credentials" in not_ready.json()["status"]
    assert ready.status_code == 200, ready.text
    errors = [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("cdc")
    ]
    assert len(errors) == 1, errors  # once per change of state, not per retry
    assert "dataverse refuses the credentials" in errors[0]
    assert "invalid_client" in errors[0]
    assert box.info.dataverse.client_secret not in caplog.text
    print(f"\ndataverse: the change made while refused was published {resumed_in:.2f}s after the restore")
