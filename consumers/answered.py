"""Reads a change already answers: the record a change event carries whole, taken instead of reading it again.

A Dataverse change-tracking delta holds each new or updated row in full, the same shape as a read
(reference/dataverse.md §1.3: "New and updated rows: full row objects, same shape as in 1.2"), so the
applier's read of that row right after is a second copy of what the event says. It is skipped when the
event answers it, decided here (pure) and by the gateway that knows the row's shape (`ChangeAnswers`):

- the change is the unit's last change from that side (a later change without the whole record, a webhook
  of one property, asks for the read), of that very record, an upsert, create or update that carries the
  whole record (`ChangeEvent.record`);
- the unit runs its first pass (a unit planned again after a 412 or a link that moved reads afresh);
- the record is linked, and the event's row version is newer than the one the link last saw: an older
  event (a replay of a range) is never taken for the record's state, so a replay still writes nothing.
  A record no link knows is read: its row says what it was when polled, not that it still is. A row can
  reach the apply loop long after its poll (a killed replica holds its router partition until the group
  rebalances), after the other side's delete removed the record and its link; taken for the record, the
  late row was copied to the other CRM as a new record, the deleted contact re-created on both sides (the
  chaos test in CI, 2026-12-07; `tests/integration/test_late_rows.py`). While a link knows the record, a
  delete of the row comes after it under the same key, or the pair's own delete tombstoned the link first;
- the gateway finds every property and association the step reads in the row (`ChangeAnswers.answer`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from consumers.ports import Record
from consumers.units import row_version
from streams.codec import Scalar
from streams.events import ChangeEvent, Operation
from streams.keys import SourceSystem
from streams.links import Link
from streams.work import WorkItem

__all__ = ["ChangeAnswers", "answering", "newer_version"]

WHOLE = frozenset({Operation.UPSERT, Operation.CREATE, Operation.UPDATE})
"""Operations whose event may carry the record as it is after the change."""


@runtime_checkable
class ChangeAnswers(Protocol):
    """A gateway that can tell whether a record carried by a change event is what its read would return."""

    async def answer(
        self,
        object_type: str,
        values: Mapping[str, Scalar],
        *,
        version: str | None,
        fields: Sequence[str],
        associations: Sequence[str],
    ) -> Record | None:
        """The record as `CrmGateway.read` would return it for these ``fields`` and ``associations``, built
        from ``values`` (the event's whole record) and ``version`` (its row version); None when the values
        do not hold all of it, so the record must be read."""
        ...


def newer_version(event: str | None, seen: str | None) -> bool:
    """Is the event's row version (a delta row's ``versionnumber``) newer than the one a link saw (an ETag
    ``W/"<versionnumber>"``)? Unknown on either side: no."""
    mine, theirs = row_version(event), row_version(seen)
    return mine is not None and theirs is not None and mine > theirs


def answering(
    items: Sequence[WorkItem],
    system: SourceSystem,
    object_id: str,
    link: Link | None,
    *,
    attempts: int,
) -> ChangeEvent | None:
    """The change of ``system``'s record ``object_id`` among a unit's ``items`` that may stand for its read
    (module docstring), else None."""
    if attempts:
        return None
    last = next((i.change for i in reversed(items) if i.change.source is system), None)
    if last is None or last.record is None or last.operation not in WHOLE:
        return None
    if last.object_id.lower() != object_id.lower():
        return None
    if link is None or not newer_version(last.source_version, link.side(system).version):
        return None
    return last
