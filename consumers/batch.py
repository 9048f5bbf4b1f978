"""One batch of work items in hand: the links as the batch stages them, and what it has decided so far.

Pure, no I/O. The decisions (`consumers.units`, `consumers.merges`, `consumers.settle`) read a `Batch` and
return a `BatchResult` of what they decide; only the applier moves the batch on (`Batch.take`). The apply
loop publishes the batch's `BatchResult` in one transaction with its offsets, then the links join the link
store (`streams.link_store`, writer rule step 2).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from consumers.ports import WriteOp, WriteOutcome
from streams.audit import AuditRecord
from streams.exclusions import Observed
from streams.keys import RecordRef, SourceSystem
from streams.link_store import CommittedLinks, StagedLinks
from streams.links import Link
from streams.work import WorkItem

__all__ = ["Batch", "BatchResult", "Failure"]


@dataclass(frozen=True, slots=True)
class Failure:
    """Work that hit a record error on every attempt: its items go to dead letters."""

    items: Sequence[WorkItem]
    step: str | None
    """The sync step that failed, when one was chosen."""
    error: str | None
    attempts: int


@dataclass(slots=True)
class BatchResult:
    links: list[tuple[str, Link | None]] = field(default_factory=list)
    """Link changes to publish, in order (None: a tombstone)."""
    audits: list[AuditRecord] = field(default_factory=list)
    rechecks: list[WorkItem] = field(default_factory=list)
    """Pairs to plan again now that a record their association waited for is linked (to the work topic)."""
    failed: list[Failure] = field(default_factory=list)
    exclusions: list[Observed] = field(default_factory=list)
    """Per source record key, in order: excluded (why) or synced (``None``) (`consumers.exclusions`)."""
    writes: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    """(target system, object, operation, outcome) -> count."""
    skips: Counter[tuple[str, str]] = field(default_factory=Counter)
    conflicts: Counter[tuple[str, str]] = field(default_factory=Counter)
    echoes: int = 0
    api_writes: int = 0
    latencies: list[tuple[str, float]] = field(default_factory=list)
    """(step, seconds from the source change to the write acknowledged)."""

    def merge(self, other: BatchResult, *, links: bool = True) -> None:
        """Add ``other`` to this result; its link changes too unless ``links`` is False."""
        if links:
            self.links.extend(other.links)
        self.audits.extend(other.audits)
        self.rechecks.extend(other.rechecks)
        self.failed.extend(other.failed)
        self.exclusions.extend(other.exclusions)
        self.writes.update(other.writes)
        self.skips.update(other.skips)
        self.conflicts.update(other.conflicts)
        self.echoes += other.echoes
        self.api_writes += other.api_writes
        self.latencies.extend(other.latencies)

    def count_writes(
        self, system: SourceSystem, ops: Sequence[WriteOp], outcomes: Sequence[WriteOutcome]
    ) -> None:
        for op, outcome in zip(ops, outcomes, strict=True):
            label = "ok" if outcome.ok else ("conflict" if outcome.conflict else "error")
            self.writes[(str(system), op.object_type, str(op.kind), label)] += 1


def _always() -> bool:
    return True


class Batch:
    """A batch's per-call state: its staged links (the committed link store plus the batch's own changes),
    the tenants its records live in, and what it has decided so far.

    ``owned`` is asked before every gateway write: False once the batch's partitions moved to another
    replica (a rebalance), when no more may be written."""

    def __init__(
        self,
        index: CommittedLinks,
        tenants: Mapping[SourceSystem, str],
        *,
        dry_run: bool = False,
        owned: Callable[[], bool] | None = None,
    ) -> None:
        self.view = StagedLinks(index)
        self.tenants = tenants
        self.dry_run = dry_run
        self.owned = owned or _always
        self.result = BatchResult()

    def ref(self, system: SourceSystem, object_type: str, object_id: str) -> RecordRef:
        return RecordRef(
            system=system, tenant=self.tenants[system], object_type=object_type, object_id=object_id
        )

    def linked(self, system: SourceSystem, object_type: str, object_id: str) -> Link | None:
        """The link of this record as the batch has staged it."""
        return self.view.find(self.ref(system, object_type, object_id))

    def counterpart(self, system: SourceSystem, object_type: str, object_id: str) -> str | None:
        """The id of the record linked to this one in the other system (the planner's resolver)."""
        link = self.linked(system, object_type, object_id)
        return None if link is None else link.side(system.other).object_id

    def take(self, decided: BatchResult, *, publish: bool = True) -> None:
        """Move the batch on by what a decision returned: its link changes are staged, in order (refused
        below the current revision: `streams.link_store.StaleLinkError`), and published unless
        ``publish`` is False (a dry run's links, seen by the rest of the batch only)."""
        for link_id, link in decided.links:
            self.view.apply(link_id, link)
        self.result.merge(decided, links=publish)
