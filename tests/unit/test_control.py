"""The control topic's state without Kafka: what a replica takes from each record, what `cdc pause` says,
and when `cdc status` warns that waiting changes near their topic's retention."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from cdc.ops.pauses import Change, TopicWait, render_pauses, retention_warnings, topic_waits
from cdc.ops.status import PartitionLag, StatusReport, Thresholds, problems, render
from consumers.loader import load_config
from streams.config import KafkaSettings
from streams.control import CONTROL_CODEC, EVERYTHING, Pause, Pauses, _apply, hold
from streams.topics import DAY_MS, TopicCatalog

AT = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)


def pause(target: str, *, paused: bool = True, reason: str | None = "CRM maintenance") -> Pause:
    return Pause(target=target, paused=paused, by="ana", at=AT, reason=reason)


def message(key: str, value: bytes | None, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t.control",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key.encode(),
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value or b""),
        headers=(),
    )


def test_a_pause_then_a_resume_or_a_tombstone() -> None:
    pauses = _apply(Pauses(), message("*", CONTROL_CODEC.encode(pause(EVERYTHING))))
    assert pauses.everything is not None
    assert pauses.everything.by == "ana"
    resumed = _apply(pauses, message("*", CONTROL_CODEC.encode(pause(EVERYTHING, paused=False))))
    assert resumed.everything is None
    assert resumed.active == {}
    assert resumed.latest["*"].by == "ana"  # who resumed is kept
    assert _apply(pauses, message("*", None)).everything is None


def test_a_step_pause_is_not_a_pause_of_everything() -> None:
    pauses = _apply(Pauses(), message("s2", CONTROL_CODEC.encode(pause("s2"))))
    assert pauses.everything is None
    assert pauses.steps() == {"s2"}


def test_an_unreadable_control_record_changes_nothing() -> None:
    pauses = _apply(Pauses(), message("s2", CONTROL_CODEC.encode(pause("s2"))))
    assert _apply(pauses, message("s2", b"{not json")) == pauses
    assert _apply(pauses, message("s2", b'{"target": "s2"}')) == pauses


def test_what_cdc_pause_and_paused_say() -> None:
    config = load_config()
    step = Change(
        "s2_contacts_to_contacts", pause("s2_contacts_to_contacts"), None, frozenset({"contact~contact"})
    )
    assert "contact~contact park in order" in step.message()
    again = Change(EVERYTHING, None, pause(EVERYTHING), frozenset())
    assert again.message() == "everything is paused already, by ana since 2026-12-06T21:00:00+00:00"
    assert Change("s1", None, None, frozenset()).message() == "step s1 is not paused: nothing to resume"
    lines = render_pauses(Pauses({"s2_contacts_to_contacts": pause("s2_contacts_to_contacts")}), config)
    assert lines == [
        "paused: step s2_contacts_to_contacts (holds contact~contact), by ana since "
        "2026-12-06T21:00:00+00:00: CRM maintenance"
    ]
    assert render_pauses(Pauses(), config) == ["paused: nothing"]


def test_status_warns_past_half_the_retention() -> None:
    catalog = TopicCatalog.from_settings(KafkaSettings(topic_prefix="t."))
    day = DAY_MS / 1000
    waits = topic_waits(
        [
            ("t.changes.hubspot", 6 * day),
            ("t.changes.hubspot", 8 * day),
            ("t.sync.work", 1.0),
            ("t.links", 9e9),
        ],
        catalog,
    )
    assert waits == [
        TopicWait("t.changes.hubspot", 8 * day, 14 * day),
        TopicWait("t.sync.work", 1.0, 7 * day),
    ]
    (warning,) = retention_warnings(waits)
    assert warning.startswith(
        "oldest waiting change on t.changes.hubspot: 8.0d old, 57% of its 14.0d retention"
    )
    assert retention_warnings(topic_waits([("t.changes.hubspot", 6 * day)], catalog)) == []


def test_resuming_everything_says_which_steps_stay_paused() -> None:
    change = Change(EVERYTHING, pause(EVERYTHING, paused=False), pause(EVERYTHING), frozenset(), ("s2",))
    assert change.message() == "resumed everything; still paused: s2"
    assert Change("l1", pause("l1"), None, frozenset()).message() == (
        "paused step l1, which is not enabled: nothing waits for it"
    )


def test_status_shows_the_pauses_the_parked_items_and_turns_unhealthy_past_half_the_retention() -> None:
    day = DAY_MS / 1000
    now = datetime(2026, 12, 14, 21, 0, tzinfo=UTC)
    report = StatusReport(
        at=now,
        pauses=Pauses({EVERYTHING: pause(EVERYTHING), "s2": pause("s2", reason=None)}),
        parked=(PartitionLag("t.sync.parked", 0, 3, 8, 5, 3600.0),),
        waits=[TopicWait("t.changes.hubspot", 8 * day, 14 * day)],
    )
    lines = render(report)
    assert "paused: everything by ana since 2026-12-06T21:00:00+00:00 (691200s): CRM maintenance" in lines
    assert "paused: step s2 by ana since 2026-12-06T21:00:00+00:00 (691200s)" in lines
    assert "parked: 5 work item(s) of paused steps wait to be replayed" in lines
    assert "oldest waiting change on t.changes.hubspot: 8.0d old, 57% of its 14.0d retention" in lines
    assert problems(report, Thresholds()) == [
        "oldest waiting change on t.changes.hubspot: 8.0d old, 57% of its 14.0d retention: resume or catch "
        "up before it is deleted unapplied"
    ]
    assert report.as_json()["paused"]["*"]["reason"] == "CRM maintenance"
    assert report.as_json()["parked"] == 5


class _Rebalancing:
    """A consumer whose group hands it a partition while it polls, paused: the poll returns that partition's
    records, which nothing paused (aiokafka pauses the partitions assigned when `pause` is called)."""

    def __init__(self) -> None:
        self.assigned = {TopicPartition("t.changes.hubspot", 0)}
        self.paused: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused |= set(partitions)

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        assert timeout_ms > 0  # a poll that waits: time for a rebalance to end during it
        new = TopicPartition("t.changes.hubspot", 1)
        self.assigned.add(new)  # the rebalance ends during the poll
        self.positions[new] = 12  # the fetch moved the position past what it returned
        return {new: [ConsumerRecord(new.topic, 1, 10, 0, 0, b"k", b"v", None, 1, 1, []),
                      ConsumerRecord(new.topic, 1, 11, 0, 0, b"k", b"v", None, 1, 1, [])]}  # fmt: skip

    async def committed(self, tp: TopicPartition) -> int | None:
        return 10 if tp.partition == 1 else None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset


async def test_changes_polled_while_everything_is_paused_are_read_again_not_skipped() -> None:
    """Seen in CI: a replica joining during a pause of everything; the changes made meanwhile were never
    applied after the resume, because the paused loop's poll returned them and dropped them."""
    consumer = _Rebalancing()
    await hold(consumer)  # type: ignore[arg-type,unused-ignore]  # the calls hold makes of a consumer
    assert consumer.positions[TopicPartition("t.changes.hubspot", 1)] == 10
