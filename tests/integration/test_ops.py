"""Operator commands against the real broker: `cdc status`, `replay`, `deadletter`, `explain`.

No CRM is needed: the tests write synthetic change, link, audit and dead-letter records with the codecs
of `streams/`, at chosen partitions and timestamps, then run the CLI as a subprocess and read its output,
its exit code and what it left on the topics.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from cdc.exits import ExitCode
from cdc.ops import StatusReport, Thresholds, problems
from cdc.ops._times import parse_time
from streams.admin import ensure_topics, open_admin
from streams.audit import AUDIT_CODEC, AuditAction, AuditRecord, FieldWrite
from streams.checkpoints import CHECKPOINT_CODEC, Checkpoint, CursorKind
from streams.clients import make_consumer, make_producer
from streams.config import KafkaSettings
from streams.deadletters import DEADLETTER_CODEC, WEBHOOK_STEP, DeadLetter
from streams.events import CHANGE_CODEC, ChangeEvent, Operation, Origin
from streams.keys import RecordRef, SourceSystem
from streams.links import LINK_CODEC, FieldSync, Link, LinkSide, fingerprint
from streams.topics import TopicCatalog, TopicRole

NOW = datetime.now(UTC)


# --- helpers ------------------------------------------------------------------------------------


def cli_env(kafka: KafkaSettings, unique: str) -> dict[str, str]:
    return {
        **os.environ,
        "CDC_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CDC_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "CDC_KAFKA__PARTITIONS": str(kafka.partitions),
        "CDC_SYNC__GROUP_PREFIX": f"g{unique}-",
    }


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdc", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return orjson.loads(result.stdout)


async def ensure(kafka: KafkaSettings) -> TopicCatalog:
    catalog = TopicCatalog.from_settings(kafka)
    async with open_admin(kafka) as admin:
        await ensure_topics(admin, catalog)
    return catalog


def encoded(object_id: str) -> bytes:
    return CHANGE_CODEC.encode(change(object_id, f"{object_id}@x.io"))


def change(object_id: str, email: str) -> ChangeEvent:
    return ChangeEvent(
        source=SourceSystem.HUBSPOT,
        tenant="42",
        object_type="contact",
        object_id=object_id,
        operation=Operation.UPDATE,
        origin=Origin.WEBHOOK,
        changed_properties={"email": email},
        source_event_id=f"e-{object_id}",
        occurred_at=NOW,
        received_at=NOW,
    )


async def produce(
    kafka: KafkaSettings, topic: str, records: Sequence[tuple[int, bytes | None, bytes, datetime]]
) -> None:
    """(partition, key, value, timestamp) each, in order."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        for partition, key, value, at in records:
            await producer.send_and_wait(
                topic, value, key=key, partition=partition, timestamp_ms=int(at.timestamp() * 1000)
            )
    finally:
        await producer.stop()


async def commit(kafka: KafkaSettings, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = make_consumer(kafka, group_id=group)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await consumer.stop()


async def committed(kafka: KafkaSettings, group: str) -> dict[TopicPartition, int]:
    async with open_admin(kafka) as admin:
        raw = await admin.list_consumer_group_offsets(group)
    return {TopicPartition(tp.topic, tp.partition): om.offset for tp, om in raw.items()}


async def read_all(kafka: KafkaSettings, topic: str, partitions: int) -> list[Any]:
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                for messages in (await consumer.getmany(tp, timeout_ms=1_000)).values():
                    out.extend(messages)
        return out
    finally:
        await consumer.stop()


# --- pure parts ---------------------------------------------------------------------------------


def test_times_are_iso_or_relative() -> None:
    assert parse_time("-2h", NOW) == NOW - timedelta(hours=2)
    assert parse_time("-90s", NOW) == NOW - timedelta(seconds=90)
    assert parse_time("2024-05-01T10:00:00", NOW) == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_time("2024-05-01T12:00:00+02:00", NOW) == datetime(2024, 5, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="relative time such as -30m"):
        parse_time("yesterday", NOW)


def test_problems_name_each_threshold_crossed() -> None:
    report = StatusReport(
        at=NOW,
        checkpoints=[{"source": "dataverse", "tenant": "org", "object_type": "accounts", "age_s": 400.0}],
        deadletters={"pending": 2},
    )
    assert problems(report, Thresholds()) == [
        "checkpoint dataverse/org/accounts is 400s old (over 300s): is `cdc poll` running?"
    ]
    assert problems(report, Thresholds(max_checkpoint_age_s=500, fail_on_deadletters=True)) == [
        "2 dead letter(s) pending (see `cdc deadletter list`)"
    ]


# --- status -------------------------------------------------------------------------------------


@pytest.mark.kafka
async def test_status_reports_lag_in_records_and_seconds_and_exits_4_when_behind(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    catalog = await ensure(kafka_settings)
    topic = catalog.name(TopicRole.CHANGES_HUBSPOT)
    now = datetime.now(UTC)  # not the module's NOW: that is as old as the test session
    old, new = now - timedelta(seconds=120), now
    await produce(
        kafka_settings,
        topic,
        [(0, b"k", CHANGE_CODEC.encode(change(str(i), "a@x.io")), old if i < 5 else new) for i in range(8)],
    )
    group = f"g{unique}-sync-route"
    await commit(kafka_settings, group, {TopicPartition(topic, 0): 2})
    env = cli_env(kafka_settings, unique)

    behind = await asyncio.to_thread(run_cli, "status", "--json", env=env)
    assert behind.returncode == ExitCode.UNHEALTHY, behind.stderr
    report = as_json(behind)
    route = next(g for g in report["groups"] if g["name"] == "sync-route")
    p0 = next(p for p in route["partitions"] if p["topic"] == topic and p["partition"] == 0)
    assert (p0["committed"], p0["end"], p0["lag"]) == (2, 8, 6)
    assert 115 <= p0["lag_s"] < 200
    assert route["lag"] == 6
    assert all(p["lag"] == 0 for p in route["partitions"] if p is not p0)
    assert f"group {group} is" in behind.stderr
    assert "6 records waiting, no live members" in behind.stderr

    relaxed = await asyncio.to_thread(run_cli, "status", "--max-lag-s", "1000", env=env)
    assert relaxed.returncode == 0, relaxed.stderr
    assert f"{topic}[0] committed 2 end 8 lag 6" in relaxed.stdout
    assert relaxed.stdout.rstrip().endswith("ok")


@pytest.mark.kafka
async def test_a_group_past_its_last_transactional_record_has_no_lag(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    """A transaction ends with a marker that takes an offset: the end offset is one past the last record,
    and a group that consumed everything would show a lag of 1 forever if offsets alone were compared."""
    catalog = await ensure(kafka_settings)
    topic = catalog.name(TopicRole.CHANGES_DATAVERSE)
    producer = make_producer(kafka_settings, transactional_id=f"status-{unique}")
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(3):
                await producer.send(
                    topic, CHANGE_CODEC.encode(change(str(i), "t@x.io")), key=b"k", partition=0
                )
    finally:
        await producer.stop()
    await commit(kafka_settings, f"g{unique}-sync-route", {TopicPartition(topic, 0): 3})

    answer = await asyncio.to_thread(run_cli, "status", "--json", env=cli_env(kafka_settings, unique))
    route = next(g for g in as_json(answer)["groups"] if g["name"] == "sync-route")
    p0 = next(p for p in route["partitions"] if p["topic"] == topic and p["partition"] == 0)
    assert (p0["committed"], p0["end"], p0["lag"], p0["lag_s"]) == (3, 4, 0, 0.0)
    assert route["lag"] == 0


@pytest.mark.kafka
async def test_status_checks_checkpoint_age_dead_letters_and_counts_links(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    catalog = await ensure(kafka_settings)
    now = datetime.now(UTC)
    checkpoint = Checkpoint(
        source=SourceSystem.DATAVERSE,
        tenant="org.example",
        object_type="accounts",
        kind=CursorKind.DELTA_LINK,
        cursor="https://org.example/api/data/v9.2/accounts?$deltatoken=1",
        updated_at=now - timedelta(seconds=900),
    )
    await produce(
        kafka_settings,
        catalog.name(TopicRole.CHECKPOINTS),
        [(0, checkpoint.key.encode(), CHECKPOINT_CODEC.encode(checkpoint), NOW)],
    )
    letter = dead_letter(catalog, change("7", "x@y.io"), step="contacts", offset=3)
    await produce(
        kafka_settings, catalog.name(TopicRole.DEADLETTER), [(0, b"k", DEADLETTER_CODEC.encode(letter), NOW)]
    )
    waiting = link("2", "a2").model_copy(update={"waiting_for": ("hubspot/p/company/9",)})
    links = [link("1", "a1"), waiting, link("3", "a3", hubspot_type="company", dv_type="account")]
    await produce(
        kafka_settings,
        catalog.name(TopicRole.LINKS),
        [(0, item.key.encode(), LINK_CODEC.encode(item), NOW) for item in links],
    )
    env = cli_env(kafka_settings, unique)

    stale = await asyncio.to_thread(run_cli, "status", "--json", env=env)
    assert stale.returncode == ExitCode.UNHEALTHY
    report = as_json(stale)
    assert report["problems"] == [
        f"checkpoint dataverse/org.example/accounts is {report['checkpoints'][0]['age_s']:.0f}s old "
        "(over 300s): is `cdc poll` running?"
    ]
    assert report["deadletters"]["pending"] == 1
    assert report["deadletters"]["by_step"] == {"contacts": 1}
    assert report["links"] == {
        "total": 3,
        "by_pair": {"company~account": 1, "contact~contact": 2},
        "waiting_for_related": 1,
    }

    fine = await asyncio.to_thread(run_cli, "status", "--max-checkpoint-age-s", "3600", env=env)
    assert fine.returncode == 0, fine.stderr
    assert "dead letters: 1 pending, 0 redriven (contacts=1)" in fine.stdout
    assert (
        "links: 3 (company~account=1, contact~contact=2); 1 with an association waiting for its related "
        "record to sync" in fine.stdout
    )
    strict = await asyncio.to_thread(
        run_cli, "status", "--max-checkpoint-age-s", "3600", "--fail-on-deadletters", env=env
    )
    assert strict.returncode == ExitCode.UNHEALTHY
    assert "1 dead letter(s) pending" in strict.stderr


def test_status_against_an_unreachable_cluster_exits_69() -> None:
    env = {**os.environ, "CDC_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1", "CDC_KAFKA__CONNECT_TIMEOUT_S": "2"}
    result = run_cli("status", env=env)
    assert result.returncode == ExitCode.UNAVAILABLE
    assert "cannot reach Kafka at 127.0.0.1:1" in result.stderr


# --- replay -------------------------------------------------------------------------------------


@pytest.mark.kafka
async def test_replay_by_time_rereads_exactly_the_later_events_and_dry_run_commits_nothing(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    catalog = await ensure(kafka_settings)
    topic = catalog.name(TopicRole.CHANGES_HUBSPOT)
    old, new = NOW - timedelta(hours=1), NOW - timedelta(minutes=10)
    # Partition 0: 3 old, 2 new; partition 1: 1 old, 4 new; partition 2: 2 old.
    layout = [(0, 3, 2), (1, 1, 4), (2, 2, 0)]
    records = []
    for partition, olds, news in layout:
        key = f"p{partition}".encode()
        records += [(partition, key, encoded(f"{partition}-{i}"), old) for i in range(olds)]
        records += [(partition, key, encoded(f"{partition}-n{i}"), new) for i in range(news)]
    await produce(kafka_settings, topic, records)
    group = f"g{unique}-sync-route"
    ends = {TopicPartition(topic, p): olds + news for p, olds, news in layout}
    await commit(kafka_settings, group, ends)
    env = cli_env(kafka_settings, unique)

    dry = await asyncio.to_thread(
        run_cli, "replay", "--group", "sync-route", "--from", "-30m", "--topics", "changes.hubspot",
        "--dry-run", env=env,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert f"group {group} would reset (dry run): 6 events to read" in dry.stdout
    assert f"{topic}[1] 5 -> 1 (end 5): 4 to read" in dry.stdout
    assert await committed(kafka_settings, group) == ends

    done = await asyncio.to_thread(
        run_cli, "replay", "--group", "sync-route", "--from", (NOW - timedelta(minutes=30)).isoformat(),
        "--topics", "changes.hubspot", "--json", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = as_json(done)
    assert plan["committed"] is True
    assert plan["to_read"] == 6
    assert {p["partition"]: p["to_read"] for p in plan["partitions"]} == {0: 2, 1: 4, 2: 0}
    assert await committed(kafka_settings, group) == {
        TopicPartition(topic, 0): 3,
        TopicPartition(topic, 1): 1,
        TopicPartition(topic, 2): 2,
    }

    # The group now re-reads exactly the events after the time, and nothing before it.
    consumer = make_consumer(kafka_settings, topic, group_id=group)
    await consumer.start()
    try:
        seen: list[str] = []
        for _ in range(20):
            batch = await consumer.getmany(timeout_ms=500)
            seen += [CHANGE_CODEC.decode(m.value, _where(m)).object_id for ms in batch.values() for m in ms]
            if len(seen) >= 6:
                break
        await asyncio.sleep(0.3)
        seen += [
            CHANGE_CODEC.decode(m.value, _where(m)).object_id
            for ms in (await consumer.getmany(timeout_ms=300)).values()
            for m in ms
        ]
    finally:
        await consumer.stop()
    assert sorted(seen) == ["0-n0", "0-n1", "1-n0", "1-n1", "1-n2", "1-n3"]


@pytest.mark.kafka
async def test_replay_from_an_offsets_file(kafka_settings: KafkaSettings, unique: str, tmp_path: Any) -> None:
    catalog = await ensure(kafka_settings)
    topic = catalog.name(TopicRole.WORK)
    await produce(kafka_settings, topic, [(1, b"k", b"{}", NOW) for _ in range(5)])
    offsets = tmp_path / "offsets.json"
    offsets.write_bytes(orjson.dumps({topic: {"1": 2}}))
    env = cli_env(kafka_settings, unique)
    result = await asyncio.to_thread(
        run_cli, "replay", "--group", "sync-apply", "--from-offsets", str(offsets), env=env
    )
    assert result.returncode == 0, result.stderr
    assert f"{topic}[1] - -> 2 (end 5): 3 to read" in result.stdout
    assert await committed(kafka_settings, f"g{unique}-sync-apply") == {TopicPartition(topic, 1): 2}

    offsets.write_bytes(orjson.dumps({topic: {"1": 9}}))
    beyond = await asyncio.to_thread(
        run_cli, "replay", "--group", "sync-apply", "--from-offsets", str(offsets), env=env
    )
    assert beyond.returncode == ExitCode.USAGE
    assert "outside what the partition holds (0..5)" in beyond.stderr


@pytest.mark.kafka
async def test_replay_refuses_while_the_group_has_a_live_member_and_names_it(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    catalog = await ensure(kafka_settings)
    topic = catalog.name(TopicRole.CHANGES_HUBSPOT)
    await produce(kafka_settings, topic, [(0, b"k", CHANGE_CODEC.encode(change("1", "a@x")), NOW)])
    group = f"g{unique}-sync-route"
    member = make_consumer(
        kafka_settings.model_copy(update={"client_id": f"replica-{unique}"}), topic, group_id=group
    )
    await member.start()
    try:
        for _ in range(40):
            await member.getmany(timeout_ms=250)
            if member.assignment():
                break
        await member.commit()
        before = await committed(kafka_settings, group)
        env = cli_env(kafka_settings, unique)
        refused = await asyncio.to_thread(
            run_cli, "replay", "--group", "sync-route", "--from", "-1d", env=env
        )
        assert refused.returncode == ExitCode.BUSY
        assert f"group {group} has 1 live member(s)" in refused.stderr
        assert f"client replica-{unique} on 127.0.0.1" in refused.stderr
        assert member._coordinator.member_id in refused.stderr
        assert "stop the `cdc sync` replicas" in refused.stderr
        assert await committed(kafka_settings, group) == before
    finally:
        await member.stop()


def _where(message: Any) -> Any:
    from streams.codec import Position  # noqa: PLC0415 -- only the replay test decodes by hand

    return Position(message.topic, message.partition, message.offset)


# --- dead letters -------------------------------------------------------------------------------


def dead_letter(catalog: TopicCatalog, event: ChangeEvent, *, step: str, offset: int) -> DeadLetter:
    value, encoding = DeadLetter.wrap_value(CHANGE_CODEC.encode(event))
    return DeadLetter(
        topic=catalog.name(TopicRole.CHANGES_HUBSPOT),
        partition=0,
        offset=offset,
        key=event.key,
        value=value,
        value_encoding=encoding,
        step=step,
        error_class="RecordRejectedError",
        error=f"400 invalid email for {event.object_id}",
        failed_at=NOW - timedelta(minutes=5),
    )


@pytest.mark.kafka
async def test_deadletters_list_show_and_redrive_each_once(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    catalog = await ensure(kafka_settings)
    events = [change("101", "bad@"), change("202", "worse@")]
    letters = [
        dead_letter(catalog, events[0], step="contacts", offset=11),
        dead_letter(catalog, events[1], step="companies", offset=12),
    ]
    await produce(
        kafka_settings,
        catalog.name(TopicRole.DEADLETTER),
        [(0, (dl.key or "").encode(), DEADLETTER_CODEC.encode(dl), NOW) for dl in letters],
    )
    env = cli_env(kafka_settings, unique)
    changes = catalog.name(TopicRole.CHANGES_HUBSPOT)

    listed = await asyncio.to_thread(run_cli, "deadletter", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    entries = as_json(listed)
    assert [(e["offset"], e["step"], e["status"]) for e in entries] == [
        (0, "contacts", "pending"),
        (1, "companies", "pending"),
    ]
    assert entries[0]["original"] == {"topic": changes, "partition": 0, "offset": 11}
    assert entries[0]["error_class"] == "RecordRejectedError"
    assert "bad@" not in listed.stdout  # no record values in a listing
    only = await asyncio.to_thread(run_cli, "deadletter", "list", "--step", "companies", env=env)
    assert only.stdout.count("\n") == 1
    assert f"{changes}[0]@12 step=companies pending RecordRejectedError: 400 invalid email" in only.stdout

    shown = await asyncio.to_thread(run_cli, "deadletter", "show", "0", "--json", env=env)
    full = as_json(shown)
    assert full["key"] == events[0].key
    assert full["value"]["changed_properties"] == {"email": "bad@"}
    missing = await asyncio.to_thread(run_cli, "deadletter", "show", "99", env=env)
    assert missing.returncode == ExitCode.NOT_FOUND

    first = await asyncio.to_thread(run_cli, "deadletter", "redrive", "0", env=env)
    assert first.returncode == 0, first.stderr
    assert "1 redriven, 0 skipped" in first.stdout
    again = await asyncio.to_thread(run_cli, "deadletter", "redrive", "0", env=env)
    assert again.returncode == 0, again.stderr
    assert "0 redriven, 1 skipped" in again.stdout
    assert "skipped 0: already redriven" in again.stdout

    resent = await read_all(kafka_settings, changes, catalog[TopicRole.CHANGES_HUBSPOT].partitions)
    assert [(m.key, m.value) for m in resent] == [(events[0].key.encode(), CHANGE_CODEC.encode(events[0]))]

    rest = await asyncio.to_thread(run_cli, "deadletter", "redrive", "--all", "--json", env=env)
    outcome = as_json(rest)
    assert [e["id"] for e in outcome["redriven"]] == ["1"]
    assert [s["id"] for s in outcome["skipped"]] == ["0"]
    assert "redriven 1/1" in rest.stderr
    resent = await read_all(kafka_settings, changes, catalog[TopicRole.CHANGES_HUBSPOT].partitions)
    assert sorted(m.key for m in resent) == sorted(e.key.encode() for e in events)

    after = as_json(await asyncio.to_thread(run_cli, "deadletter", "list", "--json", env=env))
    assert [e["status"] for e in after] == ["redriven", "redriven"]
    assert after[0]["redriven"]["topic"] == changes
    healthy = await asyncio.to_thread(run_cli, "status", "--fail-on-deadletters", "--json", env=env)
    assert as_json(healthy)["deadletters"]["pending"] == 0
    assert healthy.returncode == 0, healthy.stderr


@pytest.mark.kafka
async def test_an_unreadable_webhook_event_is_kept_not_redriven(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    """The receiver dead-letters a HubSpot event it cannot read (it never was a change event): redrive
    skips it with the reason, and puts nothing on the changes topic, where the router would refuse it."""
    catalog = await ensure(kafka_settings)
    changes = catalog.name(TopicRole.CHANGES_HUBSPOT)
    raw, encoding = DeadLetter.wrap_value(b'{"eventId": 1, "occurredAt": 99999999999999999}')
    letter = DeadLetter(
        topic=changes,
        partition=0,
        offset=0,
        value=raw,
        value_encoding=encoding,
        step=WEBHOOK_STEP,
        error_class="WebhookEventError",
        error="occurredAt is past year 9999",
        failed_at=NOW,
    )
    await produce(
        kafka_settings, catalog.name(TopicRole.DEADLETTER), [(0, b"", DEADLETTER_CODEC.encode(letter), NOW)]
    )
    env = cli_env(kafka_settings, unique)
    redriven = await asyncio.to_thread(run_cli, "deadletter", "redrive", "--all", env=env)
    assert redriven.returncode == 0, redriven.stderr
    assert "0 redriven, 1 skipped" in redriven.stdout
    assert "a HubSpot webhook event the receiver could not read" in redriven.stdout
    assert await read_all(kafka_settings, changes, catalog[TopicRole.CHANGES_HUBSPOT].partitions) == []


# --- explain ------------------------------------------------------------------------------------


def link(
    hubspot_id: str, dataverse_id: str, *, hubspot_type: str = "contact", dv_type: str = "contact"
) -> Link:
    synced = FieldSync(fingerprint=fingerprint("a@x.io"), synced_at=NOW - timedelta(minutes=3))
    return Link(
        link_id=f"L{hubspot_id}",
        hubspot=LinkSide(
            system=SourceSystem.HUBSPOT,
            tenant="42",
            object_type=hubspot_type,
            object_id=hubspot_id,
            fields={"email": synced},
        ),
        dataverse=LinkSide(
            system=SourceSystem.DATAVERSE,
            tenant="org.example",
            object_type=dv_type,
            object_id=dataverse_id,
            fields={"emailaddress1": synced},
            version="9001",
        ),
        revision=3,
        created_at=NOW - timedelta(hours=1),
        updated_at=NOW - timedelta(minutes=3),
    )


def audit(
    source: RecordRef, target: RecordRef, field: str, old: str, new: str, *, at: datetime
) -> AuditRecord:
    return AuditRecord(
        step="hubspot-contacts-to-dataverse" if source.system is SourceSystem.HUBSPOT else "dv-contacts",
        action=AuditAction.UPDATE,
        source=source,
        target=target,
        fields=(FieldWrite(field=field, old=old, new=new, rule="one_side_changed"),),
        source_event_ids=(f"ev-{new}",),
        at=at,
    )


@pytest.mark.kafka
async def test_explain_prints_one_records_link_and_history_and_nothing_of_others(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    catalog = await ensure(kafka_settings)
    mine, other = link("51", "dv-51"), link("77", "dv-77")
    mine = mine.model_copy(update={"waiting_for": ("hubspot/42/company/9",)})
    await produce(
        kafka_settings,
        catalog.name(TopicRole.LINKS),
        [(p, item.key.encode(), LINK_CODEC.encode(item), NOW) for p, item in ((0, mine), (1, other))],
    )
    hub, dv = mine.hubspot.ref, mine.dataverse.ref
    records = [
        # Newest first on the wire, on two partitions: explain sorts them by time.
        (1, audit(dv, hub, "email", "b@x.io", "c@x.io", at=NOW - timedelta(minutes=1))),
        (0, audit(hub, dv, "emailaddress1", "a@x.io", "b@x.io", at=NOW - timedelta(minutes=2))),
        (2, audit(other.hubspot.ref, other.dataverse.ref, "emailaddress1", "q@x.io", "z@x.io", at=NOW)),
    ]
    await produce(
        kafka_settings,
        catalog.name(TopicRole.AUDIT),
        [(p, record.key.encode(), AUDIT_CODEC.encode(record), NOW) for p, record in records],
    )
    env = cli_env(kafka_settings, unique)

    text = await asyncio.to_thread(run_cli, "explain", "hubspot", "contact", "51", env=env)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "link L51 revision 3" in out
    assert "hubspot/42/contact/51" in out
    assert "dataverse/org.example/contact/dv-51 version 9001" in out
    assert f"emailaddress1{' ' * 15} {fingerprint('a@x.io')}" in out
    assert "waiting for hubspot/42/company/9 to sync (an association to write)" in out
    assert "audit: 2 record(s), oldest first" in out
    assert out.index("'a@x.io' -> 'b@x.io' [one_side_changed]") < out.index("'b@x.io' -> 'c@x.io'")
    assert "events: ev-b@x.io" in out
    assert "contact/77" not in out  # the other record (not "77", which a timestamp may hold)
    assert "dv-77" not in out
    assert "z@x.io" not in out

    by_target = as_json(
        await asyncio.to_thread(run_cli, "explain", "dataverse", "contact", "dv-51", "--json", env=env)
    )
    assert [item["link_id"] for item in by_target["links"]] == ["L51"]
    assert [item["fields"][0]["new"] for item in by_target["audit"]] == ["b@x.io", "c@x.io"]

    unknown = await asyncio.to_thread(run_cli, "explain", "hubspot", "contact", "999", env=env)
    assert unknown.returncode == ExitCode.NOT_FOUND
    assert "no link and no audit record for hubspot/*/contact/999" in unknown.stderr
