"""The demo's live view: every write the sync engine makes, as one line, with its end-to-end latency.

It reads three topics from the start: both change topics (when each source change happened) and ``audit``
(one record per write, made once the target CRM acknowledged it). A write's latency is the audit's time
minus the earliest source change it applied: the changes named by the audit's event ids (HubSpot webhooks
carry ids), else the pending changes of the pair's two records (the Dataverse feed has no event ids).
A change older than the pair's last write is that write's echo and never starts a latency.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from streams.audit import AUDIT_CODEC, AuditAction, AuditRecord, is_operator_key
from streams.clients import make_consumer
from streams.codec import Position, SchemaError
from streams.config import KafkaSettings
from streams.events import CHANGE_CODEC, ChangeEvent
from streams.keys import RecordRef, SourceSystem
from streams.topics import TopicCatalog, TopicRole

__all__ = ["SYSTEM_NAMES", "LiveView", "Written", "percentile"]

Say = Callable[[str], None]
SYSTEM_NAMES = {SourceSystem.HUBSPOT: "HubSpot", SourceSystem.DATAVERSE: "Dataverse"}
MAX_SHOWN_FIELDS = 2
AUDIT_WAIT_S = 1.0
"""How long an audit waits for the change event it applied (another topic may be read later)."""


@dataclass(frozen=True)
class Written:
    """One write acknowledged by a CRM, as the audit tells it."""

    audit: AuditRecord
    latency_s: float | None
    live: bool
    from_edit: bool = False
    """The latency starts at the user's edit (exact), not at the source's change time."""

    @property
    def target(self) -> RecordRef:
        assert self.audit.target is not None  # noqa: S101 -- only audits with a target become writes
        return self.audit.target

    @property
    def direction(self) -> str:
        return f"{SYSTEM_NAMES[self.audit.source.system]} -> {SYSTEM_NAMES[self.target.system]}"


KEY_FIELDS = frozenset({"emailaddress1", "email", "name", "dealname"})
BORING = ("create", "created_on")
"""Fields shown last: creation dates written along with the first real change."""


def _name(field_name: str) -> str:
    """A field for a log line: an association (``@parentaccountid:account``) by its lookup's name."""
    return field_name.removeprefix("@").split(":", 1)[0]


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def short(object_id: str) -> str:
    """A Dataverse GUID shortened for a log line; HubSpot ids are short already."""
    return f"{object_id[:4]}.." if len(object_id) > 12 else object_id  # noqa: PLR2004 -- GUID vs HubSpot id


def quoted(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."  # noqa: PLR2004 -- line width


@dataclass
class LiveView:
    """Reads changes and audits; prints writes when ``live``; keeps what the summary and checks need."""

    kafka: KafkaSettings
    say: Say
    live: bool = False
    writes: list[Written] = field(default_factory=list)
    refusals: list[AuditRecord] = field(default_factory=list)
    _event_times: dict[str, datetime] = field(default_factory=dict)
    _pending: dict[str, datetime] = field(default_factory=dict)
    _floor: dict[str, datetime] = field(default_factory=dict)
    _waiting: list[tuple[float, AuditRecord]] = field(default_factory=list)
    _settled: dict[tuple[str, datetime], datetime] = field(default_factory=dict)
    """(record key, audit time) -> start: a pair's writes to both sides in one settle share a start."""
    changes_seen: int = 0
    new_write: asyncio.Event = field(default_factory=asyncio.Event)
    edit_time: Callable[[AuditRecord], datetime | None] = lambda _: None
    """The demo user's edit this write carries, if any: its time starts the latency."""

    def latencies(self, direction: str) -> list[float]:
        return [
            w.latency_s
            for w in self.writes
            if w.live and w.latency_s is not None and w.direction == direction
        ]

    async def run(self, stop: asyncio.Event) -> None:
        """Read until ``stop`` is set; every message is handled in offset order per partition."""
        catalog = TopicCatalog.from_settings(self.kafka)
        roles = (TopicRole.CHANGES_HUBSPOT, TopicRole.CHANGES_DATAVERSE, TopicRole.AUDIT)
        audit_topic = catalog.name(TopicRole.AUDIT)
        consumer = make_consumer(self.kafka, *(catalog.name(r) for r in roles), group_id=None)
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for messages in batches.values():
                    for message in messages:
                        where = Position(message.topic, message.partition, message.offset)
                        try:
                            if message.topic == audit_topic and is_operator_key(message.key):
                                continue  # a pause or resume (the CLI that did it said so)
                            if message.topic == audit_topic:
                                self._audit(AUDIT_CODEC.decode(message.value, where))
                            else:
                                self._change(CHANGE_CODEC.decode(message.value, where))
                        except SchemaError as error:
                            self.say(f"  (unreadable message skipped: {error})")
                self._flush_waiting(force=False)
        finally:
            self._flush_waiting(force=True)
            await consumer.stop()

    # -- changes ---------------------------------------------------------------------------------------

    def _change(self, event: ChangeEvent) -> None:
        self.changes_seen += 1
        if event.source_event_id:
            self._event_times.setdefault(event.source_event_id, event.occurred_at)
        key = event.key
        floor = self._floor.get(key)
        if floor is not None and event.occurred_at <= floor:
            return  # our own write coming back, or older than the pair's last write
        known = self._pending.get(key)
        if known is None or event.occurred_at < known:
            self._pending[key] = event.occurred_at

    # -- audits ----------------------------------------------------------------------------------------

    def _audit(self, audit: AuditRecord) -> None:
        if audit.action is AuditAction.SKIP:
            self.refusals.append(audit)
            if self.live:
                self.say(
                    f"sync  refused: {SYSTEM_NAMES[audit.source.system]} {audit.source.object_type} "
                    f"{short(audit.source.object_id)} ({audit.step}): {audit.reason}"
                )
            return
        if audit.target is None or audit.action not in {AuditAction.CREATE, AuditAction.UPDATE}:
            return
        if self._started(audit) is None:
            self._waiting.append((asyncio.get_running_loop().time(), audit))
            return
        self._record(audit)

    def _started(self, audit: AuditRecord) -> datetime | None:
        shared = self._settled.get((audit.source.key, audit.at))
        if shared is not None:
            return shared
        by_id = [self._event_times[e] for e in audit.source_event_ids if e in self._event_times]
        if by_id:
            return min(by_id)
        assert audit.target is not None  # noqa: S101 -- checked by the caller
        pending = [self._pending[k] for k in (audit.source.key, audit.target.key) if k in self._pending]
        return min(pending) if pending else None

    def _flush_waiting(self, *, force: bool) -> None:
        if not self._waiting:
            return
        now = asyncio.get_running_loop().time() if not force else float("inf")
        still: list[tuple[float, AuditRecord]] = []
        for since, audit in self._waiting:
            if self._started(audit) is not None or now - since >= AUDIT_WAIT_S:
                self._record(audit)
            else:
                still.append((since, audit))
        self._waiting = still

    def _record(self, audit: AuditRecord) -> None:
        assert audit.target is not None  # noqa: S101 -- only writes get here
        started = self._started(audit)
        edited = self.edit_time(audit) if self.live else None
        begin = edited or started
        latency = None if begin is None else max(0.0, (audit.at - begin).total_seconds())
        for key in (audit.source.key, audit.target.key):
            self._pending.pop(key, None)
            self._floor[key] = max(audit.at, self._floor.get(key, audit.at))
            if started is not None:
                self._settled[(key, audit.at)] = started
        for event_id in audit.source_event_ids:
            self._event_times.pop(event_id, None)
        written = Written(audit, latency, self.live, from_edit=edited is not None)
        self.writes.append(written)
        self.new_write.set()
        if self.live:
            self.say(f"sync  {self.line(written)}")

    def line(self, written: Written) -> str:
        """``HubSpot contact 123 firstname 'Ada' -> Dataverse contact 6f1d.. (step s2_...) 412 ms``."""
        audit, target = written.audit, written.target
        source = audit.source
        rules = sorted(
            {f.rule.removeprefix("conflict:") for f in audit.fields if f.rule.startswith("conflict:")}
        )
        if audit.action is AuditAction.CREATE:
            what = "new record"
            key = next((f for f in audit.fields if f.field in KEY_FIELDS), None)
            if key is not None:
                what += f" {quoted(key.new)}"
        else:
            fields = sorted(audit.fields, key=lambda f: any(b in f.field for b in BORING))
            shown = [f"{_name(f.source_field or f.field)} {quoted(f.new)}" for f in fields[:MAX_SHOWN_FIELDS]]
            extra = len(fields) - MAX_SHOWN_FIELDS
            what = ", ".join(shown) + (f" +{extra} more" if extra > 0 else "")
        latency = "?" if written.latency_s is None else f"{written.latency_s * 1000:.0f} ms"
        action = "created" if audit.action is AuditAction.CREATE else ""
        conflict = f" [conflict: {', '.join(rules)} rule]" if rules else ""
        return (
            f"{SYSTEM_NAMES[source.system]} {source.object_type} {short(source.object_id)} {what} -> "
            f"{SYSTEM_NAMES[target.system]} {target.object_type} {short(target.object_id)}"
            f"{' ' + action if action else ''} (step {audit.step}) {latency}{conflict}"
        )

    def summary(self, *, since: int = 0) -> str:
        """Changes synced and p50/p99 per direction, over the live writes."""
        parts = []
        for direction in ("HubSpot -> Dataverse", "Dataverse -> HubSpot"):
            values = self.latencies(direction)
            if values:
                parts.append(
                    f"{direction}: {len(values)} writes, p50 {percentile(values, 0.5) * 1000:.0f} ms, "
                    f"p99 {percentile(values, 0.99) * 1000:.0f} ms"
                )
        live = sum(1 for w in self.writes[since:] if w.live)
        return f"{live} writes; " + ("; ".join(parts) if parts else "no latencies yet")
