"""What the admin page shows, as plain data, and the port it reads it through (:class:`HealthSource`).

`cdc.admin.kafka_source` reads it all from Kafka and the CRMs on every request (nothing is kept in a
replica's memory, so any replica answers alike); the security tests give the app a fake. A new view adds
its data class and one method here, and its module in `cdc.admin.views`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from cdc.ops.deadletters import DeadLetterBook, Letter
from cdc.ops.status import StatusReport
from streams.audit import AuditRecord
from streams.control import Pauses
from streams.exclusions import Exclusion
from streams.keys import RecordRef, SourceSystem
from streams.links import Link

__all__ = [
    "BudgetView",
    "BudgetWindow",
    "HealthSource",
    "NotFoundError",
    "Overview",
    "PauseState",
    "StepRow",
    "Story",
]


class NotFoundError(LookupError):
    """What was asked for does not exist (a record, a dead letter): the page answers 404 with the message."""


@dataclass(frozen=True)
class StepRow:
    step: str
    pair: str
    in_sync: int
    """Linked pairs of the step's objects (a pair is in sync through every step of its objects)."""
    failing: int
    """Pending dead letters of the step."""
    excluded: int = 0
    """Records the step refuses or skips now (`streams.exclusions`)."""


@dataclass(frozen=True)
class Overview:
    status: StatusReport
    steps: list[StepRow]
    last_writes: list[AuditRecord]


@dataclass
class Story:
    """A record's story: the records the search named, their links, the audit records of either side."""

    query: str
    records: list[RecordRef] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)
    """Why any of its records is excluded now (reason, values, since when)."""


@dataclass(frozen=True)
class BudgetWindow:
    system: str
    window: str
    seconds: float
    limit: float
    """What the deployment may use (HubSpot's daily limit less the cap)."""
    full_limit: float
    """The vendor's limit before the cap."""
    used: float
    processes: int


@dataclass(frozen=True)
class BudgetView:
    windows: list[BudgetWindow]
    series: dict[str, list[tuple[float, float]]]
    """system -> (epoch seconds, the deployment's use of its chart window then), oldest first."""
    chart_window: dict[str, str]
    """system -> the window charted (HubSpot: daily; Dataverse: requests)."""


@dataclass(frozen=True)
class PauseState:
    pauses: Pauses
    """The newest word on everything and on each step (`streams.control`): paused ones, and resumed ones."""
    steps: list[str]
    """The configuration's steps, each of which may be paused on its own."""
    lines: list[str]
    """What is paused, as `cdc paused` prints it (the pairs a step's pause holds)."""


class HealthSource(Protocol):
    async def overview(self) -> Overview: ...

    async def lags(self) -> StatusReport: ...

    async def links(self) -> list[Link]: ...

    async def story(self, query: str) -> Story:
        """Raises :class:`NotFoundError` when no link and no audit record names the record."""
        ...

    async def budget(self) -> BudgetView: ...

    async def deadletters(self) -> DeadLetterBook: ...

    async def redrive(self, letter: Letter, actor: str) -> str:
        """Re-send one pending letter, audited as ``actor``'s; what was done, for the page to say."""
        ...

    async def sync_now(self, ref: RecordRef, actor: str) -> str:
        """Read the record again and publish it, audited as ``actor``'s; raises :class:`NotFoundError`."""
        ...

    async def exclusions(self) -> list[Exclusion]:
        """Every record excluded now, the most recently seen first."""
        ...

    async def retry(self, targets: list[Exclusion], actor: str) -> str:
        """Read each excluded record again and publish it (`cdc.ops.excluded.retry`), each audited as
        ``actor``'s; what was done, for the page to say."""
        ...

    async def push(self, ref: RecordRef, winner: SourceSystem, actor: str) -> list[str]:
        """Sync ``ref`` now with ``winner``'s values winning every conflict of that pass (`cdc.ops.push`:
        a push when ``winner`` is the record's system, else a pull from its linked record), audited as
        ``actor``'s; what was written, as `cdc push` prints it. Raises :class:`NotFoundError` for a record
        its CRM does not have, or (a pull) one not linked yet."""
        ...

    async def pauses(self) -> PauseState: ...

    async def set_pause(self, target: str | None, *, paused: bool, actor: str, reason: str | None) -> str:
        """Pause or resume ``target`` (None: everything) as ``actor`` (`cdc.ops.pauses.change_pause`,
        audited in the same transaction); what was done. Raises :class:`NotFoundError` for a step the
        configuration does not have, before anything is written."""
        ...
