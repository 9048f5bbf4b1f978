"""`cdc deadletter list|show|redrive`: the `deadletter` topic as an operator's work queue.

A dead letter is named by its offset on the deadletter topic (``P:O`` when that topic has more than one
partition). Redriving re-publishes the original value, key preserved, to its original topic, and writes a
:class:`~streams.deadletters.Redrive` marker on the deadletter topic in the same Kafka transaction: the
message is re-sent once, and `list` shows the letter as redriven. When the re-published message fails
again, its new dead letter points at the re-published position and `list` shows the first as failed again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

from cdc.exits import CliError, ExitCode
from cdc.ops._kafka import Raw, scan, start_client
from streams.clients import make_producer
from streams.codec import Position, SchemaError
from streams.config import KafkaSettings
from streams.deadletters import REDRIVE_CODEC, WEBHOOK_STEP, DeadLetter, Redrive, decode_deadletter_topic
from streams.topics import TopicCatalog, TopicRole

__all__ = [
    "DeadLetterBook",
    "Letter",
    "RedriveReport",
    "load_book",
    "parse_letter_id",
    "redrive",
]

REDRIVE_CHUNK = 100
"""Letters per transaction: a crash loses at most one uncommitted chunk, which the next run re-sends."""
REDRIVE_HEADER = "cdc-redriven-from"


def parse_letter_id(text: str) -> tuple[int, int]:
    """``O`` (partition 0) or ``P:O`` -> (partition, offset)."""
    partition, _, offset = text.rpartition(":")
    try:
        return (int(partition) if partition else 0), int(offset)
    except ValueError:
        raise ValueError(f"not a dead-letter offset: {text!r} (use OFFSET or PARTITION:OFFSET)") from None


@dataclass
class Letter:
    """One dead letter, where it sits on the deadletter topic, and what became of it."""

    partition: int
    offset: int
    letter: DeadLetter
    redrive: Redrive | None = None
    failed_again: tuple[int, int] | None = None
    """The dead letter of the re-published message, when the redrive failed too."""

    @property
    def ident(self) -> str:
        return str(self.offset) if self.partition == 0 else f"{self.partition}:{self.offset}"

    @property
    def status(self) -> str:
        if self.redrive is None:
            return "pending"
        return "failed_again" if self.failed_again is not None else "redriven"

    @property
    def original(self) -> str:
        return str(Position(self.letter.topic, self.letter.partition, self.letter.offset))

    def summary_json(self) -> dict[str, Any]:
        """What `list` prints: where, when, why; never the record's values."""
        letter = self.letter
        out: dict[str, Any] = {
            "id": self.ident,
            "partition": self.partition,
            "offset": self.offset,
            "failed_at": letter.failed_at.isoformat(),
            "original": {"topic": letter.topic, "partition": letter.partition, "offset": letter.offset},
            "step": letter.step,
            "error_class": letter.error_class,
            "error": letter.error,
            "attempts": letter.attempts,
            "status": self.status,
        }
        if self.redrive is not None:
            out["redriven"] = {
                "topic": self.redrive.topic,
                "partition": self.redrive.partition,
                "offset": self.redrive.offset,
                "at": self.redrive.redriven_at.isoformat(),
            }
        if self.failed_again is not None:
            out["failed_again"] = f"{self.failed_again[0]}:{self.failed_again[1]}"
        return out

    def full_json(self) -> dict[str, Any]:
        """What `show` prints: the summary, the key and the original value (parsed when it is JSON)."""
        out = self.summary_json()
        out["key"] = self.letter.key
        raw = self.letter.original_value()
        out["value_encoding"] = self.letter.value_encoding
        if raw is None:
            out["value"] = None
        else:
            try:
                out["value"] = orjson.loads(raw)
            except orjson.JSONDecodeError:
                out["value"] = self.letter.value
        return out


@dataclass
class DeadLetterBook:
    """Every dead letter on the topic, with its redrive markers applied; oldest first."""

    topic: str
    letters: list[Letter] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def find(self, partition: int, offset: int) -> Letter | None:
        for letter in self.letters:
            if (letter.partition, letter.offset) == (partition, offset):
                return letter
        return None

    def select(self, *, step: str | None = None, since: datetime | None = None) -> list[Letter]:
        return [
            entry
            for entry in self.letters
            if (step is None or entry.letter.step == step)
            and (since is None or entry.letter.failed_at >= since)
        ]

    def depth(self) -> dict[str, Any]:
        """Counts for `cdc status`: pending letters (also per step; ``-`` when no step was chosen)."""
        pending = [entry for entry in self.letters if entry.status != "redriven"]
        by_step: dict[str, int] = {}
        for entry in pending:
            step = entry.letter.step or "-"
            by_step[step] = by_step.get(step, 0) + 1
        return {
            "total": len(self.letters),
            "pending": len(pending),
            "redriven": len(self.letters) - len(pending),
            "by_step": dict(sorted(by_step.items())),
            "unreadable": len(self.unreadable),
        }


async def load_book(kafka: KafkaSettings, *, since: datetime | None = None) -> DeadLetterBook:
    """Read the deadletter topic (from ``since`` when given) and pair letters with their markers."""
    topic = TopicCatalog.from_settings(kafka).name(TopicRole.DEADLETTER)
    book = DeadLetterBook(topic)
    markers: list[Redrive] = []

    def take(message: Raw) -> None:
        where = Position(message.topic, message.partition, message.offset)
        try:
            record = decode_deadletter_topic(message.value, message.headers, where)
        except SchemaError as error:
            book.unreadable.append(str(error))
            return
        if isinstance(record, Redrive):
            markers.append(record)
        else:
            book.letters.append(Letter(message.partition, message.offset, record))

    await scan(kafka, topic, take, since=since)
    by_position = {(e.letter.topic, e.letter.partition, e.letter.offset): e for e in book.letters}
    for marker in markers:
        found = book.find(marker.deadletter_partition, marker.deadletter_offset)
        if found is not None and found.redrive is None:
            found.redrive = marker
    for entry in book.letters:
        if entry.redrive is not None:
            again = by_position.get((entry.redrive.topic, entry.redrive.partition, entry.redrive.offset))
            if again is not None:
                entry.failed_again = (again.partition, again.offset)
    return book


@dataclass
class RedriveReport:
    redriven: list[Letter] = field(default_factory=list)
    skipped: list[tuple[Letter, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "redriven": [entry.summary_json() for entry in self.redriven],
            "skipped": [{"id": entry.ident, "reason": reason} for entry, reason in self.skipped],
        }


async def redrive(
    kafka: KafkaSettings,
    *,
    ids: Sequence[tuple[int, int]] = (),
    step: str | None = None,
    since: datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> RedriveReport:
    """Re-publish pending dead letters (``ids``, else all that match ``step``/``since``), each once.

    In this order:
    1. start a transactional producer whose id is the same for every redrive: starting it fences an
       earlier redrive still running and aborts its open transaction;
    2. only then read the deadletter topic, so the redrive markers seen are final;
    3. per chunk, in one transaction: the original values to their topics, then one marker per letter
       naming where its value went; commit.
    """
    topic = TopicCatalog.from_settings(kafka).name(TopicRole.DEADLETTER)
    producer = make_producer(kafka, transactional_id=f"{kafka.topic_prefix}deadletter-redrive")
    await start_client(producer, kafka)
    try:
        book = await load_book(kafka)
        report, chosen = _choose(book, ids, step=step, since=since)
        if dry_run or not chosen:
            report.redriven = chosen
            return report
        done = 0
        for start in range(0, len(chosen), REDRIVE_CHUNK):
            chunk = chosen[start : start + REDRIVE_CHUNK]
            await _redrive_chunk(producer, topic, chunk)
            report.redriven.extend(chunk)
            done += len(chunk)
            progress(done, len(chosen))
    except (ProducerFenced, InvalidProducerEpoch):
        raise CliError(
            "another `cdc deadletter redrive` started and took over; this one stopped (what it committed "
            "stays redriven, the rest is left to the other run)",
            ExitCode.BUSY,
        ) from None
    finally:
        await producer.stop()
    return report


WEBHOOK_NOT_REDRIVEN = (
    "a HubSpot webhook event the receiver could not read: kept to be read, not redriven (it would be "
    "refused again); the reconciler reads the record itself, or `cdc resync` does"
)


def _choose(
    book: DeadLetterBook, ids: Iterable[tuple[int, int]], *, step: str | None, since: datetime | None
) -> tuple[RedriveReport, list[Letter]]:
    report = RedriveReport()
    wanted = list(ids)
    if wanted:
        candidates = []
        for partition, offset in wanted:
            found = book.find(partition, offset)
            if found is None:
                raise CliError(
                    f"no dead letter at {book.topic}[{partition}]@{offset} (see `cdc deadletter list`)",
                    ExitCode.NOT_FOUND,
                )
            candidates.append(found)
        candidates = [c for c in candidates if c in book.select(step=step, since=since)]
    else:
        candidates = book.select(step=step, since=since)
    chosen = []
    for entry in candidates:
        if entry.redrive is not None:
            report.skipped.append((entry, f"already redriven at {entry.redrive.redriven_at.isoformat()}"))
        elif entry.letter.step == WEBHOOK_STEP:
            report.skipped.append((entry, WEBHOOK_NOT_REDRIVEN))
        else:
            chosen.append(entry)
    return report, chosen


async def _redrive_chunk(producer: AIOKafkaProducer, topic: str, chunk: Sequence[Letter]) -> None:
    async with producer.transaction():
        sent = [
            await producer.send(
                entry.letter.topic,
                entry.letter.original_value(),
                key=entry.letter.key.encode() if entry.letter.key is not None else None,
                headers=[(REDRIVE_HEADER, f"{topic}[{entry.partition}]@{entry.offset}".encode())],
            )
            for entry in chunk
        ]
        at = datetime.now(UTC)
        for entry, future in zip(chunk, sent, strict=True):
            metadata = await future
            marker = Redrive(
                deadletter_partition=entry.partition,
                deadletter_offset=entry.offset,
                topic=metadata.topic,
                partition=metadata.partition,
                offset=metadata.offset,
                redriven_at=at,
            )
            entry.redrive = marker
            await producer.send(
                topic,
                REDRIVE_CODEC.encode(marker),
                key=(entry.letter.key or "").encode(),
                partition=entry.partition,
                headers=[REDRIVE_CODEC.header],
            )
