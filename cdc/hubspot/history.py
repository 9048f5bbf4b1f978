"""Who last wrote a HubSpot property, from its history: this app's own write, or anyone else's. Pure.

A read with ``propertiesWithHistory`` (batch read body field, GET query parameter) answers, per property
asked, its ``ValueWithTimestamp`` entries: ``value``, ``timestamp`` and ``sourceType`` always, ``sourceId``
when there is one (fact sheet reference/hubspot.md §3.3 and §6; HubSpot's objects spec, 2026-09). A write
made through an app's token is recorded as ``sourceType: INTEGRATION`` with ``sourceId`` the app's id
(fact sheet §6 "Who changed it": the change sources of the webhooks are "the change sources that appear
in contact property histories", and an app's writes show its id; OBS), a user's edit as ``CRM_UI`` with
``userId:<n>``.

What it is for: a value this daemon wrote to HubSpot whose link update never committed (the replica was
killed between the two) looks like a user's edit to the replica that takes over, and a conflict rule
could let it overwrite the user's newer edit on the other side. A property whose last writer is this app
is not a user's edit (`consumers.applier` counts it as synced).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cdc.wire import parse_time

__all__ = ["INTEGRATION", "PropertyChange", "ours", "own_values", "parse_history"]

INTEGRATION = "INTEGRATION"
"""The ``sourceType`` of a write made with an app's token (its ``sourceId``: the app id)."""


@dataclass(frozen=True, slots=True)
class PropertyChange:
    """One entry of a property's history."""

    value: str
    at: datetime | None
    """None when the timestamp is missing or unreadable."""
    source_type: str
    source_id: str | None


def parse_history(entries: object) -> list[PropertyChange]:
    """A property's history as HubSpot answers it; entries that are not objects are left out (an entry
    with no readable timestamp is kept, and makes `ours` answer False)."""
    if not isinstance(entries, list):
        return []
    changes: list[PropertyChange] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        source_id = entry.get("sourceId")
        changes.append(
            PropertyChange(
                value="" if entry.get("value") is None else str(entry.get("value")),
                at=parse_time(entry.get("timestamp")),
                source_type=str(entry.get("sourceType") or ""),
                source_id=None if source_id is None else str(source_id).strip(),
            )
        )
    return changes


def ours(changes: Sequence[PropertyChange], app_id: str) -> PropertyChange | None:
    """The latest change when this app made it, else None.

    Latest by timestamp, never by position (the answer's order is not documented). When anything is
    unsure, the answer is None, which leaves the value taken for a user's edit as before: no history, an
    entry without a readable timestamp, or several entries sharing the latest timestamp of which one is
    not this app's."""
    if not changes or any(c.at is None for c in changes):
        return None
    latest = max(c.at for c in changes if c.at is not None)
    last = [c for c in changes if c.at == latest]
    if all(c.source_type == INTEGRATION and c.source_id == app_id for c in last):
        return last[0] if len({c.value for c in last}) == 1 else None
    return None


def own_values(item: Mapping[str, Any], fields: Sequence[str], app_id: str) -> dict[str, str]:
    """For one record of a batch read with history: the ``fields`` this app wrote last, with the value it
    wrote."""
    history = item.get("propertiesWithHistory")
    if not isinstance(history, Mapping):
        return {}
    found: dict[str, str] = {}
    for name in fields:
        change = ours(parse_history(history.get(name)), app_id)
        if change is not None:
            found[name] = change.value
    return found
