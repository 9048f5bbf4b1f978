"""`cdc pause`, `cdc resume`, `cdc paused`: the operator's side of the control topic (`streams.control`).

What may be paused is checked against the sync configuration before anything is written
(`consumers.parking.check_target`); pausing what is paused already, or resuming what is not, writes nothing
and says so. How long the waiting changes can wait is judged here too (`retention_warnings`), for
`cdc status` and `cdc paused`.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from consumers.config import SyncConfig
from consumers.parking import check_target, held_pairs
from streams.config import KafkaSettings
from streams.control import EVERYTHING, Pause, Pauses, read_pauses, set_pause
from streams.topics import TopicCatalog

__all__ = [
    "Change",
    "TopicWait",
    "change_pause",
    "default_by",
    "render_pauses",
    "retention_warnings",
    "topic_waits",
]

WARN_AT = 0.5
"""The share of a topic's retention the oldest waiting change may reach before `cdc status` warns."""


def default_by() -> str:
    """Who pauses when ``--by`` is not given: the OS user (``unknown`` where there is none, in a container
    run under a bare uid)."""
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class Change:
    """What `change_pause` did: ``written`` is None when nothing had to change."""

    target: str
    written: Pause | None
    before: Pause | None
    held: frozenset[str]
    """The pairs whose items park while ``target`` (a step) is paused."""
    others: tuple[str, ...] = ()
    """The other targets paused now (after this change)."""

    def message(self) -> str:
        return self._what_happened() + (f"; still paused: {', '.join(self.others)}" if self.others else "")

    def _what_happened(self) -> str:
        what = "everything" if self.target == EVERYTHING else f"step {self.target}"
        if self.written is None:
            before = self.before
            if before is None or not before.paused:
                return f"{what} is not paused: nothing to resume"
            return f"{what} is paused already, by {before.by} since {before.at.isoformat(timespec='seconds')}"
        if not self.written.paused:
            return f"resumed {what}"
        if self.target == EVERYTHING:
            return "paused everything: the sync stops consuming, changes wait in Kafka"
        if not self.held:
            return f"paused {what}, which is not enabled: nothing waits for it"
        return (
            f"paused {what}: work items of {', '.join(sorted(self.held))} park in order until it resumes "
            "(a pair's steps are planned together, so its other steps wait too)"
        )


async def change_pause(
    kafka: KafkaSettings,
    config: SyncConfig,
    target: str | None,
    *,
    paused: bool,
    by: str,
    reason: str | None,
    now: datetime,
) -> Change:
    """Pause or resume ``target`` (None: everything). ValueError, before anything is written, for a
    target the configuration does not know."""
    name = check_target(config, target)
    held = held_pairs(config, [name]) if name != EVERYTHING else frozenset()
    pauses = await read_pauses(kafka)
    before = pauses.latest.get(name)
    others = tuple(target for target in pauses.active if target != name)
    if (before is not None and before.paused) == paused:
        return Change(name, None, before, held, others)
    written = await set_pause(kafka, name, paused=paused, by=by, reason=reason, at=now)
    return Change(name, written, before, held, others)


@dataclass(frozen=True)
class TopicWait:
    """The oldest change still waiting on one topic, against the topic's retention."""

    topic: str
    age_s: float
    retention_s: float

    @property
    def share(self) -> float:
        return self.age_s / self.retention_s if self.retention_s > 0 else 0.0

    def line(self) -> str:
        return (
            f"oldest waiting change on {self.topic}: {_span(self.age_s)} old, {self.share:.0%} of its "
            f"{_span(self.retention_s)} retention"
        )


def topic_waits(ages: Iterable[tuple[str, float | None]], catalog: TopicCatalog) -> list[TopicWait]:
    """Per topic of the catalog with a time retention, the oldest waiting change (``ages``: topic and the
    age of a partition's oldest unconsumed record)."""
    retention = {
        spec.name: int(spec.config["retention.ms"]) / 1000
        for spec in catalog
        if "retention.ms" in spec.config
    }
    oldest: dict[str, float] = {}
    for topic, age in ages:
        if age and topic in retention:
            oldest[topic] = max(oldest.get(topic, 0.0), age)
    return [TopicWait(topic, age, retention[topic]) for topic, age in sorted(oldest.items())]


def retention_warnings(waits: Iterable[TopicWait]) -> list[str]:
    """A sentence per topic whose oldest waiting change passed `WARN_AT` of its retention: past the
    retention Kafka deletes it unapplied."""
    return [
        f"{w.line()}: resume or catch up before it is deleted unapplied" for w in waits if w.share > WARN_AT
    ]


def render_pauses(pauses: Pauses, config: SyncConfig) -> list[str]:
    """What is paused, since when, by whom and why; the pairs a step's pause holds."""
    active = pauses.active
    if not active:
        return ["paused: nothing"]
    lines = []
    for target, p in active.items():
        why = f": {p.reason}" if p.reason else ""
        if target == EVERYTHING:
            lines.append(f"paused: everything, by {p.by} since {p.at.isoformat(timespec='seconds')}{why}")
            continue
        pairs = ", ".join(sorted(held_pairs(config, [target]))) or "none (the step is not enabled)"
        since = p.at.isoformat(timespec="seconds")
        lines.append(f"paused: step {target} (holds {pairs}), by {p.by} since {since}{why}")
    return lines


def _span(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 120:  # noqa: PLR2004 -- two minutes
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"
